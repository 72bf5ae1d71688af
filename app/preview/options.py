"""The Pretext preview's option forms: the method's own options and its augmentations.

Both write into the shared run config through the panel (what you preview is what you train): the
method's options one by one, the augmentations as overrides of the method's recipe.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtWidgets import QCheckBox, QFormLayout, QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

from app.common.controls import ParamControl
from app.common.qt import discard

# augmentation operations: (title, switch field, strength fields)
AUG_OPS = (
    ("Random resized crop", "crop", ("crop_scale_min", "crop_scale_max")),
    ("Horizontal flip", "flip_p", ()),
    ("Colour jitter", "jitter_p", ("brightness", "contrast", "saturation", "hue")),
    ("Grayscale", "gray_p", ()),
    ("Gaussian blur", "blur_p", ("blur_sigma_min", "blur_sigma_max")),
    ("Solarize", "solarize_p", ("solarize_threshold",)),
)
PROB_ON = 0.5  # a probability switched back on without a remembered value


class AugmentGroup(QGroupBox):
    """A switch and strength sliders per augmentation operation, writing overrides into the
    method's ``augment`` option (the recipe's values show until the user changes one; the user's changes
    are bold)."""

    changed = Signal(dict)  # the full overrides dict (of the base: the method's views and the dataset's recipe)
    reset_requested = Signal()  # "Reset to the recipe": forget the user's changes

    def __init__(self, parent=None):
        super().__init__("Augmentations (both views)", parent)
        self.specs: dict[str, dict] = {}
        self.base: dict = {}
        self.overrides: dict = {}
        self.switches: dict[str, QCheckBox] = {}
        self.controls: dict[str, ParamControl] = {}
        self._remember: dict[str, float] = {}
        self._lay = QVBoxLayout(self)
        self._body = QWidget()
        self._lay.addWidget(self._body)
        self.recipe_note = QLabel("")
        self.recipe_note.setWordWrap(True)
        self.recipe_note.setObjectName("hint")
        self.recipe_note.hide()
        self._lay.addWidget(self.recipe_note)
        reset = QPushButton("Reset to the recipe")
        reset.setToolTip("Forget the changes made here: the method's augmentation recipe (and what the dataset "
                         "recommends) applies")
        reset.clicked.connect(self.reset)
        self._lay.addWidget(reset)

    def build(self, specs: list[dict]) -> None:
        self.specs = {s["name"]: s for s in specs}
        self._lay.removeWidget(self._body)
        discard(self._body)
        self._body = QWidget()
        form = QFormLayout(self._body)
        form.setContentsMargins(0, 0, 0, 0)
        self.switches, self.controls = {}, {}
        used = set()
        for title, switch, strengths in AUG_OPS:
            if switch not in self.specs:
                continue
            box = QCheckBox(title)
            box.setToolTip(self.specs[switch].get("help", ""))
            box.toggled.connect(lambda on, s=switch: self._switched(s, on))
            self.switches[switch] = box
            form.addRow(box)
            used.add(switch)
            fields = ([switch] if self.specs[switch]["type"] == "float" else []) + list(strengths)
            for name in fields:
                spec = self.specs.get(name)
                if spec is None:
                    continue
                ctl = ParamControl(spec)
                ctl.changed.connect(lambda v, n=name: self._set(n, v))
                self.controls[name] = ctl
                label = "probability" if name == switch else spec["label"]
                form.addRow(f"    {label}", ctl)
                used.add(name)
        for name, spec in self.specs.items():  # fields a future engine adds
            if name in used or spec.get("advanced") or spec["type"] not in ("float", "bool", "int"):
                continue
            ctl = ParamControl(spec)
            ctl.changed.connect(lambda v, n=name: self._set(n, v))
            self.controls[name] = ctl
            form.addRow(spec["label"], ctl)
        self._lay.insertWidget(0, self._body)
        self.refresh()

    def set_state(self, base: dict, overrides: dict) -> None:
        self.base, self.overrides = dict(base or {}), dict(overrides or {})
        self.refresh()

    def default(self, name: str):
        return (self.specs.get(name) or {}).get("default")

    def set_effective(self, base: dict, effective: dict) -> None:
        """Show ``effective`` (what trains) over ``base`` (the values before the user's changes): the values
        that differ from the base are the user's (bold)."""
        base, effective = dict(base or {}), dict(effective or {})
        over = {}
        for k in set(base) | set(effective):
            eff, b = effective.get(k, self.default(k)), base.get(k, self.default(k))
            if eff != b:
                over[k] = eff
        self.set_state(base, over)

    def set_recipe_note(self, text: str) -> None:
        """What the dataset recommends (its recipe), said under the sliders."""
        self.recipe_note.setText(text)
        self.recipe_note.setVisible(bool(text))

    def value(self, name: str):
        return self.overrides.get(name, self.base.get(name, (self.specs.get(name) or {}).get("default")))

    def refresh(self) -> None:
        for name, box in self.switches.items():
            v = self.value(name)
            with QSignalBlocker(box):
                box.setChecked(bool(v) if isinstance(v, bool) else float(v or 0) > 0)
            f = box.font()
            f.setBold(name in self.overrides)
            box.setFont(f)
        for name, ctl in self.controls.items():
            ctl.set_value(self.value(name))
            ctl.setEnabled(self._op_enabled(name))

    def _op_enabled(self, name: str) -> bool:
        for _title, switch, strengths in AUG_OPS:
            if name in strengths:
                v = self.value(switch)
                return bool(v) if isinstance(v, bool) else float(v or 0) > 0
        return True

    def _switched(self, switch: str, on: bool) -> None:
        spec = self.specs[switch]
        if spec["type"] == "bool":
            self._set(switch, bool(on))
            return
        if on:
            v = self._remember.get(switch) or self.base.get(switch) or PROB_ON
            self._set(switch, float(v) if float(v) > 0 else PROB_ON)
        else:
            cur = float(self.value(switch) or 0)
            if cur > 0:
                self._remember[switch] = cur
            self._set(switch, 0.0)

    def _set(self, name: str, value) -> None:
        if self.base.get(name) == value:
            self.overrides.pop(name, None)
        else:
            self.overrides[name] = value
        lo_hi = (("crop_scale_min", "crop_scale_max"), ("blur_sigma_min", "blur_sigma_max"))
        for lo, hi in lo_hi:  # keep ranges valid while a slider moves
            if name in (lo, hi) and float(self.value(lo)) > float(self.value(hi)):
                other = hi if name == lo else lo
                self.overrides[other] = value
        self.refresh()
        self.changed.emit(dict(self.overrides))

    def reset(self) -> None:
        self.overrides = {}
        self._remember = {}
        self.refresh()
        self.reset_requested.emit()


class MethodOptions(QGroupBox):
    """A control per option of the method (its augmentations excepted: :class:`AugmentGroup` shows
    those); the advanced ones behind a switch."""

    edited = Signal(str, object)  # (option, value) as the user set it

    def __init__(self, parent=None):
        super().__init__("Method options (shared with the Run panel)", parent)
        self.controls: dict[str, ParamControl] = {}
        self._lay = QVBoxLayout(self)
        self._body = QWidget()
        self.form = QFormLayout(self._body)
        self._lay.addWidget(self._body)
        self.show_all = QCheckBox("Show advanced options")
        self.show_all.setToolTip("Options marked advanced (some matter only for training)")
        self._lay.addWidget(self.show_all)

    def build(self, specs: list[dict], values: dict) -> bool:
        """A control per option in ``specs`` showing ``values``; True when the method has augmentations."""
        self._lay.removeWidget(self._body)
        discard(self._body)
        self._body = QWidget()
        self.form = QFormLayout(self._body)
        self.form.setContentsMargins(0, 0, 0, 0)
        self._lay.insertWidget(0, self._body)
        self.controls = {}
        has_augment = False
        for spec in specs:
            if spec["name"] == "augment" and spec["type"] == "dict":
                has_augment = True
                continue
            if spec["type"] in ("dict", "list"):
                continue
            if spec.get("advanced") and not self.show_all.isChecked():
                continue
            ctl = ParamControl(spec)
            ctl.set_value(values.get(spec["name"], spec["default"]))
            ctl.changed.connect(lambda v, n=spec["name"]: self.edited.emit(n, v))
            self.controls[spec["name"]] = ctl
            self.form.addRow(spec["label"], ctl)
        if not self.controls:
            note = QLabel("This method has no options that change its preview." if specs else
                          "This method has no options.")
            note.setWordWrap(True)
            self.form.insertRow(0, note)
        return has_augment

    def set_values(self, values: dict) -> None:
        for name, ctl in self.controls.items():
            ctl.set_value(values.get(name))
