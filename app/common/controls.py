"""Live controls for one parameter, built from an ``engine.params.field_specs`` entry.

Used where a change should show at once (the preview panel): floats with bounds become sliders
(logarithmic when the field says so), ints spin boxes, choices combo boxes, bools check boxes.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QLineEdit, QSlider, QSpinBox, QWidget

STEPS = 1000


def fmt(v) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        if v == 0:
            return "0"
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


class ParamControl(QWidget):
    changed = Signal(object)  # the new value (already of the field's type)

    def __init__(self, spec: dict, parent=None):
        super().__init__(parent)
        self.spec = spec
        self.setToolTip(spec.get("help", ""))
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        t, lo, hi = spec["type"], spec.get("min"), spec.get("max")
        self.kind = "text"
        if t == "bool":
            self.kind = "bool"
            self.w = QCheckBox()
            self.w.toggled.connect(lambda v: self.changed.emit(bool(v)))
            lay.addWidget(self.w)
            lay.addStretch(1)
        elif spec.get("choices"):
            self.kind = "choice"
            self.w = QComboBox()
            for c in spec["choices"]:
                self.w.addItem(str(c), c)
            self.w.currentIndexChanged.connect(lambda i: self.changed.emit(self.w.itemData(i)))
            lay.addWidget(self.w, 1)
        elif t == "float" and lo is not None and hi is not None and hi > lo:
            self.kind = "slider"
            self.log = bool(spec.get("log")) and lo > 0
            self.w = QSlider(Qt.Orientation.Horizontal)
            self.w.setRange(0, STEPS)
            self.label = QLabel()
            self.label.setMinimumWidth(44)
            self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.w.valueChanged.connect(self._slid)
            lay.addWidget(self.w, 1)
            lay.addWidget(self.label)
        elif t == "int" and lo is not None and hi is not None and hi - lo <= 100_000:
            self.kind = "int"
            self.w = QSpinBox()
            self.w.setRange(0 if spec.get("zero") else int(lo), int(hi))
            if spec.get("zero"):
                self.w.setSpecialValueText(spec["zero"])  # shown for 0
            self.w.valueChanged.connect(lambda v: self.changed.emit(int(v)))
            lay.addWidget(self.w, 1)
        else:
            self.w = QLineEdit()
            self.w.editingFinished.connect(self._typed)
            lay.addWidget(self.w, 1)
        self.set_value(spec.get("default"))

    # slider <-> value
    def _to_pos(self, v: float) -> int:
        lo, hi = float(self.spec["min"]), float(self.spec["max"])
        v = min(max(float(v), lo), hi)
        if self.log:
            return round((math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)) * STEPS)
        return round((v - lo) / (hi - lo) * STEPS)

    def _from_pos(self, pos: int) -> float:
        lo, hi = float(self.spec["min"]), float(self.spec["max"])
        f = pos / STEPS
        if self.log:
            return float(math.exp(math.log(lo) + f * (math.log(hi) - math.log(lo))))
        v = lo + f * (hi - lo)
        # three significant decimals of the range: 0.5 stays 0.5 rather than 0.4997
        digits = max(0, -int(math.floor(math.log10((hi - lo) / 100))))
        return float(round(v, digits))

    def _slid(self, pos: int) -> None:
        v = self._from_pos(pos)
        self.label.setText(fmt(v))
        self.changed.emit(v)

    def _typed(self) -> None:
        from app.models.config_model import check_value
        from engine.params import ConfigError

        try:
            v = check_value(self.spec, self.w.text(), self.spec["name"])
        except ConfigError as exc:
            self.w.setToolTip(exc.message)
            self.w.setStyleSheet("border: 1px solid #c0392b;")
            return
        self.w.setStyleSheet("")
        self.w.setToolTip(self.spec.get("help", ""))
        self.changed.emit(v)

    def value(self):
        if self.kind == "bool":
            return self.w.isChecked()
        if self.kind == "choice":
            return self.w.currentData()
        if self.kind == "slider":
            return self._from_pos(self.w.value())
        if self.kind == "int":
            return self.w.value()
        return self.w.text()

    def set_value(self, v) -> None:
        if v is None:
            return
        with QSignalBlocker(self.w):
            if self.kind == "bool":
                self.w.setChecked(bool(v))
            elif self.kind == "choice":
                i = self.w.findData(v)
                self.w.setCurrentIndex(max(0, i))
            elif self.kind == "slider":
                self.w.setValue(self._to_pos(v))
                self.label.setText(fmt(float(v)))
            elif self.kind == "int":
                self.w.setValue(int(v))
            else:
                self.w.setText(fmt(v) if not isinstance(v, str) else v)

    def move_to(self, value) -> None:
        """Move the control to ``value`` like a user would (emits ``changed``)."""
        if self.kind == "slider":
            self.w.setValue(self._to_pos(value))
        elif self.kind == "bool":
            self.w.setChecked(bool(value))
        elif self.kind == "choice":
            self.w.setCurrentIndex(max(0, self.w.findData(value)))
        elif self.kind == "int":
            self.w.setValue(int(value))
        else:
            self.w.setText(str(value))
            self._typed()
