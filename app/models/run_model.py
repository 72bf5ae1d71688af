"""The run model: which run the window shows, whether it trains now, which dataset is loaded.

The window owns one and sets it; views subscribe to its signals (``ctx.run`` in a view's factory):

    runChanged(RunRef)      a run is shown: started or resumed by this window, or opened from disk
    liveChanged(bool)       the shown run started or stopped training in this window's engine
    datasetChanged(object)  a dataset (app.models.dataset.ViewDataset) was loaded
    rootsChanged(list)      the folders whose runs the window lists changed

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
        return bool(run_dir) and os.path.abspath(self.run_dir) == os.path.abspath(str(run_dir))


class RunModel(QObject):
    runChanged = Signal(object)  # RunRef
    liveChanged = Signal(bool)
    datasetChanged = Signal(object)  # ViewDataset
    rootsChanged = Signal(list)  # list[str]

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._run: RunRef | None = None
        self._dataset = None
        self._roots: list[str] = []

    # -- the run --------------------------------------------------------------------------------
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

    # -- the dataset ----------------------------------------------------------------------------
    @property
    def dataset(self):
        return self._dataset

    def set_dataset(self, ds) -> None:
        self._dataset = ds
        self.datasetChanged.emit(ds)

    # -- folders of runs --------------------------------------------------------------------------
    @property
    def roots(self) -> list[str]:
        return list(self._roots)

    def set_roots(self, roots: list[str]) -> None:
        roots = list(dict.fromkeys(str(r) for r in roots))
        if roots != self._roots:
            self._roots = roots
            self.rootsChanged.emit(list(roots))
