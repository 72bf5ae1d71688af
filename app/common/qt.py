"""Small Qt helpers shared by the rooms: taking a widget off screen, the folder a drop carries."""

from __future__ import annotations

from pathlib import Path


def discard(widget) -> None:
    """Take a widget off screen at once and delete it later (a plain deleteLater leaves it drawn, and
    overlapping its replacement, until the event loop gets round to it)."""
    if widget is None:
        return
    widget.hide()
    widget.setParent(None)
    widget.deleteLater()


def dropped_folder(mime) -> str | None:
    """The folder a drag-and-drop carries (a dropped file stands for its folder), or None."""
    if not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile():
            p = Path(url.toLocalFile())
            if p.is_dir():
                return str(p)
            if p.is_file():
                return str(p.parent)
    return None
