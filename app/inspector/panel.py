"""The Inspector panel: what the encoder learned, measured and shown.

Tabs: Evaluation (kNN + linear probe of the run next to a random-init and a supervised encoder of
the same backbone, per-class accuracy, confusion matrix), Compare runs (several runs on one
readout), Downstream (label efficiency: top-1 against labels per class for linear, fine-tune and
kNN next to training from scratch; the invariance bars), Retrieval (nearest images of any dataset
image or file), Reconstructions (MAE triplets, live during training), Pretext task (where RotNet/Jigsaw err), Filters (first conv layer) and
Export (the encoder as safetensors with its one-line loading example).

All computing happens in the analysis process; this widget sends requests and draws replies.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Signal
from PySide6.QtWidgets import (
    QLabel,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.inspector.downstream import DownstreamTab
from app.inspector.evaluation import CompareTab, EvaluationTab
from app.inspector.tabs import ExportTab, FiltersTab, PretextTab, ReconstructionTab, RetrievalTab


class InspectorPanel(QWidget):
    statusMessage = Signal(str)

    def __init__(self, client=None, parent=None, runs_roots: tuple = ()):
        super().__init__(parent)
        self.client = client
        self.run_dir: str | None = None
        self.live = False
        self.runs_roots = tuple(str(r) for r in runs_roots)
        self.roots_provider = None  # callable -> folders of runs (the window's run history)
        self.method_info = None  # callable(method name) -> its catalogue entry (dict) or None
        self.method: str | None = None  # the shown run's method
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        self.header = QLabel("No run open")
        self.header.setStyleSheet("font-weight: bold;")
        lay.addWidget(self.header)
        self.tabs = QTabWidget()
        self.evaluation = EvaluationTab(self)
        self.compare = CompareTab(self)
        self.downstream = DownstreamTab(self)
        self.retrieval = RetrievalTab(self)
        self.reconstruction = ReconstructionTab(self)
        self.pretext = PretextTab(self)
        self.filters = FiltersTab(self)
        self.export = ExportTab(self)
        for w, name in ((self.evaluation, "Evaluation"), (self.compare, "Compare runs"),
                        (self.downstream, "Downstream"),
                        (self.retrieval, "Retrieval"), (self.reconstruction, "Reconstructions"),
                        (self.pretext, "Pretext task"), (self.filters, "Filters"), (self.export, "Export")):
            self.tabs.addTab(w, name)
        self.tabs.currentChanged.connect(self._on_tab)
        lay.addWidget(self.tabs, 1)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(1000, 680)

    def set_client(self, client) -> None:
        self.client = client

    def all_roots(self) -> list[str]:
        roots = list(self.runs_roots)
        if self.roots_provider is not None:
            roots += [str(r) for r in self.roots_provider()]
        return list(dict.fromkeys(roots))

    def set_run(self, run_dir: str | None, live: bool = False) -> None:
        self.run_dir = str(run_dir) if run_dir else None
        self.live = live
        if not self.run_dir:
            self.header.setText("No run open")
            return
        from engine.runs import read_json

        cfg = read_json(Path(self.run_dir) / "config.json", {}) or {}
        self.method = cfg.get("method") or self.method
        self.show_method_captions()
        data = (cfg.get("data") or {}).get("spec", "?")
        self.header.setText(f"{Path(self.run_dir).name} · {cfg.get('method', '?')} on {data}" +
                            (" · training" if live else ""))
        self._loaded: set[str] = set()
        self.evaluation.show_saved()
        if getattr(self, "_shown_run", None) != self.run_dir:
            self.downstream.reset()
            self._shown_run = self.run_dir
        self._on_tab(self.tabs.currentIndex())

    def on_engine_message(self, msg) -> None:
        kind = type(msg).__name__
        if kind == "RunStarted":
            self.method = (msg.config or {}).get("method") or None
            self.set_run(msg.run_dir, live=True)
        elif kind == "Reconstruction":
            self.reconstruction.show_triplets(msg.originals, msg.inputs, msg.outputs, msg.step, msg.epoch, "live")
        elif kind in ("RunFinished", "RunFailed"):
            self.live = False
            if self.run_dir:
                self.header.setText(self.header.text().replace(" · training", ""))

    def show_method_captions(self) -> None:
        """The Reconstructions tab speaks the run's method's language: its catalogue captions, and the title
        "Generator samples" when the method's output is a generator's (its captions say so)."""
        info = self.method_info(self.method) if self.method_info is not None and self.method else None
        caps = [str(c) for c in (info or {}).get("reconstruct_captions") or []]
        self.reconstruction.set_captions(caps)
        generated = any("generator" in c.lower() for c in caps)
        self.tabs.setTabText(self.tabs.indexOf(self.reconstruction), "Generator samples" if generated
                             else "Reconstructions")

    def _on_tab(self, i: int) -> None:
        """Cheap views load when first shown; evaluation and comparisons wait for their button."""
        if not self.run_dir or self.client is None:
            return
        w = self.tabs.widget(i)
        loaded = getattr(self, "_loaded", set())
        name = type(w).__name__
        if name in loaded:
            return
        loaded.add(name)
        self._loaded = loaded
        if w is self.filters:
            self.filters.refresh()
        elif w is self.export:
            self.export.load_example()
        elif w is self.compare:
            self.compare.reload()

    def save_png(self, path: str) -> bool:
        return self.tabs.currentWidget().grab().save(path)

