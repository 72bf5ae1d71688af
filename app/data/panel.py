"""The Data panel: choose a dataset (built-in, image folder, torchvision), load it off the GUI
thread with progress and cancel, and browse it (thumbnail grid, classes, skipped files).

The Source box is app/data/source.py (the dataset spec both ways: app/data/model.py), the Dataset and
Skipped files boxes app/data/info.py, the grid app/data/thumbnails.py; this module loads and keeps the
dataset and runs the grid. ``data_view(ctx)`` makes the window's Data view: the dataset it loads goes to
the run model, and it shows (and loads) the datasets the run model is asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.common import dialogs
from app.common.qt import FolderDrop
from app.common.view import MenuEntry, View, ViewContext
from app.data.info import DatasetBox, SkippedBox
from app.data.source import SourceBox
from app.data.thumbnails import ThumbnailView
from app.models.dataset import ViewDataset
from app.models.run_model import DataChoice


class DataPanel(FolderDrop, QWidget, View):
    dataset_loaded = Signal(object)  # ViewDataset
    image_chosen = Signal(int)
    loading_changed = Signal(object)  # the spec loading now, or None
    message = Signal(str)  # a line for the status bar

    def __init__(self, service, parent=None):
        super().__init__(parent)
        self.service = service
        self.dataset: ViewDataset | None = None
        self._rid: int | None = None
        self._last_error = ""
        self.setAcceptDrops(True)

        # -- source, and what was loaded -------------------------------------------------------
        self.source = src = SourceBox()
        src.folder.returnPressed.connect(self.load_from_ui)  # Enter loads it
        src.tv_root.returnPressed.connect(self.load_from_ui)
        src.browse_btn.clicked.connect(self.browse_folder)
        src.clips_browse_btn.clicked.connect(self.browse_clips)
        src.clips_folder.returnPressed.connect(self.load_from_ui)
        src.load_btn.clicked.connect(self.load_from_ui)
        src.cancel_btn.clicked.connect(self.cancel)
        # the fields tests and the window reach
        self.kind, self.count, self.shortcut, self.folder = src.kind, src.count, src.shortcut, src.folder
        self.light, self.typical = src.light, src.typical
        self.folder_hint, self.size, self.load_btn, self.status = src.folder_hint, src.size, src.load_btn, src.status
        self.info = DatasetBox()
        self.info.classes.itemSelectionChanged.connect(self._on_class_filter)
        self.classes = self.info.classes
        self.skipped_box = SkippedBox()
        self.skipped = self.skipped_box.skipped

        left = QWidget()
        vl = QVBoxLayout(left)
        vl.setContentsMargins(0, 0, 0, 0)
        vl.addWidget(src)
        vl.addWidget(self.info, 1)
        vl.addWidget(self.skipped_box)
        left.setMinimumWidth(300)

        # -- the grid ---------------------------------------------------------------------
        self.grid = ThumbnailView()
        self.grid.chosen.connect(self._on_chosen)
        self.zoom = QSlider(Qt.Orientation.Horizontal)
        self.zoom.setRange(24, 160)
        self.zoom.setValue(64)
        self.zoom.setFixedWidth(140)
        self.zoom.setToolTip("Thumbnail size")
        self.zoom.valueChanged.connect(self.grid.set_thumb_size)
        self.random_btn = QPushButton("Random image")
        self.random_btn.clicked.connect(self.choose_random)
        self.grid_info = QLabel("")
        self.grid_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QHBoxLayout()
        top.addWidget(self.grid_info, 1)
        top.addWidget(self.random_btn)
        top.addWidget(QLabel("Size"))
        top.addWidget(self.zoom)
        right = QWidget()
        vr = QVBoxLayout(right)
        vr.setContentsMargins(0, 0, 0, 0)
        vr.addLayout(top)
        vr.addWidget(self.grid, 1)

        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([340, 900])
        self.splitter = split
        lay = QVBoxLayout(self)
        lay.addWidget(split)
        self.chosen_index: int | None = None

    # -- source choices --------------------------------------------------------------------
    def set_tv_datasets(self, datasets: list[dict]) -> None:
        self.source.set_tv_datasets(datasets)

    def spec_from_ui(self) -> str:
        return self.source.spec()

    def set_spec(self, spec: str, image_size: int | None = None, is_clips: bool = False) -> None:
        self.source.set_spec(spec, image_size, is_clips)

    def browse_folder(self) -> None:
        start = self.folder.text() or str(Path.home())
        path = dialogs.existing_folder(self, "Choose a folder of images", start)
        if path:
            self.open_folder(path)

    def browse_clips(self) -> None:
        start = self.source.clips_folder.text() or str(Path.home())
        path = dialogs.existing_folder(self, "Choose a folder of clips (videos, or a sub-folder of frames per clip)",
                                       start)
        if path:
            self.source.clips_folder_choice.setChecked(True)
            self.source.clips_folder.setText(path)
            self.load_from_ui()

    def open_folder(self, path: str) -> None:
        self.kind.setCurrentIndex(1)
        self.folder.setText(path)
        self.load_from_ui()

    def show_choice(self, choice: DataChoice) -> None:
        """Show the dataset the window asks for (its spec in the Source box), and load it if it says so."""
        self.set_spec(choice.spec, choice.image_size)
        if choice.load:
            self.load(choice.spec, choice.image_size or self.size.value(), choice.download)

    # -- drag and drop -------------------------------------------------------------------
    def folder_dropped(self, folder: str) -> None:
        self.open_folder(folder)

    # -- the view protocol -----------------------------------------------------------------
    def is_ready(self) -> bool:
        return self.dataset is not None and not self.loading

    def menu_entries(self) -> list[MenuEntry]:
        return [MenuEntry("File", "Open image folder…", self.browse_folder, QKeySequence.StandardKey.Open,
                          "Load a folder of images as the dataset")]

    def save_state(self):
        return self.splitter.saveState()

    def restore_state(self, state) -> None:
        self.splitter.restoreState(state)

    def reload_if_empty(self) -> None:
        """The service restarted: load again what could not be loaded (a dataset shown stays)."""
        if self.dataset is None and not self.loading:
            self.load_from_ui()

    # -- loading ---------------------------------------------------------------------------
    @property
    def loading(self) -> bool:
        return self._rid is not None

    @property
    def loading_spec(self) -> str | None:
        """The spec of the dataset loading now, or None."""
        return self._spec if self._rid is not None else None

    def load_from_ui(self) -> None:
        spec = self.spec_from_ui()
        if not spec:
            self._fail({"message": "choose a folder first (Browse…, or drop one on the window)"})
            return
        self.load(spec, self.size.value(), download=self.source.download())

    def load(self, spec: str, image_size: int, download: bool = False) -> int:
        self._spec, self._size, self._download = spec, int(image_size), download
        self.source.show_started(f"Loading {spec} …" + ("" if self.service.is_ready else " (starting the engine)"))
        self.source.set_loading(True)
        rid = self.service.request("load_dataset", {"spec": spec, "image_size": int(image_size),
                                                    "download": bool(download)},
                                   kind="load_dataset",  # a newer load replaces this one
                                   on_done=self._loaded, on_error=self._fail,
                                   on_progress=lambda p: self.source.show_progress(p, self._spec),
                                   on_cancelled=self._cancelled)
        self._rid = rid
        self.loading_changed.emit(self._spec)
        return self._rid

    def cancel(self) -> None:
        if self._rid is not None:
            self.service.cancel(self._rid)  # runs _cancelled

    def _done(self) -> None:
        self._rid = None
        self.source.set_loading(False)
        self.loading_changed.emit(None)

    def _cancelled(self) -> None:
        self._done()
        self.source.show_result("Loading cancelled." + (" The previous dataset is still shown." if self.dataset
                                                        else ""))

    def _fail(self, err: dict) -> None:
        if self._rid is not None:
            self._done()
        self._last_error = err.get("message", str(err))
        self.source.show_result(f"Could not load the dataset: {self._last_error}", error=True)
        self.message.emit(f"Could not load the dataset: {self._last_error}")

    def _loaded(self, res: dict) -> None:
        self._done()
        try:
            ds = ViewDataset.from_result(res)
        except (OSError, ValueError) as exc:
            self._fail({"message": f"the decoded images could not be read back ({exc})"})
            return
        ds.download = self._download
        self.set_dataset(ds)
        self.source.show_result(f"Loaded {len(ds)} images.", loaded=True)
        self.dataset_loaded.emit(ds)

    # -- showing ---------------------------------------------------------------------------
    def set_dataset(self, ds: ViewDataset) -> None:
        self.dataset = ds
        self.grid.model_.set_dataset(ds)
        self.chosen_index = None
        self.info.set_dataset(ds)
        self.skipped_box.set_dataset(ds)
        clips = getattr(ds, "clips", None) is not None
        self.grid_info.setText(f"{len(ds):,} {'clips (their middle frames)' if clips else 'images'} — click one to "
                               "preview its pretext tasks")
        self.set_spec(ds.spec, ds.image_size, clips)

    def _on_class_filter(self) -> None:
        if self.dataset is None:
            return
        rows = self.info.selected_classes()
        if not rows:
            self.grid.model_.set_filter(None)
            self.grid_info.setText(f"{len(self.dataset):,} images")
            return
        idx = np.concatenate([self.dataset.indices_of_class(r) for r in rows])
        self.grid.model_.set_filter(np.sort(idx))
        names = ", ".join(self.dataset.class_names[r] for r in rows)
        self.grid_info.setText(f"{len(idx):,} images of {names} (click the class again to show all)")

    def mouse_clear_filter(self) -> None:
        self.classes.clearSelection()

    def _on_chosen(self, i: int) -> None:
        self.chosen_index = i
        if self.dataset is not None:
            self.grid_info.setText(self.dataset.describe(i))
        self.image_chosen.emit(i)

    def choose_random(self) -> None:
        if self.dataset is None or len(self.dataset) == 0:
            return
        rows = self.grid.model_.rows
        i = int(rows[np.random.default_rng().integers(len(rows))])
        self.grid.select_dataset_index(i)
        self._on_chosen(i)


def data_view(ctx: ViewContext) -> DataPanel:
    """The window's Data view: what it loads becomes the run model's dataset, a clicked image its chosen
    image; it shows (and loads) the datasets the window chooses (the last session's, a dropped folder,
    the demo's)."""
    panel = DataPanel(ctx.service)
    panel.message.connect(ctx.status)
    panel.dataset_loaded.connect(ctx.run.set_dataset)
    panel.loading_changed.connect(ctx.run.set_loading)
    panel.image_chosen.connect(ctx.run.choose_image)
    ctx.run.dataChosen.connect(panel.show_choice)
    ctx.config.catalogue_changed.connect(
        lambda: panel.set_tv_datasets((ctx.config.catalogue or {}).get("datasets", [])))
    ctx.service.restarted.connect(panel.reload_if_empty)
    return panel
