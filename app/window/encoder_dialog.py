"""File > Open encoder…: a weights file with its architecture, or a torchvision / timm name, opened by the analysis
process (op ``open_encoder``, off the GUI thread) into an encoder folder the window then shows like a run.

The dialog stays open while the encoder loads and says how far it got in one line; an error (a file that does
not fit its architecture, weights that need the internet, ...) is that line, and the user can fix the form and try
again. ``opened(reply)`` fires once the folder is written (reply: run_dir, name, arch, report, ...)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.common import dialogs
from app.models.encoders import ARCH_SUGGESTIONS, NETWORK_SUGGESTIONS, EncoderChoice, is_name, opened_text

WEIGHT_FILTER = "Weights (*.pth *.pt *.tar *.ckpt *.safetensors *.bin);;All files (*)"


def _combo(items: Sequence[str], tip: str) -> QComboBox:
    c = QComboBox()
    c.setEditable(True)
    c.addItems(list(items))
    c.setCurrentText("")
    c.setToolTip(tip)
    c.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    return c


class OpenEncoderDialog(QDialog):
    opened = Signal(dict)

    def __init__(self, analysis, runs_root: Callable[[], str], data: str = "", backbones: Sequence[str] = (),
                 parent: QWidget | None = None):
        """``analysis``: the analysis client; ``runs_root()``: where the encoder's folder goes; ``data``: the
        dataset to look at (the one shown); ``backbones``: the workbench's backbones (architecture choices)."""
        super().__init__(parent)
        self.setWindowTitle("Open encoder")
        self.analysis = analysis
        self.runs_root = runs_root
        self.request_id = None
        self.reply: dict | None = None

        self.spec = QLineEdit()
        self.spec.setPlaceholderText("a weights file, torchvision:resnet50:IMAGENET1K_V2, timm:vit_small_patch16_224.dino")
        self.spec.setToolTip("A weights file (.pth, .pt, .pth.tar, .ckpt, .safetensors), a torchvision:NAME[:WEIGHTS] "
                             "or timm:NAME[:random] name, or a run folder")
        browse = QPushButton("File…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.spec, 1)
        row.addWidget(browse)
        self.arch = _combo(list(dict.fromkeys([*ARCH_SUGGESTIONS, *backbones])),
                           "The architecture the file was trained with: torchvision:NAME, timm:NAME (options after "
                           "?, e.g. timm:vit_small_patch16_224?img_size=96) or a workbench backbone")
        self.arch.lineEdit().setPlaceholderText("for a weights file: torchvision:resnet50, timm:vit_small_patch16_224, "
                                                "resnet18, ...")
        self.select = _combo(NETWORK_SUGGESTIONS, "Which network of a checkpoint that holds several (empty: the "
                                                  "teacher, else the online network)")
        self.select.lineEdit().setPlaceholderText("the teacher, else the online network")
        self.data = QLineEdit(data)
        self.data.setToolTip("The dataset its map and evaluations look at (empty: the built-in shapes)")
        self.size = QSpinBox()
        self.size.setRange(0, 1024)
        self.size.setSpecialValueText("the model's own")
        self.size.setToolTip("The size images are read at (0: the model's own resize size)")
        form = QFormLayout()
        form.addRow("Encoder", row)
        form.addRow("Architecture", self.arch)
        form.addRow("Network in the file", self.select)
        form.addRow("Data to look at", self.data)
        form.addRow("Image size", self.size)
        self.note = QLabel("")
        self.note.setObjectName("hint")
        self.note.setWordWrap(True)
        self.line = QLabel("")
        self.line.setWordWrap(True)
        self.line.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.note)
        lay.addWidget(self.line)
        lay.addWidget(self.buttons)
        self.spec.textChanged.connect(self._follow)
        self.resize(640, self.sizeHint().height())
        self._follow()

    def choice(self) -> EncoderChoice:
        return EncoderChoice(self.spec.text(), self.arch.currentText() if self.arch.isEnabled() else "",
                             self.select.currentText(), self.data.text(), self.size.value())

    def _follow(self) -> None:
        """A torchvision / timm name names its architecture: the architecture box is for files."""
        named = is_name(self.spec.text())
        self.arch.setEnabled(not named)
        self.select.setEnabled(not named)
        self.note.setText(self.choice().note() if self.spec.text().strip() else "")

    def _browse(self) -> None:
        path = dialogs.open_file(self, "A weights file", "", WEIGHT_FILTER)
        if path:
            self.spec.setText(path)

    def say(self, text: str, error: bool = False) -> None:
        self.line.setStyleSheet("color: #b00020;" if error else "color: palette(text);")
        self.line.setText(text)

    @property
    def busy(self) -> bool:
        return self.request_id is not None

    def submit(self) -> None:
        """Ask the analysis process to open the encoder (a problem with the form is said at once)."""
        if self.busy:
            return
        choice = self.choice()
        problem = choice.problem()
        if problem:
            self.say(problem, error=True)
            return
        if self.analysis is None:
            self.say("The analysis process is not running; restart the window", error=True)
            return
        self.buttons.button(QDialogButtonBox.StandardButton.Open).setEnabled(False)
        self.say(f"Opening {choice.spec.strip()}…")
        self.request_id = self.analysis.request(
            "open_encoder", choice.args(self.runs_root()), kind="open_encoder",
            on_progress=lambda p: self.say(f"{p.detail or 'working'}… ({p.done + 1}/{p.total})"),
            on_done=self._done, on_error=lambda e: self._failed(e.get("message") or "failed"),
            on_cancelled=lambda: self._failed("Cancelled"))

    def _failed(self, text: str) -> None:
        self.request_id = None
        self.buttons.button(QDialogButtonBox.StandardButton.Open).setEnabled(True)
        self.say(text.splitlines()[0] if text else "failed", error=True)

    def _done(self, reply: dict) -> None:
        self.request_id = None
        self.reply = dict(reply)
        self.buttons.button(QDialogButtonBox.StandardButton.Open).setEnabled(True)
        self.say(opened_text(reply))
        self.opened.emit(dict(reply))
        self.accept()

    def reject(self) -> None:
        if self.request_id is not None and self.analysis is not None:
            self.analysis.cancel(self.request_id)
            self.request_id = None
        super().reject()
