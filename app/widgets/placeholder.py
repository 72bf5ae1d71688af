"""A tab reserved for a view another part of the workbench provides (Embedding map, Inspector)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class PlaceholderView(QWidget):
    def __init__(self, title: str, text: str, parent=None):
        super().__init__(parent)
        self.title = title
        label = QLabel(f"<h3>{title}</h3><p>{text}</p>")
        label.setWordWrap(True)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setObjectName("placeholder")
        lay = QVBoxLayout(self)
        lay.addStretch(1)
        lay.addWidget(label)
        lay.addStretch(2)

    def is_ready(self) -> bool:
        return True
