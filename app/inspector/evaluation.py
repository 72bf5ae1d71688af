"""The Inspector's Evaluation and Compare runs tabs (their base: app/inspector/tab.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.common import dialogs
from app.common.charts import SERIES, BarChart, Heatmap
from app.common.measures import final_of, final_text, knn_cell, list_runs_with_finals, protocol_text
from app.inspector.tab import InspectorTab, fit_table, make_table, pct, table_item

CACHED = "the run's final evaluation"  # a row that reuses results.json (same checkpoint, same protocol)


def measured_text(row: dict) -> tuple[str, str]:
    """The Measured column of a row: (text, tooltip)."""
    if row.get("cached"):
        return CACHED, ("The same checkpoint scored with the same protocol at the end of its training "
                        f"({row['cached']}): the number is reused, not measured again")
    return "now", "Scored now with the protocol above"


def run_probe_epochs(run_dir: str | None) -> int | None:
    """The linear-probe epochs of a run's own final evaluation (its config.json), or None."""
    from engine.runs import read_json

    cfg = read_json(Path(run_dir) / "config.json", {}) if run_dir else {}
    epochs = ((cfg or {}).get("eval") or {}).get("linear_probe_epochs") if isinstance(cfg, dict) else None
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def protocol_status(d: dict, final: bool) -> str:
    """The status line under a scored table: what the figures are (the protocol) and where."""
    words = protocol_text(d.get("protocol"))
    data = (d.get("protocol") or {}).get("eval_data") or (d.get("protocol") or {}).get("data") or d.get("readout")
    where = f" of {data}" if data else ""
    if not words:
        words = f"{d.get('num_test', 0):,} held-out images against a bank of {d.get('num_bank', 0):,}"
    return f"Evaluation protocol{where}: {words}" + ("" if final else " · still working…")

SUPERVISED_CHOICES = (("find a finished supervised run", "auto"), ("train a short supervised run", "train"),
                      ("choose a run folder…", "pick"), ("skip", "none"))


# -- evaluation -------------------------------------------------------------------------------------------------
class EvaluationTab(InspectorTab):
    HEAD = ["Encoder", "kNN top-1", "kNN top-5", "Linear probe", "Steps", "Measured"]

    def __init__(self, target):
        super().__init__(target)
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
        self.probe_epochs.setToolTip("Epochs of the linear probe; set to the run's own (its final evaluation's) "
                                     "when a run is shown. With the run's own, Evaluate reuses its final "
                                     "evaluation for this run's row (one number per question)")
        self.run_epochs: int | None = None  # the shown run's own probe epochs
        row.addWidget(self.probe_epochs)
        self.run_btn = QPushButton("Evaluate")
        self.run_btn.clicked.connect(self.evaluate)
        row.addWidget(self.run_btn)
        row.addStretch(1)
        self.lay.addLayout(row)
        self.sup_dir: str | None = None
        self.lay.addWidget(self.status)
        self.table = make_table(self.HEAD)
        self.table.itemSelectionChanged.connect(self._show_details)
        fit_table(self.table, 3)
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
        res = read_json(Path(self.target.run_dir) / "results.json", {}) if self.target.run_dir else {}
        epochs = self.run_epochs = run_probe_epochs(self.target.run_dir)
        if epochs:
            self.probe_epochs.setValue(epochs)  # Evaluate scores the probe as the run's final evaluation did
        self._label_probe(epochs)
        if not isinstance(res, dict) or "knn_top1" not in res:
            self.per_class.set_data([], [])
            self.confusion.set_data(np.zeros((0, 0)), [])
            self.set_status("Press Evaluate to score this run next to a random-init and a supervised encoder"
                            + (f" ({res['note']})" if isinstance(res, dict) and res.get("note") else ""))
            return
        row = {k: res.get(k) for k in ("knn_top1", "knn_top5", "linear_top1", "knn_per_class", "knn_confusion",
                                       "linear_per_class", "linear_confusion", "step")}
        row.update(name=f"this run ({res.get('method', '?')}), final evaluation", kind="run", cached="results.json")
        self._on_reply({"rows": [row], "class_names": res.get("class_names") or [], "num_test": res.get("num_test", 0),
                        "num_bank": res.get("num_train", 0), "notes": [], "protocol": res.get("protocol")})
        said = final_text(final_of(res))
        self.set_status(f"The run's {said} ({res.get('num_test', 0):,} held-out images). Press Evaluate to "
                        "compare with a random-init and a supervised encoder with the same protocol.")

    def _label_probe(self, epochs: int | None) -> None:
        """The linear-probe column says how many epochs the probe trained: the run's final evaluation
        and Evaluate may use different counts, and their figures differ with it."""
        text = "Linear probe" + (f" ({epochs} epochs)" if epochs else "")
        self.table.setHorizontalHeaderItem(3, QTableWidgetItem(text))

    def _on_sup_choice(self, *_):
        choice = self.supervised.currentData()
        self.minutes.setEnabled(choice == "train")
        if choice == "pick":
            start = str(Path(self.target.run_dir).parent) if self.target.run_dir else ""
            d = dialogs.existing_folder(self, "A supervised run folder", start)
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
        self._label_probe(self.probe_epochs.value())
        # the run's own probe epochs are the protocol's default: not sent, so its final evaluation is reused
        own = self.probe_epochs.value() == self.run_epochs
        self.request("evaluate", self._on_reply, run_dir=self.target.run_dir, supervised=sup,
                     supervised_minutes=self.minutes.value(), roots=self.target.all_roots(),
                     **({} if own else {"probe_epochs": self.probe_epochs.value()}))

    def _on_reply(self, d: dict, final: bool = True) -> None:
        self.result = d
        rows = d.get("rows", [])
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            tip = r.get("run_dir", "")
            self.table.setItem(i, 0, table_item(r.get("name", "?"), tip=tip))
            self.table.setItem(i, 1, table_item(pct(r.get("knn_top1")), True))
            self.table.setItem(i, 2, table_item(pct(r.get("knn_top5")), True))
            self.table.setItem(i, 3, table_item(pct(r.get("linear_top1")), True))
            self.table.setItem(i, 4, table_item(str(r.get("step", "")) if r.get("kind") != "random_init" else "0", True))
            text, tip = measured_text(r)
            self.table.setItem(i, 5, table_item(text, tip=tip))
        fit_table(self.table, 4)
        if rows and not self.table.selectedItems():
            self.table.selectRow(0)
        self._show_details()
        notes = list(d.get("notes") or [])
        self.notes.setText(" ".join(notes))
        self.set_status(protocol_status(d, final))

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
class CompareTab(InspectorTab):
    HEAD = ["Run", "Method", "Backbone", "Steps", "kNN top-1", "Linear probe", "Measured"]

    def __init__(self, target):
        super().__init__(target)
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
        self.probe_epochs.setToolTip("Epochs of the linear probe: the shown run's own by default (the runs' final "
                                     "evaluations are reused where they measured the same thing)")
        self.run_epochs: int | None = None  # the shown run's own
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
        self.table = make_table(self.HEAD)
        rl.addWidget(self.table, 1)
        self.chart = BarChart(title="Accuracy by run")
        rl.addWidget(self.chart, 1)
        split.addWidget(right)
        split.setSizes([280, 600])
        self.lay.addWidget(split, 1)

    def reload(self) -> None:
        from engine.runs import read_json

        checked = set(self.checked())
        self.runs.clear()
        ref = None
        if self.target.run_dir:
            cfg = read_json(Path(self.target.run_dir) / "config.json", {}) or {}
            ref = (cfg.get("data") or {}).get("spec")
            epochs = self.run_epochs = run_probe_epochs(self.target.run_dir)
            if epochs:
                self.probe_epochs.setValue(epochs)
        roots = self.target.all_roots() + ([str(Path(self.target.run_dir).parent)] if self.target.run_dir else [])
        infos, finals = list_runs_with_finals(*roots)
        for info in infos:
            if self.same_data.isChecked() and ref and info.data != ref:
                continue
            text, tip, _measure = knn_cell(info, finals.get(info.path))
            knn = f" · kNN {text}" if text else ""
            it = QListWidgetItem(f"{Path(info.path).name}\n{info.method} · {info.step} steps{knn}")
            it.setToolTip(tip)
            it.setData(Qt.ItemDataRole.UserRole, info.path)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = info.path in checked or (not checked and self.target.run_dir and
                                          Path(info.path).resolve() == Path(self.target.run_dir).resolve())
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
        if self.target.run_dir and self.target.run_dir in runs:  # the open run is the readout
            runs.remove(self.target.run_dir)
            runs.insert(0, self.target.run_dir)
        self.table.setHorizontalHeaderItem(5, QTableWidgetItem(f"Linear probe ({self.probe_epochs.value()} epochs)"))
        # the reference run's own probe epochs are the protocol's default: not sent (final evaluations are reused)
        own = self.probe_epochs.value() == self.run_epochs and runs[0] == self.target.run_dir
        self.request("compare", self._on_reply, run_dirs=runs,
                     **({} if own else {"probe_epochs": self.probe_epochs.value()}))

    def _on_reply(self, d: dict, final: bool = True) -> None:
        rows = d.get("rows", [])
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            self.table.setItem(i, 0, table_item(r.get("name", "?"), tip=r.get("error", r.get("run_dir", ""))))
            self.table.setItem(i, 1, table_item(r.get("method", "?")))
            self.table.setItem(i, 2, table_item(r.get("backbone", "?")))
            self.table.setItem(i, 3, table_item(str(r.get("step", "")), True))
            if "error" in r:
                self.table.setItem(i, 4, table_item("error", tip=r["error"]))
                self.table.setItem(i, 5, table_item(r["error"]))
            else:
                self.table.setItem(i, 4, table_item(pct(r.get("knn_top1")), True))
                self.table.setItem(i, 5, table_item(pct(r.get("linear_top1")), True))
                text, tip = measured_text(r)
                self.table.setItem(i, 6, table_item(text, tip=tip))
        ok = [r for r in rows if "error" not in r]
        self.chart.set_data([f"{r.get('method')} · {r.get('name')}" for r in ok],
                            [("kNN top-1", [r.get("knn_top1") for r in ok], SERIES[0]),
                             ("linear probe", [r.get("linear_top1") for r in ok], SERIES[2])], vmax=1.0)
        self.set_status(protocol_status(d, final))


# -- retrieval ------------------------------------------------------------------------------------------------------
