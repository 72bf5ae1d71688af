"""The window's menus: File, Run, View and Help, with the entries each view adds (``View.menu_entries``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMessageBox

if TYPE_CHECKING:
    from app.window.main_window import MainWindow

MENUS = ("File", "Run", "View", "Help")


def add_action(window, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
    a = QAction(text, window)
    if shortcut:
        a.setShortcut(QKeySequence(shortcut))
    if tip:
        a.setStatusTip(tip)
    a.triggered.connect(slot)
    menu.addAction(a)
    return a


def _view_entries(window, menu, name: str, entries: dict) -> None:
    """The entries views add to menu ``name``, a group per view."""
    for items in entries.values():
        group = [e for e in items if e.menu == name]
        if group and not menu.isEmpty():
            menu.addSeparator()
        for e in group:
            add_action(window, menu, e.text, e.slot, e.shortcut, e.tip)


def build_menus(w: MainWindow) -> None:
    entries = {key: list(view.menu_entries()) for key, view in w.views.items()}
    for key, items in entries.items():
        for e in items:
            if e.menu not in MENUS:
                raise ValueError(f"the {key!r} view adds {e.text!r} to a menu {e.menu!r}; the window's "
                                 f"menus are {', '.join(MENUS)}")
    mb = w.menuBar()
    f = mb.addMenu("&File")
    add_action(w, f, "Open run folder…", w.open_run_dialog, "Ctrl+Shift+O", "Show a run folder's curves")
    _view_entries(w, f, "File", entries)
    f.addSeparator()
    add_action(w, f, "Quit", w.close, QKeySequence.StandardKey.Quit)
    r = mb.addMenu("&Run")
    _view_entries(w, r, "Run", entries)
    w.act_pause = add_action(w, r, "Pause / resume", w.toggle_pause, "Ctrl+P")
    w.act_stop = add_action(w, r, "Stop", w.engine.stop, "Ctrl+.", "Stop with a checkpoint")
    w.act_snapshot = add_action(w, r, "Save a checkpoint now", w.engine.snapshot, "Ctrl+K")
    w.act_resume_last = add_action(w, r, "Resume the last run", w.resume_last, "Ctrl+Shift+R")
    v = mb.addMenu("&View")
    for k, spec in enumerate(w.specs):
        add_action(w, v, spec.title, lambda _=False, key=spec.key: w.show_view(key), f"Ctrl+{k + 1}" if k < 9 else None)
    _view_entries(w, v, "View", entries)
    h = mb.addMenu("&Help")
    w.act_demo = add_action(w, h, "Run the demo (shapes, SimCLR, embedding map)", w.start_demo, None,
                            "Load the built-in shapes, start the default two-minute run and watch its map")
    h.addSeparator()
    add_action(w, h, "About SSL Workbench", lambda: about(w))
    add_action(w, h, "Keyboard shortcuts", lambda: shortcuts(w), "F1")
    _view_entries(w, h, "Help", entries)


def about(w: MainWindow) -> None:
    QMessageBox.about(w, "SSL Workbench",
                      "<b>SSL Workbench</b><p>Preview pretext tasks, train self-supervised methods, watch "
                      "them learn and inspect what the encoder learned.</p>"
                      f"<p>{w.st_device.text()}</p>")


def shortcuts(w: MainWindow) -> None:
    lines = []
    for menu in w.menuBar().actions():
        for a in menu.menu().actions():
            if a.shortcut().toString():
                lines.append(f"<tr><td>{a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)}</td>"
                             f"<td>{a.text()}</td></tr>")
    QMessageBox.information(w, "Keyboard shortcuts", "<table>" + "".join(lines) + "</table>")
