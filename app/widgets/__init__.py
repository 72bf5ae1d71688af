"""The workbench's panels."""


def discard(widget) -> None:
    """Take a widget off screen at once and delete it later (a plain deleteLater leaves it drawn, and
    overlapping its replacement, until the event loop gets round to it)."""
    if widget is None:
        return
    widget.hide()
    widget.setParent(None)
    widget.deleteLater()
