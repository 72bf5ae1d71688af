"""The Inspector's Evaluation and Compare runs tabs (their base: app/inspector/tab.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
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

from app.common.charts import SERIES, BarChart, Heatmap
from app.inspector.tab import InspectorTab, fit_table, make_table, pct, table_item

SUPERVISED_CHOICES = (("find a finished supervised run", "auto"), ("train a short supervised run", "train"),
                      ("choose a run folder…", "pick"), ("skip", "none"))


# -- evaluation -------------------------------------------------------------------------------------------------
class EvaluationTab(InspectorTab):
    HEAD = ["Encoder", "kNN top-1", "kNN top-5", "Linear probe", "Steps"]

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
                                     "when a run is shown")
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
        cfg = read_json(Path(self.target.run_dir) / "config.json", {}) if self.target.run_dir else {}
        epochs = ((cfg or {}).get("eval") or {}).get("linear_probe_epochs") if isinstance(cfg, dict) else None
        if isinstance(epochs, int) and epochs > 0:
            self.probe_epochs.setValue(epochs)  # Evaluate scores the probe as the run's final evaluation did
        self._label_probe(epochs if isinstance(epochs, int) else None)
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
        self._label_probe(self.probe_epochs.value())
        self.request("evaluate", self._on_reply, run_dir=self.target.run_dir, supervised=sup,
                     supervised_minutes=self.minutes.value(), probe_epochs=self.probe_epochs.value(),
                     roots=self.target.all_roots())

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
        fit_table(self.table, 4)
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
class CompareTab(InspectorTab):
    HEAD = ["Run", "Method", "Backbone", "Steps", "kNN top-1", "Linear probe"]

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
        from engine.runs import list_runs, read_json

        checked = set(self.checked())
        self.runs.clear()
        ref = None
        if self.target.run_dir:
            cfg = read_json(Path(self.target.run_dir) / "config.json", {}) or {}
            ref = (cfg.get("data") or {}).get("spec")
        roots = self.target.all_roots() + ([str(Path(self.target.run_dir).parent)] if self.target.run_dir else [])
        for info in list_runs(*roots):
            if self.same_data.isChecked() and ref and info.data != ref:
                continue
            knn = f" · kNN {pct(info.knn_top1)}" if info.knn_top1 is not None else ""
            it = QListWidgetItem(f"{Path(info.path).name}\n{info.method} · {info.step} steps{knn}")
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
        self.request("compare", self._on_reply, run_dirs=runs, probe_epochs=self.probe_epochs.value())

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
        ok = [r for r in rows if "error" not in r]
        self.chart.set_data([f"{r.get('method')} · {r.get('name')}" for r in ok],
                            [("kNN top-1", [r.get("knn_top1") for r in ok], SERIES[0]),
                             ("linear probe", [r.get("linear_top1") for r in ok], SERIES[2])], vmax=1.0)
        self.set_status(f"Readout: {d.get('readout', '?')}" + ("" if final else " · still working…"))


# -- retrieval ------------------------------------------------------------------------------------------------------
