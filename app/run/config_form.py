"""A run-config form built from the engine's field specs (no hand-written form per method).

Each field shows its label (help text as tooltip), an editor that suits its type, and its
validation message right under it. Values are checked as they are typed (type and bounds, with
``engine.params``); only valid values reach the :class:`app.models.config_model.ConfigModel`.
"""

from __future__ import annotations

import json

from PySide6.QtCore import QEvent, QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from app.common.controls import fmt
from app.common.qt import discard
from app.models.config_model import check_value
from engine.params import ConfigError


def _text(value, type_name: str, zero: str | None = None) -> str:
    if zero and value == 0 and type_name in ("int", "float"):
        return zero  # the field's word for 0 ("auto"), which it also takes typed
    if type_name in ("dict", "list"):
        return json.dumps(value) if value not in (None, {}, []) else ""
    if isinstance(value, float):
        return f"{value:g}" if 1e-4 <= abs(value) < 1e6 or value == 0 else f"{value:.3e}"
    return "" if value is None else str(value)


class FieldRow(QWidget):
    edited = Signal(str, object)  # (path, valid value)
    invalid = Signal(str, str)  # (path, message); message "" when it became valid again
    focused = Signal(str)  # help text

    def __init__(self, path: str, spec: dict, choices: list[str] | None = None, parent=None):
        super().__init__(parent)
        self.path, self.spec = path, spec
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        t = spec["type"]
        if t == "bool":
            self.editor = QCheckBox()
            self.editor.toggled.connect(lambda v: self._commit(bool(v)))
        elif spec.get("choices") or choices:
            self.editor = QComboBox()
            opts = list(spec.get("choices") or choices)
            self.editor.addItems([str(c) for c in opts])
            if choices and not spec.get("choices"):
                self.editor.setEditable(True)  # a suggestion list: other values are allowed
                self.editor.lineEdit().editingFinished.connect(lambda: self._typed(self.editor.currentText()))
            self.editor.currentTextChanged.connect(self._combo_changed)
        else:
            self.editor = QLineEdit()
            self.editor.textEdited.connect(self._typed)
            if spec.get("zero"):
                self.editor.setPlaceholderText(f"{spec['zero']} or a number")
            if t in ("dict", "list"):
                self.editor.setPlaceholderText("JSON, e.g. {\"blur_p\": 0.5}" if t == "dict" else "a, b, c")
        self.editor.setToolTip(spec.get("help", ""))
        self.editor.installEventFilter(self)
        self.error = QLabel("")
        self.error.setObjectName("fieldError")
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        lay.addWidget(self.editor)
        lay.addWidget(self.error)

    def eventFilter(self, obj, event):  # noqa: N802
        if event.type() == QEvent.Type.FocusIn:
            self.focused.emit(f"<b>{self.spec['label']}</b> ({self.path}): {self.spec.get('help', '')}")
        return False

    def _combo_changed(self, text: str) -> None:
        if not self.editor.isEditable():
            self._typed(text)

    def _typed(self, text: str) -> None:
        try:
            if self.spec["type"] in ("dict", "list") and text.strip().startswith(("{", "[")):
                try:
                    value = json.loads(text)
                except ValueError as exc:
                    raise ConfigError(self.path, f"not valid JSON ({exc.msg})") from None
            elif self.spec["type"] == "dict" and not text.strip():
                value = {}
            else:
                value = text
            value = check_value(self.spec, value, self.path)
        except ConfigError as exc:
            self.set_error(exc.message)
            self.invalid.emit(self.path, exc.message)
            return
        self._commit(value)

    def _commit(self, value) -> None:
        self.set_error("")
        self.invalid.emit(self.path, "")
        self.edited.emit(self.path, value)

    def set_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.setVisible(bool(message))
        self.editor.setProperty("invalid", bool(message))
        self.editor.style().unpolish(self.editor)
        self.editor.style().polish(self.editor)

    def set_value(self, value) -> None:
        if self.error.isVisible() and self.editor.hasFocus():
            return  # never overwrite what the user is typing
        with QSignalBlocker(self.editor):
            if isinstance(self.editor, QCheckBox):
                self.editor.setChecked(bool(value))
            elif isinstance(self.editor, QComboBox):
                i = self.editor.findText(str(value))
                if i < 0 and self.editor.isEditable():
                    self.editor.setEditText(str(value))
                else:
                    self.editor.setCurrentIndex(max(0, i))
            else:
                self.editor.setText(_text(value, self.spec["type"], self.spec.get("zero")))
        self.set_error("")

    def text(self) -> str:
        if isinstance(self.editor, QCheckBox):
            return fmt(self.editor.isChecked())
        if isinstance(self.editor, QComboBox):
            return self.editor.currentText()
        return self.editor.text()


class ConfigForm(QWidget):
    """Sections of fields; ``rows`` maps a dotted path to its :class:`FieldRow`."""

    edited = Signal(str, object)
    validity_changed = Signal()
    help_changed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: dict[str, FieldRow] = {}
        self.invalid: dict[str, str] = {}
        self.show_advanced = False
        self._lay = QVBoxLayout(self)
        self._lay.setContentsMargins(0, 0, 0, 0)
        self._boxes: dict[str, QGroupBox] = {}
        self._order: list[str] = []
        self._labels: dict[str, QLabel] = {}

    def add_section(self, key: str, title: str, prefix: str, specs: list[dict],
                    suggestions: dict[str, list[str]] | None = None, skip: tuple = ()) -> QGroupBox:
        """Add (or rebuild) a section of fields; ``prefix`` is the dotted path of the section."""
        old = self._boxes.pop(key, None)
        if old is not None:
            for path in [p for p in self.rows if self.rows[p].property("section") == key]:
                self.rows.pop(path)
                self._labels.pop(path, None)
                self.invalid.pop(path, None)
            self._lay.removeWidget(old)
            discard(old)
        box = QGroupBox(title)
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        n = 0
        for spec in specs:
            if spec["name"] in skip:
                continue
            path = f"{prefix}.{spec['name']}" if prefix else spec["name"]
            row = FieldRow(path, spec, (suggestions or {}).get(spec["name"]))
            row.setProperty("section", key)
            row.setProperty("advanced", bool(spec.get("advanced")))
            row.edited.connect(self.edited)
            row.invalid.connect(self._on_invalid)
            row.focused.connect(self.help_changed)
            label = QLabel(spec["label"])
            label.setToolTip(spec.get("help", ""))
            form.addRow(label, row)
            self.rows[path] = row
            self._labels[path] = label
            n += 1
        if n == 0:
            form.addRow(QLabel("(none)"))
        if key not in self._order:
            self._order.append(key)
        self._boxes[key] = box
        self._lay.insertWidget([k for k in self._order if k in self._boxes].index(key), box)
        self.set_show_advanced(self.show_advanced)
        return box

    def set_section_title(self, key: str, title: str) -> None:
        if key in self._boxes:
            self._boxes[key].setTitle(title)

    def set_show_advanced(self, on: bool) -> None:
        self.show_advanced = on
        for path, row in self.rows.items():
            visible = on or not row.property("advanced") or path in self.invalid
            row.setVisible(visible)
            self._labels[path].setVisible(visible)

    def _on_invalid(self, path: str, message: str) -> None:
        if message:
            self.invalid[path] = message
        else:
            self.invalid.pop(path, None)
        self.validity_changed.emit()

    def set_values(self, config: dict) -> None:
        for path, row in self.rows.items():
            cur = config
            ok = True
            for part in path.split("."):
                if isinstance(cur, dict) and part in cur:
                    cur = cur[part]
                else:
                    ok = False
                    break
            if ok and path not in self.invalid:
                row.set_value(cur)

    def show_errors(self, errors: list[dict]) -> list[dict]:
        """Put engine validation errors next to their fields; returns those without a field."""
        for path, row in self.rows.items():
            if path not in self.invalid:
                row.set_error("")
        rest = []
        for e in errors:
            row = self.rows.get(e.get("path", ""))
            if row is None:
                rest.append(e)
                continue
            row.set_error(e["message"])
            row.setVisible(True)
            self._labels[row.path].setVisible(True)
        return rest
