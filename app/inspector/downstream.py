"""The Inspector's Downstream tab: label efficiency and invariance.

Left, the choices: the data (the run's own labelled splits, or two other labelled sets: a transfer), the
label budgets, the modes (linear probe, fine-tuning, kNN), the baselines (a random-init encoder, whose
fine-tuning is training from scratch, and a supervised run), seeds and the fine-tuning steps. Right, the
label-efficiency curve, which fills in as each fit finishes in the analysis process (``downstream`` op,
its slow lane), with Cancel and Export PNG / CSV; below it the invariance bars (``invariance`` op): how
close an image's embedding stays under each transformation, next to two images of one class and of
different classes, for the run's encoder and a random-init one.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.common import dialogs
from app.inspector.downstream_plot import InvarianceBars, LabelEfficiencyPlot, write_points_csv
from app.inspector.tab import InspectorTab

# by default the curve makes its argument: the run's encoder with few labels (frozen: linear probe; and fine-tuned)
# next to training from scratch (the random-init encoder fine-tuned on the same labels)
MODES = (("linear", "linear probe", True), ("finetune", "fine-tune", True), ("knn", "kNN", False))
MODE_TIPS = {"linear": "Logistic regression on frozen features", "finetune": "The whole encoder and a linear head "
             "trained on the labelled subset", "knn": "Weighted kNN with the labelled subset as the bank"}


def parse_budget_text(text: str) -> list:
    """``"1, 10, all"`` -> ``[1, 10, "all"]``; ValueError with a message for anything else."""
    out: list = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        if part == "all":
            value = "all"
        elif part.isdigit() and int(part) >= 1:
            value = int(part)
        else:
            raise ValueError(f"labels per class: {part!r} is not a whole number ≥ 1 or 'all' (e.g. 1,10,100,all)")
        if value not in out:
            out.append(value)
    if not out:
        raise ValueError("labels per class: give at least one budget, e.g. 1,10,100,all")
    return out


def done_text(d: dict) -> str:
    """The status line of a finished curve, counting as the progress bar did: "84 fits: 28 points × 3 seeds"."""
    fits, points = len(d.get("fits") or []), len(d.get("results") or [])
    seeds = int(d.get("seeds") or 1)
    per = f" × {seeds} seeds" if seeds > 1 else ""
    return f"{fits} fit{'s' if fits != 1 else ''}: {points} point{'s' if points != 1 else ''}{per}"


class DataChoice(QGroupBox):
    """The data of the curve: the run's own labelled splits, or two other labelled sets (a transfer)."""

    browse = Signal(object, str)  # (the line edit, "training" or "test"): a "…" button was pressed

    def __init__(self):
        super().__init__("Data")
        dl = QVBoxLayout(self)
        self.own_data = QRadioButton("the run's own labelled splits")
        self.other_data = QRadioButton("other labelled sets (transfer)")
        self.own_data.setChecked(True)
        dl.addWidget(self.own_data)
        dl.addWidget(self.other_data)
        self.train_spec = QLineEdit()
        self.train_spec.setPlaceholderText("train: class folder or torchvision:cifar10")
        self.test_spec = QLineEdit()
        self.test_spec.setPlaceholderText("test: class folder or torchvision:cifar10-test")
        for edit, what in ((self.train_spec, "training"), (self.test_spec, "test")):
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            b = QPushButton("…")
            b.setFixedWidth(28)
            b.setToolTip(f"Choose the {what} set's folder (one sub-folder per class)")
            b.clicked.connect(lambda _=False, e=edit, w=what: self.browse.emit(e, w))
            row.addWidget(b)
            dl.addLayout(row)
            edit.textEdited.connect(lambda _t: self.other_data.setChecked(True))

    def transfer(self) -> dict:
        """The request's ``train_data`` and ``test_data`` for a transfer ({} for the run's own splits);
        ValueError with a message when one is missing."""
        if not self.other_data.isChecked():
            return {}
        train, test = self.train_spec.text().strip(), self.test_spec.text().strip()
        if not train or not test:
            raise ValueError("for a transfer, give a training set and a test set (folders or torchvision:NAME)")
        return {"train_data": train, "test_data": test}

    def test_set(self) -> str | None:
        """The transfer's test set when one is chosen (the invariance bars measure on it)."""
        return (self.other_data.isChecked() and self.test_spec.text().strip()) or None


def heading(title: str, info: QLabel) -> QHBoxLayout:
    """A section's head: its title in bold, then ``info`` (grey) taking the rest of the row."""
    head = QHBoxLayout()
    label = QLabel(title)
    label.setStyleSheet("font-weight: bold;")
    head.addWidget(label)
    info.setStyleSheet("color: #666;")
    head.addWidget(info, 1)
    return head


class InvarianceSection(QWidget):
    """The invariance bars (``invariance`` op): how close an image's embedding stays under each
    transformation, next to two images of one class and of different classes."""

    def __init__(self):
        super().__init__()
        self.request_id = None
        v = QVBoxLayout(self)
        v.setContentsMargins(0, 4, 0, 0)
        self.status = QLabel("Cosine similarity of an image's embedding with its transformed version, and of "
                             "two images of one class / of different classes")
        self.status.setWordWrap(True)
        head = heading("Invariant or semantic?", self.status)
        head.addWidget(QLabel("Images"))
        self.images = QSpinBox()
        self.images.setRange(2, 5000)
        self.images.setValue(256)
        head.addWidget(self.images)
        self.button = QPushButton("Measure")
        head.addWidget(self.button)
        v.addLayout(head)
        self.bars = InvarianceBars()
        self.bars.setMinimumHeight(160)
        v.addWidget(self.bars, 1)

    def measure(self, client, run_dir: str | None, data: str | None = None) -> int | None:
        """Ask for the bars of ``run_dir``'s encoder on its own data or on ``data``."""
        if client is None or not run_dir:
            self.status.setText("Open a run first")
            return None
        args = {"run_dir": run_dir, "images": self.images.value()}
        if data:
            args["data"] = data
        self.button.setEnabled(False)
        self.status.setText("Measuring…")

        def done(d):
            self.request_id = None
            self.button.setEnabled(True)
            self.bars.set_rows(d.get("rows") or [])
            self.status.setText(f"{d.get('num_images', 0)} images of {d.get('data', '?')}; 1 = the same embedding, "
                                "0 = unrelated. " + " ".join(d.get("notes") or []))

        def failed(text):
            self.request_id = None
            self.button.setEnabled(True)
            self.status.setText(text)

        self.request_id = client.request(
            "invariance", args, kind=f"invariance-{id(self)}",
            on_progress=lambda p: self.status.setText(f"{p.detail or 'measuring'}… ({p.done}/{p.total})"),
            on_partial=lambda d: self.bars.set_rows(d.get("rows") or []), on_done=done,
            on_error=lambda e: failed(e.get("message") or "failed"), on_cancelled=lambda: failed("Cancelled"))
        return self.request_id


class DownstreamTab(InspectorTab):
    def __init__(self, target):
        super().__init__(target)
        self.result: dict | None = None
        self.meta: dict = {}
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._controls())
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self._curve_box())
        self.invariance = InvarianceSection()
        self.invariance.button.clicked.connect(self.run_invariance)
        right.addWidget(self.invariance)
        right.setSizes([460, 300])
        right.setChildrenCollapsible(False)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([320, 900])
        split.setChildrenCollapsible(False)
        self.lay.addWidget(split, 1)
        self.reset()
        # the parts tests reach
        self.other_data, self.train_spec, self.test_spec = self.data.other_data, self.data.train_spec, \
            self.data.test_spec
        self.bars, self.inv_status, self.inv_images = self.invariance.bars, self.invariance.status, \
            self.invariance.images

    inv_request_id = property(lambda self: self.invariance.request_id)  # the invariance request in flight

    # -- the controls ------------------------------------------------------------------------------------------
    def _controls(self) -> QWidget:
        box = QWidget()
        v = QVBoxLayout(box)
        v.setContentsMargins(0, 0, 6, 0)
        intro = QLabel("How much do labels buy? The run's encoder with 1, 10, … labels per class (SSL + few "
                       "labels) next to training from scratch (a random-init encoder fine-tuned on the same "
                       "labels), scored on a test set.")
        intro.setWordWrap(True)
        v.addWidget(intro)

        self.data = DataChoice()
        self.data.browse.connect(self._browse)
        v.addWidget(self.data)

        form_box = QGroupBox("Curve")
        form = QFormLayout(form_box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.budgets = QLineEdit("1,2,5,10,25,100,all")
        self.budgets.setToolTip("Labels per class, comma-separated whole numbers or 'all'")
        form.addRow("Labels per class", self.budgets)
        modes = QVBoxLayout()
        self.mode_boxes = {}
        for key, text, on in MODES:
            cb = QCheckBox(text)
            cb.setChecked(on)
            cb.setToolTip(MODE_TIPS[key])
            self.mode_boxes[key] = cb
            modes.addWidget(cb)
        form.addRow("Modes", modes)
        base = QVBoxLayout()
        self.random_init = QCheckBox("from scratch (random init)")
        self.random_init.setToolTip("An untrained encoder of the same backbone; fine-tuned, it is training from "
                                    "scratch on the same labels (its frozen linear probe is drawn too, faintly)")
        self.random_init.setChecked(True)
        self.supervised = QCheckBox("supervised run")
        self.supervised.setToolTip("The newest finished supervised run of the same backbone and data (train one "
                                   "in the Evaluation tab)")
        base.addWidget(self.random_init)
        base.addWidget(self.supervised)
        form.addRow("Baselines", base)
        self.seeds = QSpinBox()
        self.seeds.setRange(1, 20)
        self.seeds.setValue(3)
        self.seeds.setToolTip("Every point is fitted on this many label subsets; the band is their spread")
        form.addRow("Seeds", self.seeds)
        self.ft_steps = QSpinBox()
        self.ft_steps.setRange(1, 100000)
        self.ft_steps.setValue(100)
        self.ft_steps.setToolTip("Optimiser steps per fine-tuning fit")
        form.addRow("Fine-tune steps", self.ft_steps)
        self.max_test = QSpinBox()
        self.max_test.setRange(0, 1_000_000)
        self.max_test.setSingleStep(500)
        self.max_test.setValue(2000)
        self.max_test.setSpecialValueText("all")
        self.max_test.setToolTip("Score on a fixed sample of this many test images (0: all of them)")
        form.addRow("Test images", self.max_test)
        v.addWidget(form_box)

        row = QHBoxLayout()
        self.run_btn = QPushButton("Run curve")
        self.run_btn.setDefault(True)
        self.run_btn.clicked.connect(self.run_curve)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel)
        row.addWidget(self.run_btn, 1)
        row.addWidget(self.cancel_btn)
        v.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        v.addWidget(self.progress)
        v.addWidget(self.status)
        v.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(box)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(box.sizeHint().width() + 12)
        return scroll

    def _curve_box(self) -> QWidget:
        w = QWidget()
        v = QVBoxLayout(w)
        v.setContentsMargins(0, 0, 0, 0)
        self.curve_info = QLabel("")
        head = heading("Label efficiency", self.curve_info)
        self.png_btn = QPushButton("Export PNG…")
        self.png_btn.clicked.connect(lambda: self.export_png())
        self.csv_btn = QPushButton("Export CSV…")
        self.csv_btn.clicked.connect(lambda: self.export_csv())
        head.addWidget(self.png_btn)
        head.addWidget(self.csv_btn)
        v.addLayout(head)
        self.plot = LabelEfficiencyPlot()
        self.plot.setMinimumHeight(220)
        v.addWidget(self.plot, 1)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: #666;")
        v.addWidget(self.notes)
        return w

    def _browse(self, edit: QLineEdit, what: str) -> None:
        start = edit.text() or (str(Path(self.target.run_dir).parent) if self.target.run_dir else "")
        d = dialogs.existing_folder(self, f"The {what} set (one folder per class)", start)
        if d:
            edit.setText(d)
            self.data.other_data.setChecked(True)

    # -- state -------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """A new run is shown: nothing measured yet."""
        self.result, self.meta = None, {}
        self.plot.clear_points(text="Choose budgets and modes, then Run curve")
        self.invariance.bars.set_rows([])
        self.curve_info.setText("")
        self.notes.setText("")
        self.progress.setValue(0)
        self.progress.setMaximum(1)
        self.progress.setFormat("")
        self._busy(False)
        self.set_status("Each point is a fit on a class-balanced label subset; a fine-tuning fit takes seconds to "
                        "minutes on a CPU")

    def _busy(self, busy: bool) -> None:
        self.run_btn.setEnabled(not busy)
        self.cancel_btn.setEnabled(busy)

    def args(self) -> dict:
        """The request's arguments from the controls (ValueError with a message for a bad choice)."""
        modes = [k for k, cb in self.mode_boxes.items() if cb.isChecked()]
        if not modes:
            raise ValueError("choose at least one mode (linear probe, fine-tune or kNN)")
        a = {"run_dir": self.target.run_dir, "labels_per_class": parse_budget_text(self.budgets.text()),
             "modes": modes, "seeds": self.seeds.value(), "finetune_steps": self.ft_steps.value(),
             "max_test": self.max_test.value(), "roots": self.target.all_roots(),
             "baselines": (["random_init"] if self.random_init.isChecked() else [])
             + (["supervised:auto"] if self.supervised.isChecked() else [])}
        a.update(self.data.transfer())
        return a

    # -- the curve ---------------------------------------------------------------------------------------------
    def run_curve(self) -> int | None:
        client = self.target.client
        if client is None or not self.target.run_dir:
            self.set_status("Open a run first", error=True)
            return None
        try:
            args = self.args()
        except ValueError as exc:
            self.set_status(str(exc), error=True)
            return None
        self.result, self.meta = None, {}
        self.plot.clear_points(text="Waiting for the first fit…")
        self.notes.setText("")
        self.progress.setMaximum(0)  # busy until the first progress report
        self._busy(True)
        self.set_status("Reading the data and extracting features…")
        self.request_id = client.request("downstream", args, kind=f"downstream-{id(self)}",
                                         on_progress=self._on_progress, on_partial=self._on_partial,
                                         on_done=self._on_done, on_error=self._on_error,
                                         on_cancelled=self._on_cancelled)
        return self.request_id

    def cancel(self) -> None:
        if self.request_id is not None and self.target.client is not None:
            self.target.client.cancel(self.request_id)

    def _on_progress(self, p) -> None:
        self.progress.setMaximum(max(1, p.total))
        self.progress.setValue(p.done)
        self.progress.setFormat(f"{p.done}/{p.total} fits")
        self.set_status(p.detail or "working…")

    def _on_partial(self, d: dict) -> None:
        if "meta" in d:
            m = self.meta = d["meta"]
            per_class = m["num_train"] / max(1, m["num_classes"])
            self.plot.clear_points(m["encoders"], per_class, text="Waiting for the first fit…")
            self.curve_info.setText(f"{m['data']} · {m['num_train']:,} training / {m['num_test']:,} test images · "
                                    f"{m['num_classes']} classes · {m['seeds']} seed{'s' if m['seeds'] > 1 else ''}")
            self.notes.setText(" ".join(m.get("notes") or []))
        if "point" in d:
            self.plot.set_point(d["point"])

    def _on_done(self, d: dict) -> None:
        self.request_id = None
        self.result = d
        self.plot.set_points(d.get("results") or [])
        self.notes.setText(" ".join(d.get("notes") or []))
        self._busy(False)
        self.progress.setMaximum(1)
        self.progress.setValue(1)
        self.progress.setFormat(f"done in {d.get('seconds', 0):.0f} s")
        self.set_status(done_text(d))

    def _stopped(self, text: str, error: bool = False) -> None:
        self.request_id = None
        self._busy(False)
        self.progress.setMaximum(1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        kept = len(self.plot.points)
        self.set_status(text + (f"; the {kept} point{'s' if kept != 1 else ''} so far stay" if kept else ""), error)

    def _on_error(self, e: dict) -> None:
        self._stopped(e.get("message") or "the downstream evaluation failed", error=True)

    def _on_cancelled(self) -> None:
        self._stopped("Cancelled")

    # -- export ------------------------------------------------------------------------------------------------
    def _save_path(self, what: str, suffix: str) -> str:
        name = f"{Path(self.target.run_dir).name if self.target.run_dir else 'run'}-downstream.{suffix}"
        start = str(Path(self.target.run_dir) / name) if self.target.run_dir else name
        path = dialogs.save_file(self, f"Export the {what}", start, f"{suffix.upper()} (*.{suffix})")
        return path

    def _export(self, what: str, suffix: str, path: str | None, write, errors=Exception) -> str | None:
        """``write(path)`` -> the status line's text; a path is asked for when none is given, and ``errors``
        are told in the status line."""
        if not self.plot.points:
            self.set_status("Nothing to export yet: run the curve first", error=True)
            return None
        path = path or self._save_path(what, suffix)
        if not path:
            return None
        try:
            self.set_status(write(path))
        except errors as exc:
            self.set_status(f"cannot write {path} ({getattr(exc, 'strerror', None) or exc}); choose another folder",
                            error=True)
            return None
        return path

    def export_csv(self, path: str | None = None) -> str | None:
        return self._export("points as CSV", "csv", path,
                            lambda p: f"Saved {write_points_csv(self.plot.point_list(), p)} points to {p}", OSError)

    def export_png(self, path: str | None = None) -> str | None:
        def write(p: str) -> str:
            self.plot.export_png(p, width=max(1000, self.plot.width()))
            return f"Saved the curve to {p}"

        return self._export("curve as PNG", "png", path, write)

    # -- invariance ------------------------------------------------------------------------------------------
    def run_invariance(self) -> int | None:
        """The bars on the run's own data, or on the transfer's test set when one is chosen."""
        return self.invariance.measure(self.target.client, self.target.run_dir, self.data.test_set())
