"""The embedding map's controls: projection, colouring, pan/box/lasso, sample size and split, "Map from
checkpoint" / "Snapshot now", Export; and the status line with its progress bar and Cancel."""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.map.export_button import ExportButton
from engine.eval.projection import PROJECTION_TITLES

PROJECTIONS = ("umap", "pca", "tsne")
MODES = (("pan", "Pan", "Drag to pan, wheel to zoom"), ("rect", "Box", "Drag a rectangle to select images"),
         ("lasso", "Lasso", "Draw around images to select them"))


class MapControls(QWidget):
    projectionChanged = Signal()
    colorChanged = Signal()
    modeChanged = Signal(str)  # "pan", "rect", "lasso"
    refreshClicked = Signal()
    attractToggled = Signal(bool)

    def __init__(self, export: ExportButton, parent=None):
        super().__init__(parent)
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(4)
        bar = QHBoxLayout()
        bar.setSpacing(6)
        bar.addWidget(QLabel("Projection"))
        self.projection = QComboBox()
        for p in PROJECTIONS:
            self.projection.addItem(PROJECTION_TITLES[p], p)
        self.projection.setToolTip("UMAP keeps neighbourhoods (default); PCA is instant and linear; "
                                   "t-SNE separates clusters strongly but is slower")
        self.projection.currentIndexChanged.connect(lambda *_: self.projectionChanged.emit())
        bar.addWidget(self.projection)
        bar.addWidget(QLabel("Colour"))
        self.color_by = QComboBox()
        self.color_by.setMinimumContentsLength(18)
        self.color_by.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.color_by.currentIndexChanged.connect(lambda *_: self.colorChanged.emit())
        bar.addWidget(self.color_by)
        bar.addSpacing(8)
        self.mode_buttons: dict[str, QAction] = {}
        group = QActionGroup(self)
        for mode, text, tip in MODES:
            act = QAction(text, self, checkable=True, toolTip=tip)
            act.setData(mode)
            group.addAction(act)
            btn = QToolButton()
            btn.setDefaultAction(act)
            bar.addWidget(btn)
            self.mode_buttons[mode] = act
        self.mode_buttons["pan"].setChecked(True)
        group.triggered.connect(lambda a: self.modeChanged.emit(a.data()))
        bar.addSpacing(8)
        self.attract = QToolButton(text="Attract / repel", checkable=True)
        self.attract.setToolTip("For a two-view method's snapshots: the chosen image's two views and how the other "
                                "images of their batch moved (click one of the ringed images to choose it)")
        self.attract.setEnabled(False)
        self.attract.toggled.connect(self.attractToggled)
        bar.addWidget(self.attract)
        bar.addStretch(1)
        root.addLayout(bar)
        # a second row keeps the panel narrow enough for a 1024-pixel-wide screen
        bar = QHBoxLayout()
        bar.setSpacing(6)
        bar.addWidget(QLabel("Images"))
        self.sample = QSpinBox()
        self.sample.setRange(50, 100000)
        self.sample.setSingleStep(500)
        self.sample.setValue(5000)
        self.sample.setToolTip("How many images a map from the checkpoint embeds (a random sample; all of them "
                               "when the set has fewer)")
        bar.addWidget(self.sample)
        self.split = QComboBox()
        self.split.addItem("evaluation set", "eval")
        self.split.addItem("training set", "train")
        self.split.setToolTip("Which images a map from the checkpoint shows: the run's evaluation or training "
                              "images, or the dataset loaded in the Data view seen through the run's encoder "
                              "(snapshots use the evaluation set)")
        self.split.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.loaded_spec = ""  # the dataset loaded in the Data view ("" before one is)
        bar.addWidget(self.split)
        self.refresh_btn = QPushButton("Map from checkpoint")
        self.refresh_btn.setToolTip("Extract features with the run's latest checkpoint and map them")
        self.refresh_btn.clicked.connect(self.refreshClicked)
        bar.addWidget(self.refresh_btn)
        self.export_btn = export
        bar.addWidget(export)
        bar.addStretch(1)
        root.addLayout(bar)

    @property
    def projection_name(self) -> str:
        return self.projection.currentData()

    def set_loaded(self, spec: str, name: str, count: int) -> None:
        """Offer the dataset loaded in the Data view (``spec``; ``count`` images) as images to map."""
        self.loaded_spec = str(spec)
        text = f"loaded: {name} ({count:,} images)"
        i = self.split.findData("loaded")
        if i < 0:
            self.split.addItem(text, "loaded")
        else:
            self.split.setItemText(i, text)
        self.split.setItemData(self.split.findData("loaded"), f"{spec}: its images through the run's encoder",
                               Qt.ItemDataRole.ToolTipRole)

    def source(self) -> tuple[str, str]:
        """What a map from the checkpoint shows: (split, data): the run's "eval" or "train" images (data ""),
        or the loaded dataset (split "train": all of it but a held-out part when it is labelled)."""
        choice = self.split.currentData()
        if choice == "loaded" and self.loaded_spec:
            return "train", self.loaded_spec
        return (choice if choice in ("eval", "train") else "eval"), ""

    def show_count(self, n: int) -> None:
        """The map shown has ``n`` images: the box says so (without asking for a new map)."""
        if n and self.sample.value() != n:
            with QSignalBlocker(self.sample):
                self.sample.setValue(max(self.sample.minimum(), n))

    def set_color_choices(self, items: list[str]) -> bool:
        """Offer ``items`` (keeping the choice where it still exists). Returns whether they changed."""
        if items == [self.color_by.itemText(i) for i in range(self.color_by.count())]:
            return False
        keep = self.color_by.currentText()
        with QSignalBlocker(self.color_by):
            self.color_by.clear()
            self.color_by.addItems(items)
            i = self.color_by.findText(keep)
            self.color_by.setCurrentIndex(i if i >= 0 else 0)
        return True

    def set_run_state(self, has_run: bool, live: bool) -> None:
        self.refresh_btn.setEnabled(has_run)
        self.refresh_btn.setText("Snapshot now" if live else "Map from checkpoint")
        # a live run's maps are its snapshots (their own images): the sample and split are for checkpoint maps
        self.sample.setEnabled(has_run and not live)
        self.split.setEnabled(has_run and not live)
        self.export_btn.setEnabled(has_run)


class StatusRow(QWidget):
    """One line of status with a progress bar and Cancel. Nothing here changes its size: a relayout
    would resize the map (tens of ms at 5,000 points)."""

    cancelClicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel("No run open: press Start in the Run panel or open a run from the Run history")
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.progress = QProgressBar()
        self.progress.setFixedSize(180, 14)
        self.progress.setTextVisible(False)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancelClicked)
        for w in (self.progress, self.cancel_btn):
            sp = w.sizePolicy()
            sp.setRetainSizeWhenHidden(True)
            w.setSizePolicy(sp)
            w.hide()
        row.addWidget(self.label, 1)
        row.addWidget(self.progress)
        row.addWidget(self.cancel_btn)
        self.error = False

    def set_text(self, text: str, error: bool = False) -> bool:
        """Returns whether anything changed (a label change costs a layout pass of the whole panel)."""
        if text == self.label.text() and error == self.error:
            return False
        if error != self.error:
            self.label.setStyleSheet("color: #b00020;" if error else "")
        self.error = error
        self.label.setText(text)
        self.label.setToolTip(text)
        return True

    def busy(self, on: bool) -> None:
        self.progress.setVisible(on)
        self.cancel_btn.setVisible(on)
        if on:
            self.progress.setRange(0, 0)

    def set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
