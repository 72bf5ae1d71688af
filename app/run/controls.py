"""The Run panel's Run box: Start, Pause/Resume, Stop and Resume from checkpoint, the progress bar and
state line, the command line, and the log of what the engine said (which buttons a state allows:
``app.run.model.button_states``)."""

from __future__ import annotations

import time

from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)


class RunControls(QGroupBox):
    def __init__(self, command_box, parent=None):
        super().__init__("Run", parent)
        self.start_btn = QPushButton("Start")
        self.start_btn.setObjectName("primary")
        self.start_btn.setToolTip("Start a new run with this config (Ctrl+R)")
        self.pause_btn = QPushButton("Pause")
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setToolTip("Stop with a checkpoint (resume later)")
        self.resume_last_btn = QPushButton("Resume from checkpoint")
        self.resume_last_btn.setToolTip("Continue the last run from its last checkpoint")
        self.state_label = QLabel("Ready. Press Start to train.")
        self.state_label.setWordWrap(True)
        self.state_label.setObjectName("runState")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.progress.setVisible(False)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setPlaceholderText("What the engine says during a run appears here.")
        vr = QVBoxLayout(self)
        row = QHBoxLayout()
        for b in (self.start_btn, self.pause_btn, self.stop_btn):
            row.addWidget(b)
        vr.addLayout(row)
        vr.addWidget(self.resume_last_btn)
        vr.addWidget(self.progress)
        vr.addWidget(self.state_label)
        vr.addWidget(command_box)
        vr.addWidget(QLabel("Log:"))
        vr.addWidget(self.log, 1)

    def set_buttons(self, b: dict) -> None:
        """``b``: what ``button_states`` gives."""
        self.start_btn.setEnabled(b["start"])
        self.pause_btn.setEnabled(b["pause"])
        self.pause_btn.setText(b["pause_text"])
        self.stop_btn.setEnabled(b["stop"])
        self.resume_last_btn.setEnabled(b["resume_last"])
        self.resume_last_btn.setVisible(b["resume_last"])

    def set_progress(self, fraction: float, text: str) -> None:
        self.progress.setVisible(True)
        self.progress.setValue(int(1000 * max(0.0, min(1.0, fraction))))
        self.progress.setFormat(text)

    def set_state_text(self, text: str, error: bool = False) -> None:
        self.state_label.setText(text)
        self.state_label.setProperty("error", error)
        self.state_label.style().unpolish(self.state_label)
        self.state_label.style().polish(self.state_label)

    def add_log(self, text: str) -> None:
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")
