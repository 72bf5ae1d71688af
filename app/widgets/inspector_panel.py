"""The Inspector panel: what the encoder learned, measured and shown.

Tabs: Evaluation (kNN + linear probe of the run next to a random-init and a supervised encoder of
the same backbone, per-class accuracy, confusion matrix), Compare runs (several runs on one
readout), Retrieval (nearest images of any dataset image or file), Reconstructions (MAE triplets,
live during training), Pretext task (where RotNet/Jigsaw err), Filters (first conv layer) and
Export (the encoder as safetensors with its one-line loading example).

All computing happens in the analysis process; this widget sends requests and draws replies.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.widgets.eval_views import SERIES, BarChart, Heatmap, ThumbGrid, qpixmap

SUPERVISED_CHOICES = (("find a finished supervised run", "auto"), ("train a short supervised run", "train"),
                      ("choose a run folder…", "pick"), ("skip", "none"))


def _pct(v) -> str:
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{100 * float(v):.1f}%"


def _item(text: str, align_right: bool = False, tip: str = "") -> QTableWidgetItem:
    it = QTableWidgetItem(text)
    it.setFlags(it.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if align_right:
        it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if tip:
        it.setToolTip(tip)
    return it


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().hide()
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    h = t.horizontalHeader()
    h.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    for i in range(1, len(headers)):
        h.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
    t.setAlternatingRowColors(True)
    return t


def _fit_table(t: QTableWidget, max_rows: int = 8) -> None:
    rows = min(max(1, t.rowCount()), max_rows)
    h = t.horizontalHeader().height() + rows * t.verticalHeader().defaultSectionSize() + 2 * t.frameWidth() + 2
    t.setFixedHeight(h)


class _Tab(QWidget):
    def __init__(self, panel: InspectorPanel):
        super().__init__()
        self.panel = panel
        self.lay = QVBoxLayout(self)
        self.lay.setContentsMargins(6, 6, 6, 6)
        self.lay.setSpacing(6)
        self.request_id = None
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def set_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #b00020;" if error else "color: palette(text);")
        self.status.setText(text)

    def request(self, op: str, on_result, **args):
        """Ask the analysis process; ``on_result(data, final)`` gets each partial stage (final False) and
        the result (final True). A newer request of this tab replaces the older one."""
        client = self.panel.client
        if client is None or not self.panel.run_dir and op != "compare":
            self.set_status("Open a run first", error=True)
            return None

        def done(data):
            self.request_id = None
            on_result(data, True)

        self.request_id = client.request(
            op, args, kind=f"inspector-{id(self)}", on_partial=lambda d: on_result(d, False), on_done=done,
            on_progress=lambda p: self.set_status(f"{p.detail or 'working'}… ({p.done}/{p.total})"),
            on_error=lambda e: self._ended(e["message"] or "failed", error=True),
            on_cancelled=lambda: self._ended("Cancelled"))
        self.set_status("Working…")
        return self.request_id

    def _ended(self, text: str, error: bool = False) -> None:
        self.request_id = None
        self.set_status(text, error=error)


# -- evaluation -------------------------------------------------------------------------------------------------
class EvaluationTab(_Tab):
    HEAD = ["Encoder", "kNN top-1", "kNN top-5", "Linear probe", "Steps"]

    def __init__(self, panel):
        super().__init__(panel)
        intro = QLabel("The evaluation protocol: a frozen encoder is read out with a weighted kNN and a linear "
                       "classifier on the same labelled split. A random-init encoder of the same backbone is the "
                       "lower bound, a supervised one the upper bound.")
        intro.setWordWrap(True)
        self.lay.addWidget(intro)
        row = QHBoxLayout()
        row.addWidget(QLabel("Upper bound"))
        self.supervised = QComboBox()
        for text, data in SUPERVISED_CHOICES:
            self.supervised.addItem(text, data)
        self.supervised.currentIndexChanged.connect(self._on_sup_choice)
        row.addWidget(self.supervised)
        self.minutes = QDoubleSpinBox()
        self.minutes.setRange(0.2, 600)
        self.minutes.setValue(2.0)
        self.minutes.setSuffix(" min")
        self.minutes.setToolTip("Training time of the supervised run")
        self.minutes.setEnabled(False)
        row.addWidget(self.minutes)
        row.addWidget(QLabel("Probe epochs"))
        self.probe_epochs = QSpinBox()
        self.probe_epochs.setRange(0, 1000)
        self.probe_epochs.setValue(50)
        row.addWidget(self.probe_epochs)
        self.run_btn = QPushButton("Evaluate")
        self.run_btn.clicked.connect(self.evaluate)
        row.addWidget(self.run_btn)
        row.addStretch(1)
        self.lay.addLayout(row)
        self.sup_dir: str | None = None
        self.lay.addWidget(self.status)
        self.table = _table(self.HEAD)
        self.table.itemSelectionChanged.connect(self._show_details)
        _fit_table(self.table, 3)
        self.lay.addWidget(self.table)
        opts = QHBoxLayout()
        opts.addWidget(QLabel("Readout"))
        self.readout = QComboBox()
        self.readout.addItem("kNN", "knn")
        self.readout.addItem("linear probe", "linear")
        self.readout.currentIndexChanged.connect(self._show_details)
        opts.addWidget(self.readout)
        opts.addStretch(1)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: #666;")
        opts.addWidget(self.notes, 3)
        self.lay.addLayout(opts)
        split = QSplitter(Qt.Orientation.Horizontal)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        self.per_class = BarChart(title="Per-class accuracy")
        scroll.setWidget(self.per_class)
        split.addWidget(scroll)
        self.confusion = Heatmap(title="Confusion matrix")
        split.addWidget(self.confusion)
        split.setSizes([400, 400])
        self.lay.addWidget(split, 1)
        self.result: dict | None = None

    def show_saved(self) -> None:
        """The run's own final evaluation (results.json), until the user asks for the comparison."""
        from engine.runs import read_json

        self.table.setRowCount(0)
        self.result = None
        self.notes.setText("")
        res = read_json(Path(self.panel.run_dir) / "results.json", {}) if self.panel.run_dir else {}
        if not isinstance(res, dict) or "knn_top1" not in res:
            self.per_class.set_data([], [])
            self.confusion.set_data(np.zeros((0, 0)), [])
            self.set_status("Press Evaluate to score this run next to a random-init and a supervised encoder"
                            + (f" ({res['note']})" if isinstance(res, dict) and res.get("note") else ""))
            return
        row = {k: res.get(k) for k in ("knn_top1", "knn_top5", "linear_top1", "knn_per_class", "knn_confusion",
                                       "linear_per_class", "linear_confusion", "step")}
        row.update(name=f"this run ({res.get('method', '?')}), final evaluation", kind="run")
        self._on_reply({"rows": [row], "class_names": res.get("class_names") or [], "num_test": res.get("num_test", 0),
                        "num_bank": res.get("num_train", 0), "notes": []})
        self.set_status(f"The run's final evaluation ({res.get('num_test', 0):,} held-out images). Press Evaluate to "
                        "compare with a random-init and a supervised encoder on the same split.")

    def _on_sup_choice(self, *_):
        choice = self.supervised.currentData()
        self.minutes.setEnabled(choice == "train")
        if choice == "pick":
            start = str(Path(self.panel.run_dir).parent) if self.panel.run_dir else ""
            d = QFileDialog.getExistingDirectory(self, "A supervised run folder", start)
            self.sup_dir = d or None
            if d:
                self.supervised.setItemText(2, f"run: {Path(d).name}")

    def evaluate(self, supervised: str | None = None) -> None:
        choice = supervised or self.supervised.currentData()
        sup = self.sup_dir if choice == "pick" else choice
        if choice == "pick" and not sup:
            sup = "none"
        self.table.setRowCount(0)
        self.result = None
        self.request("evaluate", self._on_reply, run_dir=self.panel.run_dir, supervised=sup,
                     supervised_minutes=self.minutes.value(), probe_epochs=self.probe_epochs.value(),
                     roots=self.panel.all_roots())

    def _on_reply(self, d: dict, final: bool = True) -> None:
        self.result = d
        rows = d.get("rows", [])
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            tip = r.get("run_dir", "")
            self.table.setItem(i, 0, _item(r.get("name", "?"), tip=tip))
            self.table.setItem(i, 1, _item(_pct(r.get("knn_top1")), True))
            self.table.setItem(i, 2, _item(_pct(r.get("knn_top5")), True))
            self.table.setItem(i, 3, _item(_pct(r.get("linear_top1")), True))
            self.table.setItem(i, 4, _item(str(r.get("step", "")) if r.get("kind") != "random_init" else "0", True))
        _fit_table(self.table, 4)
        if rows and not self.table.selectedItems():
            self.table.selectRow(0)
        self._show_details()
        notes = list(d.get("notes") or [])
        self.notes.setText(" ".join(notes))
        done = final
        self.set_status((f"Scored on {d.get('num_test', 0):,} held-out images with a bank/probe training set of "
                         f"{d.get('num_bank', 0):,}") + ("" if done else " · still working…"))

    def _show_details(self) -> None:
        d = self.result
        if not d or not d.get("rows"):
            self.per_class.set_data([], [])
            self.confusion.set_data(np.zeros((0, 0)), [])
            return
        key = self.readout.currentData()
        names = d.get("class_names") or []
        series = []
        for k, r in enumerate(d["rows"]):
            vals = r.get(f"{key}_per_class")
            if vals is not None:
                series.append((r.get("name", "?"), vals, SERIES[k % len(SERIES)]))
        self.per_class.set_data(names, series, vmax=1.0, title=f"Per-class accuracy ({self.readout.currentText()})")
        sel = self.table.currentRow()
        r = d["rows"][sel if 0 <= sel < len(d["rows"]) else 0]
        conf = r.get(f"{key}_confusion")
        if conf is not None:
            self.confusion.set_data(np.asarray(conf), names, title=f"Confusion: {r.get('name')} "
                                                                   f"({self.readout.currentText()})")


# -- comparison ----------------------------------------------------------------------------------------------------
class CompareTab(_Tab):
    HEAD = ["Run", "Method", "Backbone", "Steps", "kNN top-1", "Linear probe"]

    def __init__(self, panel):
        super().__init__(panel)
        intro = QLabel("Score several runs on one readout: the evaluation split of the first checked run.")
        intro.setWordWrap(True)
        self.lay.addWidget(intro)
        split = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        self.runs = QListWidget()
        ll.addWidget(self.runs, 1)
        row = QHBoxLayout()
        reload_btn = QPushButton("Reload list")
        reload_btn.clicked.connect(self.reload)
        row.addWidget(reload_btn)
        self.same_data = QCheckBox("same dataset only")
        self.same_data.setChecked(True)
        self.same_data.toggled.connect(self.reload)
        row.addWidget(self.same_data)
        ll.addLayout(row)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("Probe epochs"))
        self.probe_epochs = QSpinBox()
        self.probe_epochs.setRange(0, 1000)
        self.probe_epochs.setValue(30)
        row2.addWidget(self.probe_epochs)
        self.run_btn = QPushButton("Compare checked runs")
        self.run_btn.clicked.connect(self.compare)
        row2.addWidget(self.run_btn)
        ll.addLayout(row2)
        split.addWidget(left)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.status)
        self.table = _table(self.HEAD)
        rl.addWidget(self.table, 1)
        self.chart = BarChart(title="Accuracy by run")
        rl.addWidget(self.chart, 1)
        split.addWidget(right)
        split.setSizes([280, 600])
        self.lay.addWidget(split, 1)

    def reload(self) -> None:
        from engine.runs import list_runs, read_json

        checked = set(self.checked())
        self.runs.clear()
        ref = None
        if self.panel.run_dir:
            cfg = read_json(Path(self.panel.run_dir) / "config.json", {}) or {}
            ref = (cfg.get("data") or {}).get("spec")
        roots = self.panel.all_roots() + ([str(Path(self.panel.run_dir).parent)] if self.panel.run_dir else [])
        for info in list_runs(*roots):
            if self.same_data.isChecked() and ref and info.data != ref:
                continue
            knn = f" · kNN {_pct(info.knn_top1)}" if info.knn_top1 is not None else ""
            it = QListWidgetItem(f"{Path(info.path).name}\n{info.method} · {info.step} steps{knn}")
            it.setData(Qt.ItemDataRole.UserRole, info.path)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = info.path in checked or (not checked and self.panel.run_dir and
                                          Path(info.path).resolve() == Path(self.panel.run_dir).resolve())
            it.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.runs.addItem(it)

    def checked(self) -> list[str]:
        out = []
        for i in range(self.runs.count()):
            it = self.runs.item(i)
            if it.checkState() == Qt.CheckState.Checked:
                out.append(it.data(Qt.ItemDataRole.UserRole))
        return out

    def compare(self, run_dirs: list[str] | None = None) -> None:
        runs = run_dirs or self.checked()
        if not runs:
            self.set_status("Check at least one run", error=True)
            return
        if self.panel.run_dir and self.panel.run_dir in runs:  # the open run is the readout
            runs.remove(self.panel.run_dir)
            runs.insert(0, self.panel.run_dir)
        self.request("compare", self._on_reply, run_dirs=runs, probe_epochs=self.probe_epochs.value())

    def _on_reply(self, d: dict, final: bool = True) -> None:
        rows = d.get("rows", [])
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            self.table.setItem(i, 0, _item(r.get("name", "?"), tip=r.get("error", r.get("run_dir", ""))))
            self.table.setItem(i, 1, _item(r.get("method", "?")))
            self.table.setItem(i, 2, _item(r.get("backbone", "?")))
            self.table.setItem(i, 3, _item(str(r.get("step", "")), True))
            if "error" in r:
                self.table.setItem(i, 4, _item("error", tip=r["error"]))
                self.table.setItem(i, 5, _item(r["error"]))
            else:
                self.table.setItem(i, 4, _item(_pct(r.get("knn_top1")), True))
                self.table.setItem(i, 5, _item(_pct(r.get("linear_top1")), True))
        ok = [r for r in rows if "error" not in r]
        self.chart.set_data([f"{r.get('method')} · {r.get('name')}" for r in ok],
                            [("kNN top-1", [r.get("knn_top1") for r in ok], SERIES[0]),
                             ("linear probe", [r.get("linear_top1") for r in ok], SERIES[2])], vmax=1.0)
        self.set_status(f"Readout: {d.get('readout', '?')}" + ("" if final else " · still working…"))


# -- retrieval ------------------------------------------------------------------------------------------------------
class RetrievalTab(_Tab):
    def __init__(self, panel):
        super().__init__(panel)
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
        path, _ = QFileDialog.getOpenFileName(self, "An image to search with", "",
                                              "Images (*.png *.jpg *.jpeg *.bmp *.webp *.tif *.tiff)")
        if path:
            self.search(path=path)

    def search(self, index: int | None = None, path: str | None = None) -> None:
        args = {"run_dir": self.panel.run_dir, "k": self.k.value(), "split": self.split.currentData()}
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
class ReconstructionTab(_Tab):
    def __init__(self, panel):
        super().__init__(panel)
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

    def refresh(self) -> None:
        self.request("reconstruct", self._on_reply, run_dir=self.panel.run_dir, n=8)

    def _on_reply(self, d: dict, final: bool = True) -> None:
        if "note" in d:
            self.set_status(d["note"])
            return
        self.show_triplets(d["originals"], d["inputs"], d["outputs"], d.get("step"), d.get("epoch"), "checkpoint")

    def show_triplets(self, originals, inputs, outputs, step=None, epoch=None, source="live") -> None:
        imgs, caps = [], []
        for o, i, r in zip(originals, inputs, outputs):
            imgs += [o, i, r]
            caps += ["original", "masked input", "reconstruction"]
        self.grid.set_items(imgs, caps, smooth=True)
        self.last_step = step
        when = f"epoch {epoch:g}, step {step}" if epoch is not None and step is not None else ""
        self.set_status(f"{len(originals)} images · {source} {when}".strip())


# -- pretext task ----------------------------------------------------------------------------------------------------
class PretextTab(_Tab):
    def __init__(self, panel):
        super().__init__(panel)
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
        self.request("pretext", self._on_reply, run_dir=self.panel.run_dir, n=512)

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
class FiltersTab(_Tab):
    def __init__(self, panel):
        super().__init__(panel)
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
        self.request("filters", self._on_reply, run_dir=self.panel.run_dir)

    def _on_reply(self, d: dict, final: bool = True) -> None:
        self.result = d
        self.trained.set_items(list(d.get("filters", [])), tooltips=[f"filter {i}" for i in range(len(d["filters"]))])
        rand = d.get("random_filters")
        self.random.set_items(list(rand) if rand is not None else [])
        self.set_status(d.get("note", "") + " · each filter scaled to its own range")


# -- export ---------------------------------------------------------------------------------------------------------------
class ExportTab(_Tab):
    def __init__(self, panel):
        super().__init__(panel)
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
        self.request("loading_example", self._on_example, run_dir=self.panel.run_dir)

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
        base = str(Path(self.panel.run_dir) / "export" / ("encoder_torchvision.safetensors" if fmt == "torchvision"
                                                          else "encoder.safetensors")) if self.panel.run_dir else ""
        path, _ = QFileDialog.getSaveFileName(self, "Export the encoder", base, "safetensors (*.safetensors)")
        if path:
            self.export(path, fmt)

    def export(self, path: str, fmt: str = "own", callback=None) -> None:
        def done(d: dict, final: bool = True):
            self.set_status(f"Saved {d['path']}")
            self.example.setPlainText(f"# load {d['path']} ({d['format']} form):\n{d['example']}")
            if callback:
                callback(d)

        self.request("export_encoder", done, run_dir=self.panel.run_dir, path=path, format=fmt)

    def _save_png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save as PNG", "inspector.png", "PNG image (*.png)")
        if path:
            self.panel.save_png(path)


class InspectorPanel(QWidget):
    statusMessage = Signal(str)

    def __init__(self, client=None, parent=None, runs_roots: tuple = ()):
        super().__init__(parent)
        self.client = client
        self.run_dir: str | None = None
        self.live = False
        self.runs_roots = tuple(str(r) for r in runs_roots)
        self.roots_provider = None  # callable -> folders of runs (the window's run history)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        self.header = QLabel("No run open")
        self.header.setStyleSheet("font-weight: bold;")
        lay.addWidget(self.header)
        self.tabs = QTabWidget()
        self.evaluation = EvaluationTab(self)
        self.compare = CompareTab(self)
        self.retrieval = RetrievalTab(self)
        self.reconstruction = ReconstructionTab(self)
        self.pretext = PretextTab(self)
        self.filters = FiltersTab(self)
        self.export = ExportTab(self)
        for w, name in ((self.evaluation, "Evaluation"), (self.compare, "Compare runs"),
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
        data = (cfg.get("data") or {}).get("spec", "?")
        self.header.setText(f"{Path(self.run_dir).name} · {cfg.get('method', '?')} on {data}" +
                            (" · training" if live else ""))
        self._loaded: set[str] = set()
        self.evaluation.show_saved()
        self._on_tab(self.tabs.currentIndex())

    def on_engine_message(self, msg) -> None:
        kind = type(msg).__name__
        if kind == "RunStarted":
            self.set_run(msg.run_dir, live=True)
        elif kind == "Reconstruction":
            self.reconstruction.show_triplets(msg.originals, msg.inputs, msg.outputs, msg.step, msg.epoch, "live")
        elif kind in ("RunFinished", "RunFailed"):
            self.live = False
            if self.run_dir:
                self.header.setText(self.header.text().replace(" · training", ""))

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
