"""The window's menus: File, Run, View and Help, with the entries each view adds (``View.menu_entries``).

``Menus`` builds them on a QMainWindow from narrow inputs: the window's own actions (``WindowActions``:
what its entries call), the view list (the View menu, ``Ctrl+N`` for the N-th view) and the views'
entries. It keeps the actions whose state follows the engine (``set_run_state``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QMessageBox

from app.common.view import MenuEntry, ViewSpec

MENUS = ("File", "Run", "View", "Help")


@dataclass(frozen=True)
class WindowActions:
    """What the window's own menu entries call."""

    open_run: Callable[[], Any]  # File > Open run folder…
    open_encoder: Callable[[], Any]  # File > Open encoder…
    quit: Callable[[], Any]
    toggle_pause: Callable[[], Any]
    stop: Callable[[], Any]
    snapshot: Callable[[], Any]
    resume_last: Callable[[], Any]
    demo: Callable[[], Any]
    show_view: Callable[[str], None]
    device_text: Callable[[], str]  # a line for the About box


def add_action(parent, menu: QMenu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
    a = QAction(text, parent)
    if shortcut:
        a.setShortcut(QKeySequence(shortcut))
    if tip:
        a.setStatusTip(tip)
    a.triggered.connect(slot)
    menu.addAction(a)
    return a


def check_entries(entries: Mapping[str, Sequence[MenuEntry]]) -> None:
    for key, items in entries.items():
        for e in items:
            if e.menu not in MENUS:
                raise ValueError(f"the {key!r} view adds {e.text!r} to a menu {e.menu!r}; the window's "
                                 f"menus are {', '.join(MENUS)}")


class Menus:
    def __init__(self, window: QMainWindow, actions: WindowActions, specs: Sequence[ViewSpec],
                 entries: Mapping[str, Sequence[MenuEntry]]):
        check_entries(entries)
        self.window, self.actions, self.entries = window, actions, entries
        w, act = window, actions
        mb = window.menuBar()
        f = mb.addMenu("&File")
        add_action(w, f, "Open run folder…", act.open_run, "Ctrl+Shift+O", "Show a run folder's curves")
        add_action(w, f, "Open encoder…", act.open_encoder, "Ctrl+Shift+I",
                   "Inspect any encoder: a weights file with its architecture, or a torchvision / timm model")
        self._view_entries(f, "File")
        f.addSeparator()
        add_action(w, f, "Quit", act.quit, QKeySequence.StandardKey.Quit)
        r = mb.addMenu("&Run")
        self._view_entries(r, "Run")
        self.pause = add_action(w, r, "Pause / resume", act.toggle_pause, "Ctrl+P")
        self.stop = add_action(w, r, "Stop", act.stop, "Ctrl+.", "Stop with a checkpoint")
        self.snapshot = add_action(w, r, "Save a checkpoint now", act.snapshot, "Ctrl+K")
        self.resume_last = add_action(w, r, "Resume the last run", act.resume_last, "Ctrl+Shift+R")
        v = mb.addMenu("&View")
        for k, spec in enumerate(specs):
            add_action(w, v, spec.title, lambda _=False, key=spec.key: act.show_view(key),
                       f"Ctrl+{k + 1}" if k < 9 else None)
        self._view_entries(v, "View")
        h = mb.addMenu("&Help")
        self.demo = add_action(w, h, "Run the demo (shapes, SimCLR, embedding map)", act.demo, None,
                               "Load the built-in shapes, start the default two-minute run and watch its map")
        h.addSeparator()
        add_action(w, h, "About SSL Workbench", self.about)
        add_action(w, h, "Keyboard shortcuts", self.shortcuts, "F1")
        self._view_entries(h, "Help")

    def _view_entries(self, menu: QMenu, name: str) -> None:
        """The entries views add to menu ``name``, a group per view."""
        for items in self.entries.values():
            group = [e for e in items if e.menu == name]
            if group and not menu.isEmpty():
                menu.addSeparator()
            for e in group:
                add_action(self.window, menu, e.text, e.slot, e.shortcut, e.tip)

    def set_run_state(self, state: str, active: bool) -> None:
        """The engine's state: Pause while a run trains, Stop while one is active."""
        self.pause.setEnabled(state in ("running", "paused"))
        self.stop.setEnabled(active)

    def about(self) -> None:
        QMessageBox.about(self.window, "SSL Workbench",
                          "<b>SSL Workbench</b><p>Preview pretext tasks, train self-supervised methods, watch "
                          "them learn and inspect what the encoder learned.</p>"
                          f"<p>{self.actions.device_text()}</p>")

    def shortcuts(self) -> None:
        lines = []
        for menu in self.window.menuBar().actions():
            for a in menu.menu().actions():
                if a.shortcut().toString():
                    lines.append(f"<tr><td>{a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)}</td>"
                                 f"<td>{a.text()}</td></tr>")
        QMessageBox.information(self.window, "Keyboard shortcuts", "<table>" + "".join(lines) + "</table>")
