"""The file dialogs of the window, each giving the keyboard back to the window when it closes.

A native file dialog (the desktop's own) closes without handing the focus back on some desktops: the window
then ignores its shortcuts until it is clicked. Every view asks for a folder or a file here, and the window
it belongs to is activated again before the answer is used."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QWidget


def refocus(widget: QWidget | None) -> None:
    """Activate ``widget``'s window again (after a dialog), so its shortcuts answer at once."""
    if widget is None:
        return
    win = widget.window()
    if win is not None and win.isVisible():
        win.raise_()
        win.activateWindow()


def existing_folder(parent: QWidget, caption: str, start: str = "") -> str:
    """A folder the user chose ("" when cancelled)."""
    try:
        return QFileDialog.getExistingDirectory(parent, caption, start)
    finally:
        refocus(parent)


def open_file(parent: QWidget, caption: str, start: str = "", filters: str = "") -> str:
    """A file to read ("" when cancelled)."""
    try:
        return QFileDialog.getOpenFileName(parent, caption, start, filters)[0]
    finally:
        refocus(parent)


def save_file(parent: QWidget, caption: str, start: str = "", filters: str = "") -> str:
    """A file to write ("" when cancelled)."""
    try:
        return QFileDialog.getSaveFileName(parent, caption, start, filters)[0]
    finally:
        refocus(parent)


def save_file_choice(parent: QWidget, caption: str, start: str = "", filters: str = "") -> tuple[str, str]:
    """A file to write and the filter chosen with it (("", "") when cancelled)."""
    try:
        return QFileDialog.getSaveFileName(parent, caption, start, filters)
    finally:
        refocus(parent)
