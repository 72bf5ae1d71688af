"""The Embedding map panel: the map of a run's embeddings with its controls, timeline and side panels.

All heavy work happens in the analysis process (app/analysis_client.py -> engine/analysis.py): the
panel sends a ``map`` request and draws what comes back in stages (PCA at once, then UMAP frames,
then the final layout). It holds plain numpy arrays only.

Feed it from the main window:
    panel.set_run(run_dir)             # open a run (finished or live): its snapshots fill the timeline
    panel.on_engine_message(msg)       # RunStarted / Embedding messages of the live engine
    panel.embedRequested -> engine_client.command("embed")   # "Refresh" during a live run
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QColor, QIcon, QLinearGradient, QPainter, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.widgets.embedding_map import EmbeddingMap
from app.widgets.eval_views import BarChart, ThumbGrid, class_color, qpixmap
from engine.eval.neighbors import nearest_neighbors
from engine.eval.projection import PROJECTION_TITLES
from engine.messages import FeatureSource, MapStage

PROJECTIONS = ("umap", "pca", "tsne")
COLOR_CLASS, COLOR_CLUSTER = "class", "k-means cluster"
GRADIENT = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
            "#b5de2b", "#fde725"]


def gradient_palette(levels: int = 32) -> list[QColor]:
    stops = [QColor(c) for c in GRADIENT]
    out = []
    for i in range(levels):
        t = i / (levels - 1) * (len(stops) - 1)
        j = min(int(t), len(stops) - 2)
        f = t - j
        a, b = stops[j], stops[j + 1]
        out.append(QColor.fromRgbF(a.redF() + (b.redF() - a.redF()) * f, a.greenF() + (b.greenF() - a.greenF()) * f,
                                   a.blueF() + (b.blueF() - a.blueF()) * f))
    return out


@dataclass
class MapState:
    """One map: a set of points (features, labels, thumbnails) and its layouts by projection."""

    key: str
    features: np.ndarray
    indices: np.ndarray
    labels: np.ndarray | None
    class_names: list[str]
    thumbs: np.ndarray | None = None
    paths: list[str] | None = None
    step: int | None = None
    epoch: float | None = None
    split: str = "eval"
    layouts: dict = field(default_factory=dict)
    clusters: np.ndarray | None = None
    properties: dict = field(default_factory=dict)
    note: str = ""

    def same_points(self, other: MapState | None) -> bool:
        return other is not None and len(other.indices) == len(self.indices) and \
            np.array_equal(other.indices, self.indices)


@dataclass
class Entry:
    """A timeline entry: an embedding snapshot of the run (from disk or a live message) or a fresh extraction."""

    key: str
    step: int | None
    epoch: float | None
    kind: str  # "snapshot", "live", "checkpoint"
    features: np.ndarray | None = None
    labels: np.ndarray | None = None
    indices: np.ndarray | None = None

    @property
    def title(self) -> str:
        ep = f"epoch {self.epoch:g}" if self.epoch is not None else ""
        st = f"step {self.step}" if self.step is not None else ""
        what = {"checkpoint": "from the checkpoint", "live": "live", "snapshot": ""}[self.kind]
        return " · ".join(s for s in (ep, st, what) if s) or self.kind


class GradientLegend(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.lo = self.hi = 0.0
        self.name = ""
        self.setMinimumHeight(46)

    def set_range(self, name: str, lo: float, hi: float) -> None:
        self.name, self.lo, self.hi = name, lo, hi
        self.update()

    def paintEvent(self, ev):  # noqa: N802
        p = QPainter(self)
        fm = self.fontMetrics()
        p.setPen(self.palette().color(self.palette().ColorRole.Text))
        p.drawText(4, fm.ascent() + 2, self.name)
        g = QLinearGradient(4, 0, self.width() - 4, 0)
        for i, c in enumerate(GRADIENT):
            g.setColorAt(i / (len(GRADIENT) - 1), QColor(c))
        y = fm.height() + 4
        p.fillRect(4, y, self.width() - 8, 12, g)
        p.drawText(4, y + 14 + fm.ascent(), f"{self.lo:.3g}")
        hi = f"{self.hi:.3g}"
        p.drawText(self.width() - 4 - fm.horizontalAdvance(hi), y + 14 + fm.ascent(), hi)
        p.end()


class EncoderExampleDialog(QDialog):
    """Shows where the encoder went and the one line that loads it back."""

    def __init__(self, parent, path: str, examples: dict[str, str]):
        super().__init__(parent)
        self.setWindowTitle("Encoder exported")
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Saved <b>{path}</b> (safetensors). Load it back with one line of Python:"))
        self.text = QPlainTextEdit("\n\n".join(f"# {k}\n{v}" for k, v in examples.items()))
        self.text.setReadOnly(True)
        self.text.setMinimumSize(640, 120)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        lay.addWidget(self.text)
        lay.addWidget(QLabel("The workbench's backbones normalise [0, 1] images themselves; the torchvision form "
                             "expects ImageNet-normalised inputs."))
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = bb.addButton("Copy", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: (self.text.selectAll(), self.text.copy()))
        bb.rejected.connect(self.close)
        lay.addWidget(bb)


class EmbeddingPanel(QWidget):
    embedRequested = Signal()  # a live run: ask the engine for a fresh snapshot
    statusMessage = Signal(str)
    mapShown = Signal(str)  # key of the map now drawn (stage "first" or a final layout)
    layoutFinished = Signal(str)  # projection name when a final layout is drawn

    def __init__(self, client=None, parent=None):
        super().__init__(parent)
        self.client = client
        self.run_dir: str | None = None
        self.live = False
        self.entries: list[Entry] = []
        self.states: dict[str, MapState] = {}
        self.thumb_cache: dict[tuple, tuple] = {}
        self.current: MapState | None = None
        self.current_entry: Entry | None = None
        self.request_id: int | None = None
        self.pending_key: str | None = None
        self.selected_rows = np.zeros(0, np.int64)
        self.clicked_row = -1
        self.isolated: int | None = None
        self._warm_start = False
        self._dialogs: list = []
        self.error_shown = False
        self._build()
        self.map.describe = self._describe
        self._play = QTimer(self, interval=1400)
        self._play.timeout.connect(self._play_step)
        self._poll = QTimer(self, interval=10_000)  # a live run's new snapshots on disk (headless jobs too)
        self._poll.timeout.connect(self._poll_snapshots)
        self._update_enabled()

    # -- layout --------------------------------------------------------------------------------------------
    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        root.setSpacing(4)

        bar = QHBoxLayout()
        bar.setSpacing(6)
        bar.addWidget(QLabel("Projection"))
        self.projection = QComboBox()
        for p in PROJECTIONS:
            self.projection.addItem(PROJECTION_TITLES[p], p)
        self.projection.setToolTip("UMAP keeps neighbourhoods (default); PCA is instant and linear; "
                                   "t-SNE separates clusters strongly but is slower")
        self.projection.currentIndexChanged.connect(self._on_projection)
        bar.addWidget(self.projection)
        bar.addWidget(QLabel("Colour"))
        self.color_by = QComboBox()
        self.color_by.setMinimumContentsLength(18)
        self.color_by.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.color_by.currentIndexChanged.connect(self._recolor)
        bar.addWidget(self.color_by)
        bar.addSpacing(8)
        self.mode_buttons = {}
        group = QActionGroup(self)
        for mode, text, tip in (("pan", "Pan", "Drag to pan, wheel to zoom"),
                                ("rect", "Box", "Drag a rectangle to select images"),
                                ("lasso", "Lasso", "Draw around images to select them")):
            act = QAction(text, self, checkable=True, toolTip=tip)
            act.setData(mode)
            group.addAction(act)
            btn = QToolButton()
            btn.setDefaultAction(act)
            bar.addWidget(btn)
            self.mode_buttons[mode] = act
        self.mode_buttons["pan"].setChecked(True)
        group.triggered.connect(lambda a: self.map.set_mode(a.data()))
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
        self.sample.setToolTip("How many images a map from the checkpoint embeds (a random sample)")
        bar.addWidget(self.sample)
        self.split = QComboBox()
        self.split.addItem("evaluation set", "eval")
        self.split.addItem("training set", "train")
        self.split.setToolTip("Which images a map from the checkpoint shows (snapshots use the evaluation set)")
        bar.addWidget(self.split)
        self.refresh_btn = QPushButton("Map from checkpoint")
        self.refresh_btn.setToolTip("Extract features with the run's latest checkpoint and map them")
        self.refresh_btn.clicked.connect(self.refresh)
        bar.addWidget(self.refresh_btn)
        self.export_btn = QToolButton()
        self.export_btn.setText("Export")
        self.export_btn.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.export_btn)
        menu.addAction("Embeddings and 2-D map (CSV + .npy)…", self._export_embedding_dialog)
        menu.addAction("Map as PNG…", self._save_png_dialog)
        menu.addAction("Encoder (safetensors)…", self._export_encoder_dialog)
        self.export_btn.setMenu(menu)
        bar.addWidget(self.export_btn)
        bar.addStretch(1)
        root.addLayout(bar)

        status = QHBoxLayout()
        # nothing in this row may change its size: a relayout would resize the map (tens of ms at 5,000 points)
        self.status = QLabel("Open a run to see its embedding map")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.progress = QProgressBar()
        self.progress.setFixedSize(180, 14)
        self.progress.setTextVisible(False)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel)
        for w in (self.progress, self.cancel_btn):
            sp = w.sizePolicy()
            sp.setRetainSizeWhenHidden(True)
            w.setSizePolicy(sp)
            w.hide()
        status.addWidget(self.status, 1)
        status.addWidget(self.progress)
        status.addWidget(self.cancel_btn)
        root.addLayout(status)

        split = QSplitter(Qt.Orientation.Horizontal)
        # the figure: map + legend (what "Map as PNG" saves)
        self.figure = QFrame()
        fl = QHBoxLayout(self.figure)
        fl.setContentsMargins(0, 0, 0, 0)
        fl.setSpacing(2)
        self.map = EmbeddingMap()
        self.map.setMinimumSize(360, 300)
        fl.addWidget(self.map, 1)
        legend_box = QVBoxLayout()
        self.legend_title = QLabel("")
        self.legend_title.setTextFormat(Qt.TextFormat.PlainText)
        f = self.legend_title.font()
        f.setBold(True)
        self.legend_title.setFont(f)
        self.legend_title.setFixedWidth(170)
        self.legend_title.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        legend_box.addWidget(self.legend_title)
        self.legend = QListWidget()
        self.legend.setIconSize(QSize(12, 12))
        self.legend.setFixedWidth(170)
        self.legend.setToolTip("Click a class to highlight it; click again to show all")
        self.legend.itemClicked.connect(self._on_legend_click)
        legend_box.addWidget(self.legend, 1)
        self.gradient_box = QWidget()
        gl = QVBoxLayout(self.gradient_box)
        gl.setContentsMargins(0, 0, 0, 0)
        self.gradient = GradientLegend()
        self.gradient.setFixedWidth(170)
        gl.addWidget(self.gradient)
        gl.addStretch(1)
        self.gradient_box.hide()
        legend_box.addWidget(self.gradient_box, 1)
        fl.addLayout(legend_box)
        split.addWidget(self.figure)

        self.side = QTabWidget()
        self.side.setMinimumWidth(260)
        point = QWidget()
        pl = QVBoxLayout(point)
        pl.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        self.point_image = QLabel()
        self.point_image.setFixedSize(96, 96)
        self.point_image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.point_image.setFrameShape(QFrame.Shape.StyledPanel)
        self.point_info = QLabel("Click a point: its nearest neighbours in feature space appear here")
        self.point_info.setWordWrap(True)
        self.point_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top.addWidget(self.point_image)
        top.addWidget(self.point_info, 1)
        pl.addLayout(top)
        krow = QHBoxLayout()
        krow.addWidget(QLabel("Neighbours"))
        self.k = QSpinBox()
        self.k.setRange(1, 100)
        self.k.setValue(12)
        self.k.valueChanged.connect(lambda *_: self.show_neighbors(self.clicked_row) if self.clicked_row >= 0 else None)
        krow.addWidget(self.k)
        krow.addStretch(1)
        self.search_all = QPushButton("Search all images")
        self.search_all.setToolTip("Nearest neighbours among all images of the set, not only those on the map")
        self.search_all.clicked.connect(self._search_all)
        krow.addWidget(self.search_all)
        pl.addLayout(krow)
        self.neighbors = ThumbGrid(tile=64, captions=2, empty_text="No point chosen yet")
        self.neighbors.clicked.connect(self._on_neighbor_click)
        pl.addWidget(self.neighbors, 1)
        self.side.addTab(point, "Neighbours")

        sel = QWidget()
        sl = QVBoxLayout(sel)
        sl.setContentsMargins(4, 4, 4, 4)
        self.sel_info = QLabel("Choose Box or Lasso and drag over the map to select images")
        self.sel_info.setWordWrap(True)
        sl.addWidget(self.sel_info)
        self.histogram = BarChart(percent=False)
        self.histogram.hide()
        sl.addWidget(self.histogram)
        self.sel_grid = ThumbGrid(tile=48, captions=1, empty_text="Nothing selected")
        self.sel_grid.clicked.connect(lambda i: self._on_pick_row(int(self.selected_rows[i]))
                                      if i < len(self.selected_rows) else None)
        sl.addWidget(self.sel_grid, 1)
        self.side.addTab(sel, "Selection")
        split.addWidget(self.side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([800, 300])
        root.addWidget(split, 1)

        tl = QHBoxLayout()
        tl.addWidget(QLabel("Maps over training"))
        self.play_btn = QToolButton()
        self.play_btn.setText("▶")
        self.play_btn.setToolTip("Play through the maps of the run's epochs")
        self.play_btn.setCheckable(True)
        self.play_btn.toggled.connect(self._toggle_play)
        tl.addWidget(self.play_btn)
        self.timeline = QSlider(Qt.Orientation.Horizontal)
        self.timeline.setRange(0, 0)
        self.timeline.setPageStep(1)
        self.timeline.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.timeline.valueChanged.connect(self._on_timeline)
        tl.addWidget(self.timeline, 1)
        self.timeline_label = QLabel("no snapshots")
        self.timeline_label.setFixedWidth(260)
        tl.addWidget(self.timeline_label)
        self.follow = QCheckBox("Follow training")
        self.follow.setChecked(True)
        self.follow.setToolTip("Show each new snapshot of a live run as it arrives")
        tl.addWidget(self.follow)
        root.addLayout(tl)

        self.map.hoveredChanged.connect(self._on_hover)
        self.map.pointClicked.connect(self._on_pick_row)
        self.map.selectionChanged.connect(self.set_selection)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(1100, 700)

    # -- public API --------------------------------------------------------------------------------------------
    def set_client(self, client) -> None:
        self.client = client
        self._update_enabled()

    def set_run(self, run_dir: str | None, live: bool = False) -> None:
        """Show the maps of ``run_dir`` (its snapshots, or a fresh map from its checkpoint)."""
        self.cancel()
        self.run_dir = str(run_dir) if run_dir else None
        self.live = live
        self.entries = []
        self.states = {}
        self.current = None
        self.current_entry = None
        self.clicked_row = -1
        self.selected_rows = np.zeros(0, np.int64)
        self.map.set_points(np.zeros((0, 2), np.float32))
        self._reset_timeline()
        self._update_enabled()
        self._poll.stop()
        if live and self.run_dir:
            self._poll.start()
        if not self.run_dir:
            self.map.set_message("No run open")
            return
        self.map.set_message("Loading the map…")
        self._set_status(f"Run {Path(self.run_dir).name}: looking for embedding snapshots…")
        if self.client is not None:
            self.client.request("snapshots", {"run_dir": self.run_dir}, kind="snapshots", on_done=self._on_snapshots,
                                on_error=lambda e: self._set_status(e["message"], error=True))

    def on_engine_message(self, msg) -> None:
        """RunStarted / Embedding / RunFinished messages of the live engine session."""
        kind = type(msg).__name__
        if kind == "RunStarted":
            self.set_run(msg.run_dir, live=True)
        elif kind == "Embedding":
            entry = Entry(f"step:{msg.step}", int(msg.step), float(msg.epoch), "live", np.asarray(msg.features),
                          None if msg.labels is None else np.asarray(msg.labels), np.asarray(msg.indices))
            self._add_entry(entry, show=self.follow.isChecked() or self.current is None)
        elif kind in ("RunFinished", "RunFailed"):
            self.live = False
            self._poll.stop()
            self._update_enabled()
            if kind == "RunFinished" and self.client is not None and self.run_dir:
                self._poll_snapshots()

    def _poll_snapshots(self) -> None:
        if self.client is not None and self.run_dir and self.client.alive:
            self.client.request("snapshots", {"run_dir": self.run_dir}, kind="snapshots-poll",
                                on_done=self._on_new_snapshots)

    def _on_new_snapshots(self, d: dict) -> None:
        if d.get("run_dir") != self.run_dir:  # a poll of the run shown before
            return
        known = {e.key for e in self.entries}
        new = [s for s in d.get("snapshots", []) if f"step:{s['step']}" not in known]
        for i, s in enumerate(new):
            last = i == len(new) - 1
            self._add_entry(Entry(f"step:{s['step']}", s["step"], s.get("epoch"), "snapshot"),
                            show=last and self.follow.isChecked() and self.request_id is None)

    def refresh(self) -> None:
        """A live run: ask the engine for a snapshot; otherwise map features from the checkpoint."""
        if not self.run_dir:
            return
        if self.live:
            self.embedRequested.emit()
            self._set_status("Asked the training engine for a fresh embedding snapshot…")
            return
        entry = Entry(f"ckpt:{self.split.currentData()}:{self.sample.value()}", None, None, "checkpoint")
        self.states.pop(entry.key, None)
        self._add_entry(entry, show=True)

    def cancel(self) -> None:
        if self.client is not None and self.request_id is not None:
            self.client.cancel(self.request_id)
        self.request_id = None
        self.pending_key = None
        self._busy(False)

    # -- timeline ---------------------------------------------------------------------------------------------
    def _reset_timeline(self) -> None:
        self.timeline.blockSignals(True)
        self.timeline.setRange(0, 0)
        self.timeline.blockSignals(False)
        self.timeline_label.setText("no snapshots")

    def _add_entry(self, entry: Entry, show: bool) -> None:
        for i, e in enumerate(self.entries):
            if e.key == entry.key:
                self.entries[i] = entry
                break
        else:
            self.entries.append(entry)
            snaps = [e for e in self.entries if e.kind != "checkpoint"]
            others = [e for e in self.entries if e.kind == "checkpoint"]
            snaps.sort(key=lambda e: (e.step if e.step is not None else -1))
            self.entries = snaps + others
        self.timeline.blockSignals(True)
        self.timeline.setRange(0, max(0, len(self.entries) - 1))
        if show:
            self.timeline.setValue(self.entries.index(entry))
        self.timeline.blockSignals(False)
        self._update_timeline_label()
        if show:
            self.show_entry(entry)

    def _update_timeline_label(self) -> None:
        if not self.entries:
            self.timeline_label.setText("no snapshots")
            return
        i = self.timeline.value()
        e = self.entries[i]
        self.timeline_label.setText(f"{e.title}  ({i + 1}/{len(self.entries)})")

    def _on_timeline(self, i: int) -> None:
        if 0 <= i < len(self.entries):
            self._update_timeline_label()
            self.show_entry(self.entries[i])

    def _toggle_play(self, on: bool) -> None:
        if on and len(self.entries) > 1:
            if self.timeline.value() >= len(self.entries) - 1:
                self.timeline.setValue(0)
            self._play.start()
        else:
            self._play.stop()
            self.play_btn.setChecked(False)

    def _play_step(self) -> None:
        if self.request_id is not None or self.map.animating:
            return  # wait for the current map
        i = self.timeline.value() + 1
        if i >= len(self.entries):
            self._toggle_play(False)
            return
        self.timeline.setValue(i)

    def _on_snapshots(self, d: dict) -> None:
        snaps = d.get("snapshots", [])
        for s in snaps:
            self._add_entry(Entry(f"step:{s['step']}", s["step"], s.get("epoch"), "snapshot"), show=False)
        if self.entries:
            self.timeline.setValue(len(self.entries) - 1)
            self.show_entry(self.entries[-1])
        elif not self.live:
            self.refresh()
        else:
            self.map.set_message("The map appears with the first embedding snapshot\n(or press Refresh)")
            self._set_status("Live run: waiting for an embedding snapshot (eval.embed_every_epochs), "
                             "or press Refresh")

    # -- showing maps ------------------------------------------------------------------------------------------
    @property
    def projection_name(self) -> str:
        return self.projection.currentData()

    def show_entry(self, entry: Entry) -> None:
        self.current_entry = entry
        proj = self.projection_name
        state = self.states.get(entry.key)
        if state is not None and proj in state.layouts:
            self._display(state, state.layouts[proj], animate=True)
            self._set_status(self._summary(state))
            return
        self._request_map(entry, state)

    def _request_map(self, entry: Entry, state: MapState | None) -> None:
        if self.client is None or not self.run_dir:
            return
        args = {"run_dir": self.run_dir, "projection": self.projection_name, "key": entry.key}
        if state is not None:
            args.update(features=state.features, labels=state.labels, indices=state.indices,
                        step=state.step, epoch=state.epoch)
        elif entry.kind == FeatureSource.LIVE:
            args.update(features=entry.features, labels=entry.labels, indices=entry.indices, step=entry.step,
                        epoch=entry.epoch)
        elif entry.kind == FeatureSource.SNAPSHOT:
            args["snapshot"] = entry.step
        else:
            args.update(split=self.split.currentData(), sample=self.sample.value())
        indices = state.indices if state is not None else entry.indices
        cur = self.current
        self._warm_start = False
        if cur is not None and self.map.count == len(cur.indices):
            if indices is not None and len(indices) == len(cur.indices) and np.array_equal(indices, cur.indices):
                args.update(init=self.map.coords.copy(), init_indices=cur.indices)
                self._warm_start = True
            elif indices is None and entry.kind == "snapshot" and cur.key.startswith("step:"):
                # snapshots of one run share their images: let the worker check it
                args.update(init=self.map.coords.copy(), init_indices=cur.indices)
                self._warm_start = True
        tkey = self._thumb_key(indices, entry) if indices is not None else None
        args["thumbs"] = not (tkey is not None and tkey in self.thumb_cache)
        self.pending_key = entry.key
        self.request_id = self.client.request("map", args, kind="map", on_progress=self._on_map_progress,
                                              on_partial=self._on_map_partial, on_done=self._on_map_done,
                                              on_error=self._on_map_error)
        self._busy(True, f"Computing the map ({entry.title})…")

    def _thumb_key(self, indices, entry: Entry) -> tuple:
        split = "eval" if entry.kind in ("snapshot", "live") else self.split.currentData()
        return (self.run_dir, split, len(indices), hash(np.asarray(indices).tobytes()))

    # -- the map request's replies (one request at a time: the client drops those of a replaced one) --------
    def _on_map_progress(self, p) -> None:
        self.progress.setRange(0, max(1, p.total))
        self.progress.setValue(p.done)
        if p.detail:
            self._set_status(p.detail + "…")

    def _on_map_error(self, err: dict) -> None:
        self._busy(False)
        self.request_id = None
        self._set_status(err["message"] or "the map failed", error=True)
        if self.current is None:
            self.map.set_message("No map: " + (err["message"] or "error"))

    def _on_map_partial(self, d: dict) -> None:
        stage = MapStage(d["stage"])
        key = d.get("key") or self.pending_key
        if stage is MapStage.PREVIEW:
            self._on_map_preview(key, d)
        elif stage is MapStage.FIRST:
            self._on_map_first(key, d)
        elif (state := self.states.get(key)) is not None:
            {MapStage.META: self._on_map_meta, MapStage.EXTRAS: self._on_map_extras,
             MapStage.LAYOUT: self._on_map_layout}[stage](state, d)

    def _on_map_preview(self, key: str, d: dict) -> None:
        # part of the sample while the rest is extracted: drawn at once, replaced by the full map
        pkey = f"{key}#preview"
        state = MapState(pkey, d["features"], np.asarray(d["indices"]), d.get("labels"),
                         list(d.get("class_names") or []), thumbs=d.get("thumbs"), paths=d.get("paths"),
                         step=d.get("step"), epoch=d.get("epoch"), split=d.get("split", "eval"))
        state.layouts["pca"] = np.asarray(d["coords"], np.float32)
        self._display(state, state.layouts["pca"], animate=False)
        self._set_status(self._summary(state) + f" · a first look at {len(state.indices):,} of "
                                                f"{d.get('total', 0):,} images; extracting the rest…")
        self.mapShown.emit(pkey)

    def _on_map_first(self, key: str, d: dict) -> None:
        state = self.states.get(key)
        if state is None:
            state = MapState(key, d["features"], np.asarray(d["indices"]), d.get("labels"),
                             list(d.get("class_names") or []), step=d.get("step"), epoch=d.get("epoch"),
                             split=d.get("split", "eval"))
            self.states[key] = state
        entry = next((e for e in self.entries if e.key == key), None)
        if entry is not None and entry.step is None and d.get("step") is not None:
            entry.step, entry.epoch = d.get("step"), d.get("epoch")
            self._update_timeline_label()
        self._apply_meta(state, d, entry)
        state.layouts["pca"] = np.asarray(d["coords"], np.float32)
        if not self._warm_start or self.current is None or not state.same_points(self.current):
            self._display(state, state.layouts["pca"], animate=True)
        else:
            self._display(state, None)
        if not d.get("final"):
            self._set_status(self._summary(state) + f" · computing {PROJECTION_TITLES[self.projection_name]}…")
        self.mapShown.emit(key)

    def _on_map_meta(self, state: MapState, d: dict) -> None:
        entry = next((e for e in self.entries if e.key == state.key), None)
        self._apply_meta(state, d, entry)
        if state is self.current:
            self.map.thumbs = state.thumbs
            self._fill_color_choices()
            self._set_status(self._summary(state) + (f" · computing {PROJECTION_TITLES[self.projection_name]}…"
                                                     if self.request_id is not None else ""))

    def _on_map_extras(self, state: MapState, d: dict) -> None:
        state.clusters = d.get("clusters")
        state.properties = dict(d.get("properties") or {})
        if state is self.current:
            self._fill_color_choices()

    def _on_map_layout(self, state: MapState, d: dict) -> None:
        if state is self.current:
            self.map.move_to(d["coords"], animate=True, duration_ms=250)

    def _on_map_done(self, d: dict) -> None:
        state = self.states.get(d.get("key") or self.pending_key)
        if state is None:
            return
        proj = d.get("projection", self.projection_name)
        state.layouts[proj] = np.asarray(d["coords"], np.float32)
        if state is self.current:
            self.map.move_to(state.layouts[proj], animate=True)
        self._finish(state, proj, d.get("seconds"))

    def _apply_meta(self, state: MapState, d: dict, entry: Entry | None) -> None:
        """Thumbnails, class names, paths (and labels of unlabeled snapshots) from a reply, or the cache."""
        tkey = self._thumb_key(state.indices, entry or Entry(state.key, None, None, "snapshot"))
        if d.get("thumbs") is not None:
            self.thumb_cache[tkey] = (d["thumbs"], d.get("class_names") or [], d.get("paths"))
        if tkey in self.thumb_cache:
            thumbs, names, paths = self.thumb_cache[tkey]
            state.thumbs, state.paths = thumbs, paths
            state.class_names = state.class_names or list(names)
        if state.labels is None and d.get("labels") is not None:
            state.labels = np.asarray(d["labels"])
        if d.get("note"):
            state.note = d["note"]

    def _finish(self, state: MapState, proj: str, seconds=None) -> None:
        self.request_id = None
        self.pending_key = None
        self._busy(False)
        extra = f" · {PROJECTION_TITLES[proj]} in {seconds:.1f} s" if seconds else ""
        self._set_status(self._summary(state) + extra)
        self.layoutFinished.emit(proj)

    def _summary(self, s: MapState) -> str:
        what = f"{len(s.indices):,} images"
        if s.epoch is not None:
            what += f" · epoch {s.epoch:g}"
        if s.step is not None:
            what += f" · step {s.step}"
        note = f" · {s.note}" if s.note else ""
        return f"{Path(self.run_dir).name if self.run_dir else ''}: {what}{note}"

    def _display(self, state: MapState, coords: np.ndarray | None, animate: bool = True) -> None:
        """Draw ``state``; ``coords`` None keeps the points where they are (a warm start in progress)."""
        prev = self.current
        self.current = state
        if prev is not state:
            self._fill_color_choices()
        if coords is None:
            self.map.thumbs = state.thumbs
            self._recolor()
            return
        if prev is not None and state.same_points(prev) and self.map.count == len(coords):
            self.map.thumbs = state.thumbs
            self._recolor()
            self.map.move_to(coords, animate=animate)
        else:
            self._recolor()  # stores the new colours; set_points draws with them
            self.map.set_points(coords, state.thumbs)
            self.clicked_row = -1
            self.neighbors.clear()
            self.set_selection(np.zeros(0, np.int64))
        if self.clicked_row >= 0:
            self.show_neighbors(self.clicked_row)
        self._update_enabled()

    # -- colours and legend ----------------------------------------------------------------------------------
    def _fill_color_choices(self) -> None:
        s = self.current
        keep = self.color_by.currentText()
        items = []
        if s is not None and s.labels is not None and (s.labels >= 0).any():
            items.append(COLOR_CLASS)
        items.append(COLOR_CLUSTER)
        items += list(s.properties if s is not None else {})
        if items == [self.color_by.itemText(i) for i in range(self.color_by.count())]:
            self._recolor()
            return
        self.color_by.blockSignals(True)
        self.color_by.clear()
        self.color_by.addItems(items)
        i = self.color_by.findText(keep)
        self.color_by.setCurrentIndex(i if i >= 0 else 0)
        self.color_by.blockSignals(False)
        self._recolor()

    def _recolor(self, *_) -> None:
        s = self.current
        if s is None:
            self.legend.clear()
            self._legend_key = None
            return
        mode = self.color_by.currentText() or COLOR_CLUSTER
        n = len(s.indices)
        self.gradient_box.hide()
        self.legend.show()
        self.legend_title.show()
        if mode == COLOR_CLASS and s.labels is not None:
            idx = np.asarray(s.labels, np.int64)
            k = max(len(s.class_names), int(idx.max()) + 1 if n else 0)
            names = list(s.class_names) + [f"class {i}" for i in range(len(s.class_names), k)]
            palette = [class_color(i) for i in range(k)] + [class_color(-1)]
            idx = np.where(idx < 0, k, idx)
            self._legend_title(f"Class ({k})")
            self._fill_legend(names, palette, np.bincount(idx, minlength=k + 1)[:k])
        elif mode == COLOR_CLUSTER or mode not in s.properties:
            if s.clusters is None:
                idx = np.zeros(n, np.int64)
                palette = [QColor("#4e79a7")]
                self._legend_title("k-means clusters (computing…)")
            else:
                idx = np.asarray(s.clusters, np.int64)
                k = int(idx.max()) + 1 if n else 0
                palette = [class_color(i) for i in range(k)]
                self._legend_title(f"k-means cluster ({k})")
                self._fill_legend([f"cluster {i + 1}" for i in range(k)], palette, np.bincount(idx, minlength=k))
        else:
            v = np.asarray(s.properties[mode], np.float64)
            lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
            levels = gradient_palette(32)
            idx = np.clip(((v - lo) / max(hi - lo, 1e-12) * 31).round(), 0, 31).astype(np.int64)
            palette = levels
            self.legend.clear()
            self._legend_key = None
            self.legend.hide()
            self.legend_title.hide()
            self.gradient_box.show()
            self.gradient.set_range(mode, lo, hi)
            self.isolated = None
        dim = None
        if self.isolated is not None and self.isolated < len(palette):
            dim = idx != self.isolated
        if len(self.selected_rows):
            sel = np.ones(n, bool)
            sel[self.selected_rows[self.selected_rows < n]] = False
            dim = sel if dim is None else (dim | sel)
        self._color_idx, self._palette = idx, palette
        self.map.set_colors(idx, palette, dim)

    def _legend_title(self, text: str) -> None:
        if self.legend_title.text() != text:
            self.legend_title.setText(text)

    def _fill_legend(self, names, palette, counts) -> None:
        key = (tuple(names), tuple(c.rgba() for c in palette[:len(names)]), tuple(int(c) for c in counts),
               self.isolated)
        if key == getattr(self, "_legend_key", None) and self.legend.count() == len(names):
            return
        self._legend_key = key
        self.legend.clear()
        for i, name in enumerate(names):
            pm = QPixmap(12, 12)
            pm.fill(palette[i])
            item = QListWidgetItem(QIcon(pm), f"{name}  ({int(counts[i]) if i < len(counts) else 0})")
            item.setData(Qt.ItemDataRole.UserRole, i)
            if self.isolated is not None and self.isolated != i:
                item.setForeground(QColor("#999999"))
            self.legend.addItem(item)

    def _on_legend_click(self, item: QListWidgetItem) -> None:
        i = item.data(Qt.ItemDataRole.UserRole)
        self.isolated = None if self.isolated == i else i
        self._recolor()

    # -- hover, click, selection ----------------------------------------------------------------------------
    def _label_text(self, row: int) -> str:
        s = self.current
        if s is None or s.labels is None:
            return ""
        lab = int(s.labels[row])
        if 0 <= lab < len(s.class_names):
            return s.class_names[lab]
        return "unlabeled" if lab < 0 else f"class {lab}"

    def _describe(self, row: int) -> str:
        s = self.current
        if s is None:
            return ""
        parts = []
        lab = self._label_text(row)
        if lab:
            parts.append(f"<b>{lab}</b>")
        parts.append(f"image #{int(s.indices[row])}")
        if s.clusters is not None:
            parts.append(f"cluster {int(s.clusters[row]) + 1}")
        if s.paths:
            parts.append(f"<span style='color:#666'>{os.path.basename(s.paths[row])}</span>")
        return "<br>".join(parts)

    def _on_hover(self, row: int) -> None:
        if row >= 0 and self.current is not None:
            self.statusMessage.emit(f"image #{int(self.current.indices[row])} {self._label_text(row)}")

    def _on_pick_row(self, row: int) -> None:
        self.clicked_row = row
        self.side.setCurrentIndex(0)
        self.show_neighbors(row)

    def neighbors_of(self, row: int, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the ``k`` nearest neighbours of ``row`` in feature space (cosine) and their similarities."""
        s = self.current
        return nearest_neighbors(s.features, s.features[row], k or self.k.value(), exclude=row)

    def show_neighbors(self, row: int) -> None:
        s = self.current
        if s is None or not 0 <= row < len(s.indices):
            return
        rows, sims = self.neighbors_of(row)
        self.neighbor_rows = rows
        self.map.set_focus(row)
        self.map.set_marked(rows)
        if s.thumbs is not None:
            self.point_image.setPixmap(qpixmap(s.thumbs[row], 92, smooth=True))
        info = [f"<b>{self._label_text(row) or 'image'}</b> #{int(s.indices[row])}"]
        if s.paths:
            info.append(os.path.basename(s.paths[row]))
        if s.labels is not None and len(rows):
            same = float(np.mean(np.asarray(s.labels)[rows] == s.labels[row]))
            info.append(f"{same:.0%} of its {len(rows)} nearest neighbours share its class")
        self.point_info.setText("<br>".join(info))
        imgs = s.thumbs[rows] if s.thumbs is not None else np.zeros((len(rows), 8, 8, 3), np.uint8)
        colors = None
        if s.labels is not None:
            colors = [QColor("#59a14f") if s.labels[r] == s.labels[row] else QColor("#e15759") for r in rows]
        self.neighbors.set_items(list(imgs), [f"{sim:.3f}\n{self._label_text(r) or '#' + str(int(s.indices[r]))}"
                                              for r, sim in zip(rows, sims)],
                                 [f"image #{int(s.indices[r])} · cosine similarity {sim:.4f} · "
                                  f"{self._label_text(r)}" for r, sim in zip(rows, sims)], colors)

    def _on_neighbor_click(self, i: int) -> None:
        rows = getattr(self, "neighbor_rows", None)
        if rows is not None and i < len(rows):
            self._on_pick_row(int(rows[i]))

    def _search_all(self) -> None:
        s = self.current
        if s is None or self.clicked_row < 0 or self.client is None:
            return
        self._set_status("Searching all images…")
        self.client.request("retrieve", {"run_dir": self.run_dir, "index": int(s.indices[self.clicked_row]),
                                         "split": s.split, "k": self.k.value()}, kind="retrieve",
                            on_done=self._on_retrieved, on_error=lambda e: self._set_status(e["message"], error=True))

    def _on_retrieved(self, d: dict) -> None:
        names = d.get("class_names") or []
        labels = d.get("labels")
        caps = []
        for j, (i, sim) in enumerate(zip(d["indices"], d["similarities"])):
            lab = names[int(labels[j])] if labels is not None and 0 <= int(labels[j]) < len(names) else f"#{int(i)}"
            caps.append(f"{sim:.3f}\n{lab}")
        self.neighbor_rows = None
        self.neighbors.set_items(list(d["thumbs"]), caps)
        self._set_status(f"Nearest neighbours among all {d.get('bank_size', 0):,} images of the set")

    def set_selection(self, rows: np.ndarray) -> None:
        s = self.current
        self.selected_rows = np.asarray(rows, np.int64)
        n = len(self.selected_rows)
        if s is None:
            return
        if n == 0:
            self.sel_info.setText("Choose Box or Lasso and drag over the map to select images")
            self.histogram.set_data([], [])
            self.histogram.hide()
            self.sel_grid.clear()
        else:
            shown = self.selected_rows[:400]
            self.sel_info.setText(f"<b>{n:,}</b> images selected" + (f" (showing {len(shown)})" if n > len(shown)
                                                                      else ""))
            if s.labels is not None and s.class_names:
                counts = np.bincount(np.asarray(s.labels)[self.selected_rows].clip(0), minlength=len(s.class_names))
                order = np.argsort(-counts)
                order = order[counts[order] > 0]
                self.histogram.set_data([s.class_names[i] for i in order],
                                        [("images", counts[order].tolist(), None)], title="Labels in the selection")
            elif s.clusters is not None:
                counts = np.bincount(np.asarray(s.clusters)[self.selected_rows])
                order = np.flatnonzero(counts)
                self.histogram.set_data([f"cluster {i + 1}" for i in order], [("images", counts[order].tolist(), None)],
                                        title="Clusters in the selection")
            self.histogram.show()
            imgs = s.thumbs[shown] if s.thumbs is not None else np.zeros((len(shown), 8, 8, 3), np.uint8)
            self.sel_grid.set_items(list(imgs), [self._label_text(r) or f"#{int(s.indices[r])}" for r in shown])
            self.side.setCurrentIndex(1)
        self._recolor()

    # -- export ---------------------------------------------------------------------------------------------
    def export_embedding(self, path: str, callback=None) -> int | None:
        """Write the current map's features, 2-D coordinates, labels and file paths (CSV, .npz, .npy)."""
        s = self.current
        if s is None or self.client is None:
            return None
        coords = self.map.coords

        args = {"path": path, "features": s.features, "coords": coords, "labels": s.labels, "indices": s.indices,
                "paths": s.paths, "class_names": s.class_names}
        return self.client.request(
            "export_embedding", args, on_reply=callback,
            on_done=lambda d: self._set_status(f"Saved {d['csv']} and .npy files next to it"),
            on_error=lambda e: self._set_status(e["message"] or "export failed", error=True))

    def save_png(self, path: str) -> bool:
        ok = self.figure.grab().save(path)
        self._set_status(f"Saved {path}" if ok else f"Could not write {path}", error=not ok)
        return ok

    def export_encoder(self, path: str, fmt: str = "own", callback=None, show: bool = True) -> int | None:
        if not self.run_dir or self.client is None:
            return None

        def done(d: dict) -> None:
            self._set_status(f"Saved the encoder to {d['path']}")
            if show:
                dlg = EncoderExampleDialog(self, d["path"], {f"{d['format']} form": d["example"]})
                self._dialogs.append(dlg)
                dlg.show()

        return self.client.request("export_encoder", {"run_dir": self.run_dir, "path": path, "format": fmt},
                                   on_reply=callback, on_done=done,
                                   on_error=lambda e: self._set_status(e["message"] or "export failed", error=True))

    def _default_dir(self) -> str:
        return str(Path(self.run_dir) / "export") if self.run_dir else ""

    def _export_embedding_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export embeddings", os.path.join(self._default_dir(),
                                              "embedding.csv"), "CSV (*.csv)")
        if path:
            self.export_embedding(path)

    def _save_png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the map", os.path.join(self._default_dir(), "map.png"),
                                              "PNG image (*.png)")
        if path:
            self.save_png(path)

    def _export_encoder_dialog(self) -> None:
        path, flt = QFileDialog.getSaveFileName(self, "Export the encoder", os.path.join(
            self._default_dir(), "encoder.safetensors"),
            "Workbench backbone (*.safetensors);;torchvision ResNet (*.safetensors)")
        if path:
            self.export_encoder(path, "torchvision" if flt.startswith("torchvision") else "own")

    # -- misc -----------------------------------------------------------------------------------------------
    def _on_projection(self, *_) -> None:
        if self.current_entry is not None:
            self.show_entry(self.current_entry)

    def _busy(self, on: bool, text: str = "") -> None:
        self.progress.setVisible(on)
        self.cancel_btn.setVisible(on)
        if on:
            self.progress.setRange(0, 0)
            if text:
                self._set_status(text)

    def _set_status(self, text: str, error: bool = False) -> None:
        if text == self.status.text() and error == self.error_shown:
            return  # a label change costs a layout pass of the whole panel
        if error != self.error_shown:
            self.status.setStyleSheet("color: #b00020;" if error else "")
        self.error_shown = error
        self.status.setText(text)
        self.status.setToolTip(text)
        self.statusMessage.emit(text)

    def _update_enabled(self) -> None:
        has_run = bool(self.run_dir) and self.client is not None
        self.refresh_btn.setEnabled(has_run)
        self.refresh_btn.setText("Snapshot now" if self.live else "Map from checkpoint")
        self.export_btn.setEnabled(has_run)
        self.search_all.setEnabled(has_run)
