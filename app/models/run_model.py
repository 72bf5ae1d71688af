"""The run model: the workflow state of the window, shared by every view.

What the window shows and does with runs and data lives here, not in a view: the run shown (started,
resumed or opened; live or not), the runs this window trains now (protected: never deleted), the
dataset chosen and loaded (and whether one is loading), the image chosen in the Data view, and the
folders whose runs are listed. The window owns one; a view gets it as ``ctx.run``, follows its
signals and asks through its ``request_*`` methods (the window, which owns the training process,
acts on the requests).

State (signals):

    runChanged(RunRef)         a run is shown: started or resumed by this window, or opened from disk
    liveChanged(bool)          the shown run started or stopped training in this window's engine
    protectedChanged()         a run started or stopped training here (protected runs are never deleted)
    dataChosen(DataChoice)     a dataset to show in the Data view (and to load, if ``choice.load``)
    loadingChanged(bool)       a dataset started or stopped loading
    datasetChanged(object)     a dataset (app.models.dataset.ViewDataset) was loaded
    imageChosen(int)           an image of the dataset was chosen (its index)
    pointChosen(PointRef)      a point of the shown run's map was clicked (an image of the data it maps)
    rootsChanged(list)         the folders whose runs the window lists changed

Requests (a view asks, the window acts):

    startRequested(dict)       start a run with this (validated) config
    resumeRequested(str)       resume this run folder from its checkpoint ("": the last run)
    openRequested(str, object) show this run folder (live: True, False or None to find out)
    overlayRequested(str, bool)  overlay this run folder's curves on the shown run's
    notice(str, bool)          a line about the runs for the views that show their state (error or not)

A started run's folder may not exist yet when ``runChanged`` fires: the engine's ``RunStarted``
message (``ctx.engine.message``) follows once it does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

ORIGINS = ("started", "resumed", "opened")


@dataclass(frozen=True)
class RunRef:
    """A run the window shows. ``origin``: started or resumed by this window's engine, or opened."""

    run_dir: str
    live: bool = False  # training now (in this window's engine, or a headless job writing it)
    name: str = ""
    origin: str = "opened"

    def __post_init__(self):
        if self.origin not in ORIGINS:
            raise ValueError(f"origin must be one of {', '.join(ORIGINS)}, got {self.origin!r}")

    @property
    def owned(self) -> bool:
        """Started or resumed by this window (its engine can be asked for snapshots)."""
        return self.origin in ("started", "resumed")

    def same_run(self, run_dir: str | None) -> bool:
        return bool(run_dir) and same_folder(self.run_dir, run_dir)


@dataclass(frozen=True)
class DataChoice:
    """A dataset the window asks the Data view to show: its spec, the image size (None: keep the
    view's), whether a torchvision set may download, and whether to load it now."""

    spec: str
    image_size: int | None = None
    download: bool = False
    load: bool = True


@dataclass(frozen=True)
class PointRef:
    """An image of the data a run's map shows, clicked on the map: the run, its index in the ``split`` of the
    run's data (or of ``data``, another dataset spec the map looks at)."""

    run_dir: str
    index: int
    split: str = "eval"
    data: str = ""


def same_folder(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and os.path.abspath(str(a)) == os.path.abspath(str(b))


class RunModel(QObject):
    runChanged = Signal(object)  # RunRef
    liveChanged = Signal(bool)
    protectedChanged = Signal()
    dataChosen = Signal(object)  # DataChoice
    loadingChanged = Signal(bool)
    datasetChanged = Signal(object)  # ViewDataset
    imageChosen = Signal(int)
    pointChosen = Signal(object)  # PointRef
    rootsChanged = Signal(list)  # list[str]
    startRequested = Signal(dict)
    resumeRequested = Signal(str)
    openRequested = Signal(str, object)
    overlayRequested = Signal(str, bool)
    notice = Signal(str, bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._run: RunRef | None = None
        self._protected: set[str] = set()
        self._dataset = None
        self._loading: str | None = None
        self._image: int | None = None
        self._point: PointRef | None = None
        self._roots: list[str] = []

    # -- the run shown --------------------------------------------------------------------------
    @property
    def run(self) -> RunRef | None:
        return self._run

    @property
    def run_dir(self) -> str | None:
        return self._run.run_dir if self._run is not None else None

    @property
    def live(self) -> bool:
        return self._run is not None and self._run.live

    def owns_live(self, run_dir: str | None) -> bool:
        """Is ``run_dir`` the run this window's engine trains now?"""
        r = self._run
        return r is not None and r.live and r.owned and r.same_run(run_dir)

    def set_run(self, run_dir: str, live: bool = False, name: str = "", origin: str = "opened") -> RunRef:
        self._run = RunRef(str(run_dir), bool(live), name or os.path.basename(os.path.normpath(str(run_dir))),
                           origin)
        self.runChanged.emit(self._run)
        return self._run

    def set_live(self, live: bool) -> None:
        """The shown run started or stopped training."""
        r = self._run
        if r is None or r.live == bool(live):
            return
        self._run = RunRef(r.run_dir, bool(live), r.name, r.origin)
        self.liveChanged.emit(bool(live))

    # -- runs training here (protected) -------------------------------------------------------------
    def protect(self, run_dir: str) -> None:
        """``run_dir`` trains in this window now: it is never deleted."""
        path = os.path.abspath(str(run_dir))
        if path not in self._protected:
            self._protected.add(path)
            self.protectedChanged.emit()

    def release(self, run_dir: str | None) -> None:
        """``run_dir`` stopped training here."""
        path = os.path.abspath(str(run_dir)) if run_dir else None
        if path in self._protected:
            self._protected.discard(path)
            self.protectedChanged.emit()

    def is_protected(self, run_dir: str | None) -> bool:
        return bool(run_dir) and os.path.abspath(str(run_dir)) in self._protected

    # -- the dataset ----------------------------------------------------------------------------
    def choose_data(self, spec: str, image_size: int | None = None, download: bool = False,
                    load: bool = True) -> DataChoice:
        """Ask the Data view to show ``spec`` (and load it, if ``load``)."""
        choice = DataChoice(str(spec), None if image_size is None else int(image_size), bool(download), bool(load))
        self.dataChosen.emit(choice)
        return choice

    @property
    def loading(self) -> bool:
        return self._loading is not None

    @property
    def loading_spec(self) -> str | None:
        """The spec of the dataset loading now, or None."""
        return self._loading

    def set_loading(self, spec: str | None) -> None:
        """A dataset started loading (its spec) or stopped (None)."""
        was = self.loading
        self._loading = None if spec is None else str(spec)
        if was != self.loading:
            self.loadingChanged.emit(self.loading)

    @property
    def dataset(self):
        return self._dataset

    def set_dataset(self, ds) -> None:
        self._dataset = ds
        self._image = None
        self.datasetChanged.emit(ds)

    @property
    def image(self) -> int | None:
        """The index of the image chosen in the dataset, or None."""
        return self._image

    def choose_image(self, i: int) -> None:
        self._image = int(i)
        self.imageChosen.emit(int(i))

    @property
    def point(self) -> PointRef | None:
        """The point of the map clicked last (for the run shown then), or None."""
        return self._point

    def choose_point(self, run_dir: str, index: int, split: str = "eval", data: str = "") -> PointRef:
        """A point of ``run_dir``'s map was clicked: the views that show an image of it follow."""
        self._point = PointRef(str(run_dir), int(index), str(split or "eval"), str(data or ""))
        self.pointChosen.emit(self._point)
        return self._point

    # -- folders of runs --------------------------------------------------------------------------
    @property
    def roots(self) -> list[str]:
        return list(self._roots)

    def set_roots(self, roots: list[str]) -> None:
        roots = list(dict.fromkeys(str(r) for r in roots))
        if roots != self._roots:
            self._roots = roots
            self.rootsChanged.emit(list(roots))

    # -- requests (the window acts on them) -----------------------------------------------------------
    def request_start(self, config: dict) -> None:
        self.startRequested.emit(dict(config))

    def request_resume(self, run_dir: str = "") -> None:
        """Resume ``run_dir`` from its checkpoint; "" resumes the last run of this window."""
        self.resumeRequested.emit(str(run_dir or ""))

    def request_open(self, run_dir: str, live: bool | None = None) -> None:
        self.openRequested.emit(str(run_dir), live)

    def request_overlay(self, run_dir: str, live: bool = False) -> None:
        self.overlayRequested.emit(str(run_dir), bool(live))

    def tell(self, text: str, error: bool = False) -> None:
        """A line about the runs (e.g. why a run could not start) for the views that show their state."""
        self.notice.emit(str(text), bool(error))
