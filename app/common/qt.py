"""Small Qt helpers shared by the rooms: taking a widget off screen, the folder a drop carries, a widget that
takes a dropped folder."""

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


class FolderDrop:
    """Mixed into a widget (before its Qt class) that takes a folder dropped on it: accepts drags that carry one
    and hands the folder to ``folder_dropped``. The widget calls ``setAcceptDrops(True)``."""

    def folder_dropped(self, folder: str) -> None:
        raise NotImplementedError

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if dropped_folder(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        folder = dropped_folder(event.mimeData())
        if folder:
            event.acceptProposedAction()
            self.folder_dropped(folder)
