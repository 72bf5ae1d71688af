"""The Inspector panel: what the encoder learned, measured and shown.

Tabs: Evaluation (kNN + linear probe of the run next to a random-init and a supervised encoder of
the same backbone, per-class accuracy, confusion matrix), Compare runs (several runs on one
readout), Downstream (label efficiency: top-1 against labels per class for linear, fine-tune and
kNN next to training from scratch; the invariance bars), Retrieval (nearest images of any dataset
image or file), Reconstructions (MAE triplets, live during training), Pretext task (where RotNet/Jigsaw
err), Filters (first conv layer), Attention (where a ViT's heads or a CNN's feature map look; a point clicked
on the map shows its image) and Export (the encoder as safetensors with its one-line loading example).

All computing happens in the analysis process; this widget sends requests and draws replies. The run
shown lives in the Inspector's model (app/inspector/model.py), which every tab gets (their base:
app/inspector/tab.py). ``inspector_view(ctx)`` makes the window's view.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtCore import QSize, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.common.view import View, ViewContext
from app.inspector.attention import AttentionTab
from app.inspector.downstream import DownstreamTab
from app.inspector.evaluation import CompareTab, EvaluationTab
from app.inspector.model import InspectorModel
from app.inspector.tabs import ExportTab, FiltersTab, PretextTab, ReconstructionTab, RetrievalTab
from app.models.run_model import PointRef, RunRef


class InspectorPanel(QWidget, View):
    statusMessage = Signal(str)
    trainFromEncoder = Signal(dict)  # the shown encoder's config.json: "Train from this encoder"

    def __init__(self, client=None, parent=None, runs_roots: tuple = (), roots: Callable[[], list[str]] | None = None,
                 method_info: Callable[[str], dict | None] | None = None):
        """``client``: the analysis client; ``runs_roots`` and ``roots()``: folders of runs to compare with;
        ``method_info(name)``: a method's catalogue entry (the Reconstructions tab's captions)."""
        super().__init__(parent)
        self.target = InspectorModel(client, runs_roots, roots, method_info)
        self.shown_run: str | None = None  # the last run shown (its Downstream results stay until another)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        self.header = QLabel(self.target.header())
        self.header.setWordWrap(True)
        self.header.setStyleSheet("font-weight: bold;")
        self.train_btn = QPushButton("Train from this encoder")
        self.train_btn.setToolTip("Start the Run panel's config from this encoder's weights (main.py train --init)")
        self.train_btn.clicked.connect(lambda: self.trainFromEncoder.emit(
            {**self.target.config, "run_dir": str(self.target.run_dir or "")}))
        self.train_btn.hide()
        head = QHBoxLayout()
        head.addWidget(self.header, 1)
        head.addWidget(self.train_btn)
        lay.addLayout(head)
        self.tabs = QTabWidget()
        t = self.target
        self.evaluation = EvaluationTab(t)
        self.compare = CompareTab(t)
        self.downstream = DownstreamTab(t)
        self.retrieval = RetrievalTab(t)
        self.reconstruction = ReconstructionTab(t)
        self.pretext = PretextTab(t)
        self.filters = FiltersTab(t)
        self.attention = AttentionTab(t)
        self.export = ExportTab(t, self.save_png)
        for w, name in ((self.evaluation, "Evaluation"), (self.compare, "Compare runs"),
                        (self.downstream, "Downstream"),
                        (self.retrieval, "Retrieval"), (self.reconstruction, "Reconstructions"),
                        (self.pretext, "Pretext task"), (self.filters, "Filters"), (self.attention, "Attention"),
                        (self.export, "Export")):
            self.tabs.addTab(w, name)
        self.tabs.currentChanged.connect(self._on_tab)
        lay.addWidget(self.tabs, 1)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(1000, 680)

    client = property(lambda self: self.target.client)
    run_dir = property(lambda self: self.target.run_dir)
    live = property(lambda self: self.target.live)

    def set_client(self, client) -> None:
        self.target.client = client

    def all_roots(self) -> list[str]:
        return self.target.all_roots()

    def set_run(self, run_dir: str | None, live: bool = False) -> None:
        self.target.open(run_dir, live)
        self.header.setText(self.target.header())
        self.train_btn.setVisible(self.target.is_encoder)
        if not self.run_dir:
            return
        self.show_method_captions()
        self.evaluation.show_saved()
        if self.shown_run != self.run_dir:
            self.downstream.reset()
            self.attention.reset()
            self.shown_run = self.run_dir
        self._on_tab(self.tabs.currentIndex())

    def on_engine_message(self, msg) -> None:
        kind = type(msg).__name__
        if kind == "RunStarted":
            self.target.method = (msg.config or {}).get("method") or None
            self.set_run(msg.run_dir, live=True)
        elif kind == "Reconstruction":
            self.reconstruction.show_triplets(msg.originals, msg.inputs, msg.outputs, msg.step, msg.epoch, "live")
        elif kind in ("RunFinished", "RunFailed"):
            self.target.live = False
            if self.run_dir:
                self.header.setText(self.header.text().replace(" · training", ""))
                if kind == "RunFinished" and self.evaluation.request_id is None:
                    self.evaluation.show_saved()  # its final evaluation, as the curves and the map show it

    def show_method_captions(self) -> None:
        """The Reconstructions tab speaks the run's method's language: its catalogue captions, and the title
        "Generator samples" when the method's output is a generator's (its captions say so)."""
        caps = self.target.captions()
        self.reconstruction.set_captions(caps)
        generated = any("generator" in c.lower() for c in caps)
        self.tabs.setTabText(self.tabs.indexOf(self.reconstruction), "Generator samples" if generated
                             else "Reconstructions")

    def _on_tab(self, i: int) -> None:
        """Cheap views load when first shown; evaluation and comparisons wait for their button."""
        if not self.run_dir or self.client is None:
            return
        w = self.tabs.widget(i)
        if not self.target.first_show(type(w).__name__):
            return
        if w is self.filters:
            self.filters.refresh()
        elif w is self.export:
            self.export.load_example()
        elif w is self.compare:
            self.compare.reload()
        elif w is self.attention:
            self.attention.refresh()

    def show_point(self, point: PointRef) -> None:
        """A point of the shown run's map was clicked: the Attention tab shows that image (at once when it is the
        tab shown, else when it is next shown)."""
        if not self.run_dir or not point.run_dir or \
                os.path.abspath(point.run_dir) != os.path.abspath(self.run_dir):
            return
        now = self.tabs.currentWidget() is self.attention and self.client is not None
        self.attention.show_point(point.index, point.split, point.data, now=now)
        if not now:
            self.target.loaded.discard(type(self.attention).__name__)  # shown next time the tab is
    def save_png(self, path: str) -> bool:
        return self.tabs.currentWidget().grab().save(path)

    # -- the view protocol -------------------------------------------------------------------------------------
    def show_run(self, ref: RunRef) -> None:
        """The window opened a run (a started one arrives with the engine's RunStarted)."""
        if ref.origin == "opened":
            self.set_run(ref.run_dir, ref.live)

    def is_ready(self) -> bool:
        return self.tabs.currentWidget().request_id is None  # the shown tab has its answer


def inspector_view(ctx: ViewContext) -> InspectorPanel:
    """The window's Inspector: it asks the analysis process, compares with the runs the Run history lists,
    captions reconstructions from the method catalogue and follows the run model and the training client."""
    run = ctx.run
    panel = InspectorPanel(ctx.analysis, roots=lambda: run.roots, method_info=ctx.config.method_info)
    ctx.config.catalogue_changed.connect(panel.show_method_captions)
    panel.statusMessage.connect(ctx.status)
    ctx.engine.message.connect(panel.on_engine_message)  # a started run arrives with RunStarted
    ctx.run.runChanged.connect(panel.show_run)
    ctx.run.pointChosen.connect(panel.show_point)

    panel.trainFromEncoder.connect(ctx.train_from_encoder)
    return panel
