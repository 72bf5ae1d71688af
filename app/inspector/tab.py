"""The base of every Inspector tab and the table helpers the tabs share.

A tab is a QWidget that gets the Inspector's model (``InspectorModel``: the analysis client and the run
shown) and asks the analysis process with :meth:`InspectorTab.request`; it never reaches into the panel.
To add a tab: derive from ``InspectorTab``, build the widgets under ``self.lay`` (``self.status`` is the
status line), and add one line to the panel's ``TABS`` (app/inspector/panel.py)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.inspector.model import InspectorModel


def pct(v) -> str:
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{100 * float(v):.1f}%"


def table_item(text: str, align_right: bool = False, tip: str = "") -> QTableWidgetItem:
    it = QTableWidgetItem(text)
    it.setFlags(it.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if align_right:
        it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    if tip:
        it.setToolTip(tip)
    return it


def make_table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().hide()
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    h = t.horizontalHeader()
    h.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    for i in range(1, len(headers)):
        h.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
    t.setAlternatingRowColors(True)
    return t


def fit_table(t: QTableWidget, max_rows: int = 8) -> None:
    rows = min(max(1, t.rowCount()), max_rows)
    h = t.horizontalHeader().height() + rows * t.verticalHeader().defaultSectionSize() + 2 * t.frameWidth() + 2
    t.setFixedHeight(h)


class InspectorTab(QWidget):
    def __init__(self, target: InspectorModel):
        super().__init__()
        self.target = target
        self.lay = QVBoxLayout(self)
        self.lay.setContentsMargins(6, 6, 6, 6)
        self.lay.setSpacing(6)
        self.request_id = None
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def set_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #b00020;" if error else "color: palette(text);")
        self.status.setText(text)

    def request(self, op: str, on_result, **args):
        """Ask the analysis process; ``on_result(data, final)`` gets each partial stage (final False) and
        the result (final True). A newer request of this tab replaces the older one."""
        client = self.target.client
        if client is None or not self.target.run_dir and op != "compare":
            self.set_status("Open a run first", error=True)
            return None

        def done(data):
            self.request_id = None
            on_result(data, True)

        self.request_id = client.request(
            op, args, kind=f"inspector-{id(self)}", on_partial=lambda d: on_result(d, False), on_done=done,
            on_progress=lambda p: self.set_status(f"{p.detail or 'working'}… ({p.done}/{p.total})"),
            on_error=lambda e: self._ended(e["message"] or "failed", error=True),
            on_cancelled=lambda: self._ended("Cancelled"))
        self.set_status("Working…")
        return self.request_id

    def _ended(self, text: str, error: bool = False) -> None:
        self.request_id = None
        self.set_status(text, error=error)
