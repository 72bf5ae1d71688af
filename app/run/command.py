"""The Run panel's "copy as command": the command line that reproduces the config being edited (shown
read-only), copied as a python line or a torchrun line, or saved as a Slurm script."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel, QMenu, QPlainTextEdit, QToolButton, QVBoxLayout, QWidget

from app.common import dialogs
from app.run.model import command_base


class CommandBox(QWidget):
    message = Signal(str)  # a line for the status bar

    def __init__(self, config_model, parent=None):
        super().__init__(parent)
        self.model = config_model
        self.command = QPlainTextEdit()
        self.command.setReadOnly(True)
        self.command.setFixedHeight(84)
        self.command.setObjectName("command")
        self.command.setToolTip("The same run from a terminal")
        self.copy_btn = QToolButton()
        self.copy_btn.setText("Copy as command")
        self.copy_btn.setToolTip("Copy the python line; the arrow offers torchrun (several GPUs or nodes) and a "
                                 "Slurm script")
        self.copy_btn.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.copy_btn.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.copy_btn.clicked.connect(self.copy_command)
        copy_menu = QMenu(self.copy_btn)
        copy_menu.addAction("Copy python line", self.copy_command)
        copy_menu.addAction("Copy torchrun line (every GPU of one machine)", lambda: self.copy_torchrun(1))
        copy_menu.addAction("Copy torchrun line (several nodes, c10d rendezvous)", lambda: self.copy_torchrun(2))
        copy_menu.addAction("Save Slurm script…", self.save_slurm_dialog)
        self.copy_btn.setMenu(copy_menu)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Command line:"))
        lay.addWidget(self.command)
        lay.addWidget(self.copy_btn)

    def refresh(self) -> None:
        self.command.setPlainText(self.command_line())

    def command_line(self) -> str:
        from engine.commands import config_to_command

        return config_to_command(*command_base(self.model))

    def copy_command(self) -> None:
        text = self.command_line()
        QGuiApplication.clipboard().setText(text)
        self.message.emit("Copied the command line to the clipboard.")

    def copy_torchrun(self, nnodes: int = 1) -> str:
        from engine.commands import torchrun_command

        text = torchrun_command(*command_base(self.model), nnodes=nnodes)
        QGuiApplication.clipboard().setText(text)
        where = "this machine's GPUs" if nnodes == 1 else "every node (set JOB_ID and HEAD_NODE)"
        self.message.emit(f"Copied the torchrun line for {where} to the clipboard.")
        return text

    def save_slurm_dialog(self) -> None:
        path = dialogs.save_file(self, "Save a Slurm script for this run", "slurm_train.sh",
                                              "Shell scripts (*.sh)")
        if path:
            self.save_slurm(path)

    def save_slurm(self, path: str) -> None:
        from engine.commands import slurm_script
        from engine.runs import atomic_write_text

        try:
            atomic_write_text(path, slurm_script(*command_base(self.model)))
            os.chmod(path, 0o755)
        except OSError as exc:
            self.message.emit(f"Could not save {path}: {exc}")
            return
        self.message.emit(f"Saved a Slurm script to {path} (2 nodes x 4 GPUs: edit the #SBATCH lines, then sbatch it)")
