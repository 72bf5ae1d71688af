"""The window's banner: a coloured line at the top for something the user must know (not modal)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget


class Banner(QWidget):
    """A coloured line at the top of the window for something the user must know (not modal)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.text = QLabel("")
        self.text.setWordWrap(True)
        self.action = QPushButton("")
        self.close_btn = QPushButton("Dismiss")
        self.close_btn.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 10, 6)
        lay.addWidget(self.text, 1)
        lay.addWidget(self.action)
        lay.addWidget(self.close_btn)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.hide()
        self._slot = None

    def show_message(self, text: str, action: str | None = None, slot=None, error: bool = True) -> None:
        self.text.setText(text)
        self.setProperty("error", error)
        self.style().unpolish(self)
        self.style().polish(self)
        if self._slot is not None:
            try:
                self.action.clicked.disconnect(self._slot)
            except (RuntimeError, TypeError):
                pass
            self._slot = None
        self.action.setVisible(bool(action))
        if action and slot:
            self.action.setText(action)
            self._slot = slot
            self.action.clicked.connect(slot)
        self.show()
