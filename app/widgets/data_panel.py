"""The Data panel: choose a dataset (built-in, image folder, torchvision), load it off the GUI
thread with progress and cancel, and browse it (thumbnail grid, classes, skipped files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.dataset import ViewDataset
from app.view import MenuEntry, View, ViewContext
from app.widgets.thumbnails import ThumbnailView, class_color

TV_FALLBACK = [{"name": n, "splits": ["train", "test"]} for n in
               ("cifar10", "cifar100", "stl10", "mnist", "fashionmnist", "svhn")]
KINDS = ("Built-in shapes", "Image folder", "torchvision dataset")


def parse_spec(spec: str) -> dict:
    """A dataset spec -> the panel's fields (kind, count and shortcut, folder, tv name/split/root)."""
    s = (spec or "").strip()
    low = s.lower()
    if low.startswith("builtin:") or low == "shapes" or low.startswith(("shapes:", "shapes?")):
        rest = s[len("builtin:"):] if low.startswith("builtin:") else s
        rest, _, query = rest.partition("?")
        _name, _, count = rest.partition(":")
        shortcut = any(q.strip().lower() in ("shortcut=colour", "shortcut=color") for q in query.split("&"))
        return {"kind": 0, "count": int(count) if count.strip().isdigit() else 6000, "shortcut": shortcut}
    if low.startswith("torchvision:") or low.startswith("tv:"):
        rest = s.split(":", 1)[1]
        name_part, _, root = rest.partition(":")
        name, _, split = name_part.partition("@")
        return {"kind": 2, "tv_name": name.lower(), "tv_split": split.lower(), "tv_root": root}
    return {"kind": 1, "folder": s}


class DataPanel(QWidget, View):
    dataset_loaded = Signal(object)  # ViewDataset
    image_chosen = Signal(int)
    loading_changed = Signal(bool)
    message = Signal(str)  # a line for the status bar

    def __init__(self, service, parent=None):
        super().__init__(parent)
        self.service = service
        self.dataset: ViewDataset | None = None
        self._rid: int | None = None
        self._last_error = ""
        self.setAcceptDrops(True)

        # -- source ----------------------------------------------------------------------
        self.kind = QComboBox()
        self.kind.addItems(KINDS)
        self.kind.setToolTip("Where the images come from")
        # the kinds' pages in a plain layout (only the shown one takes room): a stacked widget would
        # not pass its wrapped hint's height on, and the hint would overlap the rows below
        self.pages = QWidget()
        pages_lay = QVBoxLayout(self.pages)
        pages_lay.setContentsMargins(0, 0, 0, 0)
        self.count = QSpinBox()
        self.count.setRange(16, 500_000)
        self.count.setSingleStep(500)
        self.count.setValue(2000)
        self.count.setToolTip("How many shapes to generate (8 classes: circle, ring, triangle, ...)")
        p0 = QWidget()
        f0 = QFormLayout(p0)
        f0.setContentsMargins(0, 0, 0, 0)
        f0.addRow("Images", self.count)
        self.shortcut = QCheckBox("Colour shortcut (lesson)")
        self.shortcut.setToolTip("Give every image its own colours, so colour alone tells two views of an image "
                                 "apart: the colour shortcut of the README's lesson (builtin:shapes?shortcut=colour)")
        f0.addRow("", self.shortcut)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("a folder of images (class sub-folders give labels)")
        self.folder.returnPressed.connect(self.load_from_ui)  # Enter loads it
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.browse_folder)
        p1 = QWidget()
        v1 = QVBoxLayout(p1)
        v1.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        v1.addLayout(row)
        self.folder_hint = hint = QLabel("Or drop a folder on the window (or type its path and press Enter). "
                                         "Sub-folders are classes; a flat folder is unlabeled; a folder with "
                                         "train/ and val/ uses both.")
        hint.setWordWrap(True)
        hint.setObjectName("hint")
        v1.addWidget(hint)
        self.tv_name = QComboBox()
        self.tv_split = QComboBox()
        self.tv_root = QLineEdit()
        self.tv_root.setPlaceholderText("default: ~/.cache/ssl-workbench/torchvision")
        self.tv_root.returnPressed.connect(self.load_from_ui)
        self.tv_download = QCheckBox("Download when missing (needs internet)")
        p2 = QWidget()
        f2 = QFormLayout(p2)
        f2.setContentsMargins(0, 0, 0, 0)
        f2.addRow("Dataset", self.tv_name)
        f2.addRow("Split", self.tv_split)
        f2.addRow("Folder", self.tv_root)
        f2.addRow("", self.tv_download)
        self._page_widgets = (p0, p1, p2)
        for p in self._page_widgets:
            pages_lay.addWidget(p)
        self.kind.currentIndexChanged.connect(self._page)
        self.tv_name.currentIndexChanged.connect(self._fill_splits)
        self.set_tv_datasets(TV_FALLBACK)
        self._page(0)

        self.size = QSpinBox()
        self.size.setRange(8, 512)
        self.size.setValue(32)
        self.size.setSuffix(" px")
        self.size.setToolTip("Images are resized (shorter side) and centre-cropped to this size for training")
        self.load_btn = QPushButton("Load")
        self.load_btn.setObjectName("primary")
        self.load_btn.clicked.connect(self.load_from_ui)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        src = QGroupBox("Source")
        fs = QFormLayout(src)
        fs.addRow("Kind", self.kind)
        fs.addRow(self.pages)
        fs.addRow("Image size", self.size)
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_btn)
        buttons.addWidget(self.cancel_btn)
        fs.addRow(buttons)
        fs.addRow(self.bar)
        fs.addRow(self.status)

        # -- what was loaded ---------------------------------------------------------------
        self.summary = QLabel("No dataset loaded.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.classes = QTableWidget(0, 2)
        self.classes.setHorizontalHeaderLabels(["Class", "Images"])
        self.classes.verticalHeader().setVisible(False)
        self.classes.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.classes.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.classes.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.classes.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.classes.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        self.classes.setToolTip("Click a class to show only its images; click it again to show all")
        self.classes.itemSelectionChanged.connect(self._on_class_filter)
        self.skipped = QTableWidget(0, 2)
        self.skipped.setHorizontalHeaderLabels(["Skipped file", "Why"])
        self.skipped.verticalHeader().setVisible(False)
        self.skipped.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.skipped.horizontalHeader().setStretchLastSection(True)
        self.skipped.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.skipped_box = QGroupBox("Skipped files")
        QVBoxLayout(self.skipped_box).addWidget(self.skipped)
        self.skipped_box.setVisible(False)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.notes.setObjectName("notes")

        info = QGroupBox("Dataset")
        vi = QVBoxLayout(info)
        vi.addWidget(self.summary)
        vi.addWidget(self.classes, 1)
        vi.addWidget(self.notes)

        left = QWidget()
        vl = QVBoxLayout(left)
        vl.setContentsMargins(0, 0, 0, 0)
        vl.addWidget(src)
        vl.addWidget(info, 1)
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
    def _page(self, i: int) -> None:
        for k, page in enumerate(self._page_widgets):
            page.setVisible(k == i)

    def set_tv_datasets(self, datasets: list[dict]) -> None:
        current = self.tv_name.currentData()
        self.tv_name.blockSignals(True)
        self.tv_name.clear()
        for d in datasets:
            self.tv_name.addItem(d["name"], d)
        self.tv_name.blockSignals(False)
        i = self.tv_name.findText(current["name"]) if current else -1
        self.tv_name.setCurrentIndex(max(0, i))
        self._fill_splits()

    def _fill_splits(self) -> None:
        d = self.tv_name.currentData() or {"splits": ["train"]}
        keep = self.tv_split.currentText()
        self.tv_split.clear()
        self.tv_split.addItems(d.get("splits", ["train"]))
        i = self.tv_split.findText(keep)
        if i >= 0:
            self.tv_split.setCurrentIndex(i)

    def spec_from_ui(self) -> str:
        k = self.kind.currentIndex()
        if k == 0:
            return f"builtin:shapes:{self.count.value()}" + ("?shortcut=colour" if self.shortcut.isChecked() else "")
        if k == 1:
            return self.folder.text().strip()
        spec = f"torchvision:{self.tv_name.currentText()}@{self.tv_split.currentText()}"
        if self.tv_root.text().strip():
            spec += f":{self.tv_root.text().strip()}"
        return spec

    def set_spec(self, spec: str, image_size: int | None = None) -> None:
        p = parse_spec(spec)
        self.kind.setCurrentIndex(p["kind"])
        if p["kind"] == 0:
            self.count.setValue(int(p["count"]))
            self.shortcut.setChecked(bool(p["shortcut"]))
        elif p["kind"] == 1:
            self.folder.setText(p["folder"])
        else:
            i = self.tv_name.findText(p["tv_name"])
            if i < 0:
                self.tv_name.addItem(p["tv_name"], {"name": p["tv_name"], "splits": [p["tv_split"] or "train"]})
                i = self.tv_name.count() - 1
            self.tv_name.setCurrentIndex(i)
            if p["tv_split"]:
                j = self.tv_split.findText(p["tv_split"])
                if j >= 0:
                    self.tv_split.setCurrentIndex(j)
            self.tv_root.setText(p["tv_root"])
        if image_size:
            self.size.setValue(int(image_size))

    def browse_folder(self) -> None:
        start = self.folder.text() or str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Choose a folder of images", start)
        if path:
            self.open_folder(path)

    def open_folder(self, path: str) -> None:
        self.kind.setCurrentIndex(1)
        self.folder.setText(path)
        self.load_from_ui()

    # -- drag and drop -------------------------------------------------------------------
    @staticmethod
    def dropped_folder(mime) -> str | None:
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile():
                p = Path(url.toLocalFile())
                if p.is_dir():
                    return str(p)
                if p.is_file():
                    return str(p.parent)
        return None

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if self.dropped_folder(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        folder = self.dropped_folder(event.mimeData())
        if folder:
            event.acceptProposedAction()
            self.open_folder(folder)

    # -- the view protocol -----------------------------------------------------------------
    @classmethod
    def create(cls, ctx: ViewContext) -> DataPanel:
        panel = cls(ctx.service)
        panel.message.connect(ctx.status)
        panel.dataset_loaded.connect(ctx.run.set_dataset)
        ctx.config.catalogue_changed.connect(
            lambda: panel.set_tv_datasets((ctx.config.catalogue or {}).get("datasets", [])))
        ctx.service.restarted.connect(panel._service_restarted)
        return panel

    def is_ready(self) -> bool:
        return self.dataset is not None and not self.loading

    def menu_entries(self) -> list[MenuEntry]:
        return [MenuEntry("File", "Open image folder…", self.browse_folder, QKeySequence.StandardKey.Open,
                          "Load a folder of images as the dataset")]

    def save_state(self):
        return self.splitter.saveState()

    def restore_state(self, state) -> None:
        self.splitter.restoreState(state)

    def _service_restarted(self) -> None:
        if self.dataset is None and not self.loading:
            self.load_from_ui()

    # -- loading ---------------------------------------------------------------------------
    @property
    def loading(self) -> bool:
        return self._rid is not None

    def load_from_ui(self) -> None:
        spec = self.spec_from_ui()
        if not spec:
            self._fail({"message": "choose a folder first (Browse…, or drop one on the window)"})
            return
        self.load(spec, self.size.value(), download=self.kind.currentIndex() == 2 and self.tv_download.isChecked())

    def load(self, spec: str, image_size: int, download: bool = False) -> int:
        self._spec, self._size, self._download = spec, int(image_size), download
        self.bar.setRange(0, 0)  # busy until the first progress report
        self.bar.setFormat("")
        self.status.setText(f"Loading {spec} …" + ("" if self.service.is_ready else " (starting the engine)"))
        self.status.setStyleSheet("")
        self.cancel_btn.setEnabled(True)
        self.load_btn.setEnabled(False)
        rid = self.service.request("load_dataset", {"spec": spec, "image_size": int(image_size),
                                                    "download": bool(download)},
                                   kind="load_dataset",  # a newer load replaces this one
                                   on_done=self._loaded, on_error=self._fail, on_progress=self._progress,
                                   on_cancelled=self._cancelled)
        self._rid = rid
        self.loading_changed.emit(True)
        return self._rid

    def cancel(self) -> None:
        if self._rid is not None:
            self.service.cancel(self._rid)  # runs _cancelled

    def _progress(self, p) -> None:
        if p.total > 0:
            self.bar.setRange(0, p.total)
            self.bar.setValue(p.done)
            self.bar.setFormat(f"%v / %m  {p.detail}")
        else:
            self.bar.setRange(0, 0)
        self.status.setText(f"Loading {self._spec}: {p.detail}")

    def _done(self) -> None:
        self._rid = None
        self.cancel_btn.setEnabled(False)
        self.load_btn.setEnabled(True)
        self.loading_changed.emit(False)

    def _cancelled(self) -> None:
        self._done()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("")
        self.status.setText("Loading cancelled." + (" The previous dataset is still shown." if self.dataset else ""))

    def _fail(self, err: dict) -> None:
        if self._rid is not None:
            self._done()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("")
        self._last_error = err.get("message", str(err))
        self.status.setText(f"Could not load the dataset: {self._last_error}")
        self.status.setStyleSheet("color: #c0392b;")
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
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.bar.setFormat("loaded")
        self.status.setText(f"Loaded {len(ds)} images.")
        self.dataset_loaded.emit(ds)

    # -- showing ---------------------------------------------------------------------------
    def set_dataset(self, ds: ViewDataset) -> None:
        self.dataset = ds
        self.grid.model_.set_dataset(ds)
        self.chosen_index = None
        labelled = "labelled, " + f"{len(ds.class_names)} classes" if ds.labelled else "unlabeled"
        total = f"{ds.total:,}" + (f" (the grid shows {len(ds):,})" if ds.total != len(ds) else "")
        self.summary.setText(f"<b>{ds.name or ds.spec}</b><br>{total} images, {ds.image_size}×{ds.image_size} px, "
                             f"{labelled}<br><span style='color:#666'>{ds.source or ds.spec}</span>")
        self.classes.blockSignals(True)
        self.classes.setRowCount(0)
        for k, (name, n) in enumerate(ds.class_counts()):
            self.classes.insertRow(k)
            sw = QPixmap(12, 12)
            sw.fill(class_color(k))
            item = QTableWidgetItem(name)
            item.setIcon(sw)
            self.classes.setItem(k, 0, item)
            cnt = QTableWidgetItem(f"{n:,}")
            cnt.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.classes.setItem(k, 1, cnt)
        self.classes.blockSignals(False)
        self.classes.setVisible(bool(ds.class_counts()))
        self.skipped.setRowCount(0)
        for r, (path, why) in enumerate(ds.skipped[:5000]):
            self.skipped.insertRow(r)
            item = QTableWidgetItem(Path(path).name)
            item.setToolTip(path)
            self.skipped.setItem(r, 0, item)
            why_item = QTableWidgetItem(why)
            why_item.setToolTip(why)
            why_item.setForeground(QColor("#c0392b"))
            self.skipped.setItem(r, 1, why_item)
        self.skipped_box.setTitle(f"Skipped files ({len(ds.skipped)})")
        self.skipped_box.setVisible(bool(ds.skipped))
        if ds.skipped:
            self.skipped.setColumnWidth(0, 160)
        self.notes.setText("\n".join(f"• {n}" for n in ds.notes))
        self.notes.setVisible(bool(ds.notes))
        self.grid_info.setText(f"{len(ds):,} images — click one to preview its pretext tasks")
        self.set_spec(ds.spec, ds.image_size)

    def _on_class_filter(self) -> None:
        if self.dataset is None:
            return
        rows = sorted({i.row() for i in self.classes.selectedIndexes()})
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
