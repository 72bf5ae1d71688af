"""The Inspector's Retrieval, Reconstructions, Pretext task, Filters and Export tabs (their base:
app/inspector/tab.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.common import dialogs
from app.common.charts import BarChart, Heatmap, ThumbGrid
from app.common.images import qpixmap
from app.inspector.tab import InspectorTab


class RetrievalTab(InspectorTab):
    def __init__(self, target):
        super().__init__(target)
        row = QHBoxLayout()
        row.addWidget(QLabel("Image #"))
        self.index = QSpinBox()
        self.index.setRange(0, 10_000_000)
        row.addWidget(self.index)
        self.split = QComboBox()
        self.split.addItem("of the evaluation set", "eval")
        self.split.addItem("of the training set", "train")
        row.addWidget(self.split)
        go = QPushButton("Search")
        go.clicked.connect(lambda: self.search(index=self.index.value()))
        row.addWidget(go)
        pick = QPushButton("Search with a file…")
        pick.clicked.connect(self._pick_file)
        row.addWidget(pick)
        row.addWidget(QLabel("k"))
        self.k = QSpinBox()
        self.k.setRange(1, 200)
        self.k.setValue(16)
        row.addWidget(self.k)
        row.addStretch(1)
        self.lay.addLayout(row)
        self.lay.addWidget(self.status)
        body = QHBoxLayout()
        qbox = QVBoxLayout()
        qbox.addWidget(QLabel("Query"))
        self.query = QLabel()
        self.query.setFixedSize(112, 112)
        self.query.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.query.setStyleSheet("border: 1px solid palette(mid);")
        qbox.addWidget(self.query)
        self.query_text = QLabel("")
        self.query_text.setWordWrap(True)
        self.query_text.setFixedWidth(112)
        qbox.addWidget(self.query_text)
        qbox.addStretch(1)
        body.addLayout(qbox)
        self.grid = ThumbGrid(tile=80, captions=2, empty_text="Choose an image of the dataset or a file: its "
                              "nearest neighbours in the encoder's feature space appear here, most similar first.")
        body.addWidget(self.grid, 1)
        self.lay.addLayout(body, 1)
        self.result = None

    def _pick_file(self) -> None:
        path = dialogs.open_file(self, "An image to search with", "",
                                              "Images (*.png *.jpg *.jpeg *.bmp *.webp *.tif *.tiff)")
        if path:
            self.search(path=path)

    def search(self, index: int | None = None, path: str | None = None) -> None:
        args = {"run_dir": self.target.run_dir, "k": self.k.value(), "split": self.split.currentData()}
        if path:
            args["path"] = path
        else:
            args["index"] = int(index if index is not None else self.index.value())
        self.request("retrieve", self._on_reply, **args)

    def _on_reply(self, d: dict, final: bool = True) -> None:
        self.result = d
        names = d.get("class_names") or []
        labels = d.get("labels")

        def name(j):
            if labels is None:
                return ""
            lab = int(labels[j])
            return names[lab] if 0 <= lab < len(names) else ""

        self.query.setPixmap(qpixmap(d["query_thumb"], 108, smooth=True))
        ql = d.get("query_label")
        self.query_text.setText(names[ql] if ql is not None and 0 <= ql < len(names) else "")
        colors = None
        if labels is not None and ql is not None:
            colors = [QColor("#59a14f") if int(lab) == ql else QColor("#e15759") for lab in labels]
        self.grid.set_items(list(d["thumbs"]), [f"{s:.3f}\n{name(j) or '#' + str(int(i))}" for j, (i, s) in
                                                enumerate(zip(d["indices"], d["similarities"]))],
                            [f"image #{int(i)} · cosine similarity {s:.4f}" +
                             (f" · {os.path.basename(d['paths'][j])}" if d.get("paths") else "")
                             for j, (i, s) in enumerate(zip(d["indices"], d["similarities"]))], colors)
        self.set_status(f"{len(d['indices'])} nearest of {d.get('bank_size', 0):,} images (cosine similarity of "
                        "L2-normalised features)")


# -- reconstructions --------------------------------------------------------------------------------------------------
DEFAULT_RECON_CAPTIONS = ("original", "masked input", "reconstruction")


class ReconstructionTab(InspectorTab):
    def __init__(self, target):
        super().__init__(target)
        row = QHBoxLayout()
        self.refresh_btn = QPushButton("Reconstruct with the checkpoint")
        self.refresh_btn.clicked.connect(self.refresh)
        row.addWidget(self.refresh_btn)
        self.live_label = QLabel("During training the engine sends new reconstructions every epoch.")
        self.live_label.setWordWrap(True)
        row.addWidget(self.live_label, 1)
        self.lay.addLayout(row)
        self.lay.addWidget(self.status)
        self.grid = ThumbGrid(tile=96, captions=1, group=3,
                              empty_text="Reconstruction methods (MAE, ...) show original / what the model saw / "
                                         "its reconstruction here.")
        self.lay.addWidget(self.grid, 1)
        self.last_step = None
        self.captions = DEFAULT_RECON_CAPTIONS
        self._shown: tuple | None = None  # (originals, inputs, outputs): re-captioned when the method is known

    def set_captions(self, captions) -> None:
        """The (original, model input, output) captions of the run's method (its catalogue entry's
        ``reconstruct_captions``); the defaults when it gives none."""
        caps = tuple(str(c) for c in captions or ())
        self.captions = caps if len(caps) == 3 else DEFAULT_RECON_CAPTIONS
        if self._shown is not None:
            o, i, r = self._shown
            self._draw(o, i, r)

    def refresh(self) -> None:
        self.request("reconstruct", self._on_reply, run_dir=self.target.run_dir, n=8)

    def _on_reply(self, d: dict, final: bool = True) -> None:
        if "note" in d:
            self.set_status(d["note"])
            return
        self.show_triplets(d["originals"], d["inputs"], d["outputs"], d.get("step"), d.get("epoch"), "checkpoint")

    def show_triplets(self, originals, inputs, outputs, step=None, epoch=None, source="live") -> None:
        self._shown = (originals, inputs, outputs)
        self._draw(originals, inputs, outputs)
        self.last_step = step
        when = f"epoch {epoch:g}, step {step}" if epoch is not None and step is not None else ""
        self.set_status(f"{len(originals)} images · {source} {when}".strip())


    def _draw(self, originals, inputs, outputs) -> None:
        import textwrap

        wrapped = ["\n".join(textwrap.wrap(c, 17)[:3]) for c in self.captions]  # a method's captions may be long
        self.grid.caption_lines = max(1, *(c.count("\n") + 1 for c in wrapped))
        imgs, caps = [], []
        for o, i, r in zip(originals, inputs, outputs):
            imgs += [o, i, r]
            caps += wrapped
        self.grid.set_items(imgs, caps, tooltips=list(self.captions) * len(originals), smooth=True)


# -- pretext task ----------------------------------------------------------------------------------------------------
class PretextTab(InspectorTab):
    def __init__(self, target):
        super().__init__(target)
        row = QHBoxLayout()
        self.run_btn = QPushButton("Analyse the pretext task")
        self.run_btn.clicked.connect(self.analyse)
        row.addWidget(self.run_btn)
        row.addWidget(QLabel("RotNet and Jigsaw: accuracy on clean puzzles of held-out images, and where it errs."), 1)
        self.lay.addLayout(row)
        self.lay.addWidget(self.status)
        split = QSplitter(Qt.Orientation.Horizontal)
        first = QWidget()
        fl = QVBoxLayout(first)
        fl.setContentsMargins(0, 0, 0, 0)
        self.confusion = Heatmap(title="Pretext confusion")
        fl.addWidget(self.confusion)
        self.hamming = BarChart(title="Tiles misplaced per puzzle", percent=False)
        self.hamming.hide()
        fl.addWidget(self.hamming)
        fl.addStretch(0)
        split.addWidget(first)
        self.chart = BarChart(title="")
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.chart)
        split.addWidget(scroll)
        self.per_class = BarChart(title="Pretext accuracy by image class")
        scroll2 = QScrollArea()
        scroll2.setWidgetResizable(True)
        scroll2.setWidget(self.per_class)
        split.addWidget(scroll2)
        split.setSizes([360, 380, 380])
        self.lay.addWidget(split, 1)
        self.lay.addWidget(QLabel("Errors the head was most sure about"))
        self.grid = ThumbGrid(tile=72, captions=3, empty_text="")
        self.lay.addWidget(self.grid, 1)
        self.result = None

    def analyse(self) -> None:
        self.request("pretext", self._on_reply, run_dir=self.target.run_dir, n=512)

    def _on_reply(self, d: dict, final: bool = True) -> None:
        self.result = d
        if "note" in d:
            self.set_status(d["note"])
            self.confusion.set_data(np.zeros((0, 0)), [])
            self.chart.set_data([], [])
            self.per_class.set_data([], [])
            self.grid.clear()
            return
        hist, chart = d.get("histogram"), d["chart"]
        self.confusion.setVisible(d.get("confusion_labels") is not None)
        self.hamming.setVisible(hist is not None)
        if d.get("confusion_labels") is not None:
            self.confusion.set_data(d["confusion"], d["confusion_labels"], title=d.get("confusion_title"))
        else:
            self.confusion.set_data(np.zeros((0, 0)), [])
        if hist is not None:
            self.hamming.set_data(hist["labels"], [(hist["series"], hist["values"], None)], title=hist["title"])
        self.chart.set_data(chart["labels"], [(chart["series"], chart["values"], None)], vmax=1.0,
                            title=chart["title"])
        self.set_status(d["summary"])
        if d.get("per_image_class"):
            self.per_class.set_data(d["class_names"], [("pretext accuracy", d["per_image_class"], None)], vmax=1.0)
        else:
            self.per_class.set_data([], [])
        short = [f"true {t}\nsaid {p}\n{x}" for t, p, x in zip(d.get("example_true", []),
                                                                      d.get("example_pred", []),
                                                                      d.get("example_extra", []))]
        self.grid.set_items(list(d["examples"]), short or d["captions"], d["captions"], smooth=True)


# -- filters ------------------------------------------------------------------------------------------------------------
class FiltersTab(InspectorTab):
    def __init__(self, target):
        super().__init__(target)
        row = QHBoxLayout()
        b = QPushButton("Show the filters")
        b.clicked.connect(self.refresh)
        row.addWidget(b)
        row.addWidget(self.status, 1)
        self.lay.addLayout(row)
        split = QSplitter(Qt.Orientation.Horizontal)
        for attr, title in (("trained", "This run"), ("random", "Random init (for comparison)")):
            w = QWidget()
            lay = QVBoxLayout(w)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.addWidget(QLabel(f"<b>{title}</b>"))
            grid = ThumbGrid(tile=40, captions=0, empty_text="")
            lay.addWidget(grid, 1)
            setattr(self, attr, grid)
            split.addWidget(w)
        split.setSizes([500, 500])
        self.lay.addWidget(split, 1)
        self.result = None

    def refresh(self) -> None:
        self.request("filters", self._on_reply, run_dir=self.target.run_dir)

    def _on_reply(self, d: dict, final: bool = True) -> None:
        self.result = d
        self.trained.set_items(list(d.get("filters", [])), tooltips=[f"filter {i}" for i in range(len(d["filters"]))])
        rand = d.get("random_filters")
        self.random.set_items(list(rand) if rand is not None else [])
        self.set_status(d.get("note", "") + " · each filter scaled to its own range")


# -- export ---------------------------------------------------------------------------------------------------------------
class ExportTab(InspectorTab):
    def __init__(self, target, save_png: Callable[[str], object] | None = None):
        """``save_png(path)``: saves the Inspector's current view (default: this tab)."""
        super().__init__(target)
        self.save_png = save_png or (lambda path: self.grab().save(path))
        intro = QLabel("Export the encoder as safetensors and load it back with one line of Python. The workbench's "
                       "backbones normalise [0, 1] images themselves; the torchvision form (ResNets) expects "
                       "ImageNet-normalised inputs.")
        intro.setWordWrap(True)
        self.lay.addWidget(intro)
        row = QHBoxLayout()
        self.own_btn = QPushButton("Export encoder…")
        self.own_btn.clicked.connect(lambda: self._export("own"))
        row.addWidget(self.own_btn)
        self.tv_btn = QPushButton("Export for torchvision…")
        self.tv_btn.clicked.connect(lambda: self._export("torchvision"))
        row.addWidget(self.tv_btn)
        copy = QPushButton("Copy the example")
        copy.clicked.connect(lambda: QApplication.clipboard().setText(self.example.toPlainText()))
        row.addWidget(copy)
        png = QPushButton("Save the current inspector view as PNG…")
        png.clicked.connect(self._save_png_dialog)
        row.addWidget(png)
        row.addStretch(1)
        self.lay.addLayout(row)
        self.lay.addWidget(self.status)
        self.example = QPlainTextEdit()
        self.example.setReadOnly(True)
        self.example.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.example.setPlaceholderText("Open a run to see how to load its encoder")
        self.lay.addWidget(self.example, 1)
        self.examples: dict = {}

    def load_example(self) -> None:
        self.request("loading_example", self._on_example, run_dir=self.target.run_dir)

    def _on_example(self, d: dict, final: bool = True) -> None:
        self.examples = dict(d)
        b = self.examples.pop("backbone", "?")
        text = [f"# the run's encoder ({b}), in the workbench's own backbone:", self.examples.get("own", "")]
        if "torchvision" in self.examples:
            text += ["", "# the same weights in a torchvision ResNet (after 'Export for torchvision'; adjust the "
                         "path):", self.examples["torchvision"]]
        self.example.setPlainText("\n".join(text))
        self.tv_btn.setEnabled("torchvision" in self.examples)
        self.set_status("")

    def _export(self, fmt: str) -> None:
        base = str(Path(self.target.run_dir) / "export" / ("encoder_torchvision.safetensors" if fmt == "torchvision"
                                                          else "encoder.safetensors")) if self.target.run_dir else ""
        path = dialogs.save_file(self, "Export the encoder", base, "safetensors (*.safetensors)")
        if path:
            self.export(path, fmt)

    def export(self, path: str, fmt: str = "own", callback=None) -> None:
        def done(d: dict, final: bool = True):
            self.set_status(f"Saved {d['path']}")
            self.example.setPlainText(f"# load {d['path']} ({d['format']} form):\n{d['example']}")
            if callback:
                callback(d)

        self.request("export_encoder", done, run_dir=self.target.run_dir, path=path, format=fmt)

    def _save_png_dialog(self) -> None:
        path = dialogs.save_file(self, "Save as PNG", "inspector.png", "PNG image (*.png)")
        if path:
            self.save_png(path)


