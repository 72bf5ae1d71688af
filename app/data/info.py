"""What the Data panel says about a loaded dataset: the Dataset box (summary, classes with their
colours and counts, notes) and the Skipped files box."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from app.data.model import dataset_summary
from app.data.thumbnails import class_color
from app.models.dataset import ViewDataset

MAX_SKIPPED_ROWS = 5000


class DatasetBox(QGroupBox):
    """The summary, the class table (selecting classes filters the grid) and the loader's notes."""

    def __init__(self, parent=None):
        super().__init__("Dataset", parent)
        self.summary = QLabel("No dataset loaded.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.classes = QTableWidget(0, 2)
        self.classes.setHorizontalHeaderLabels(["Class", "Images"])
        self.classes.verticalHeader().setVisible(False)
        self.classes.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.classes.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.classes.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.classes.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.classes.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        self.classes.setToolTip("Click a class to show only its images; click it again to show all")
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.notes.setObjectName("notes")
        vi = QVBoxLayout(self)
        vi.addWidget(self.summary)
        vi.addWidget(self.classes, 1)
        vi.addWidget(self.notes)

    def set_dataset(self, ds: ViewDataset) -> None:
        self.summary.setText(dataset_summary(ds))
        self.classes.blockSignals(True)
        self.classes.setRowCount(0)
        for k, (name, n) in enumerate(ds.class_counts()):
            self.classes.insertRow(k)
            sw = QPixmap(12, 12)
            sw.fill(class_color(k))
            item = QTableWidgetItem(name)
            item.setIcon(sw)
            self.classes.setItem(k, 0, item)
            cnt = QTableWidgetItem(f"{n:,}")
            cnt.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.classes.setItem(k, 1, cnt)
        self.classes.blockSignals(False)
        self.classes.setVisible(bool(ds.class_counts()))
        self.notes.setText("\n".join(f"• {n}" for n in ds.notes))
        self.notes.setVisible(bool(ds.notes))

    def selected_classes(self) -> list[int]:
        return sorted({i.row() for i in self.classes.selectedIndexes()})


class SkippedBox(QGroupBox):
    """The files the loader skipped and why (hidden when there are none)."""

    def __init__(self, parent=None):
        super().__init__("Skipped files", parent)
        self.skipped = QTableWidget(0, 2)
        self.skipped.setHorizontalHeaderLabels(["Skipped file", "Why"])
        self.skipped.verticalHeader().setVisible(False)
        self.skipped.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.skipped.horizontalHeader().setStretchLastSection(True)
        self.skipped.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        QVBoxLayout(self).addWidget(self.skipped)
        self.setVisible(False)

    def set_dataset(self, ds: ViewDataset) -> None:
        self.skipped.setRowCount(0)
        for r, (path, why) in enumerate(ds.skipped[:MAX_SKIPPED_ROWS]):
            self.skipped.insertRow(r)
            item = QTableWidgetItem(Path(path).name)
            item.setToolTip(path)
            self.skipped.setItem(r, 0, item)
            why_item = QTableWidgetItem(why)
            why_item.setToolTip(why)
            why_item.setForeground(QColor("#c0392b"))
            self.skipped.setItem(r, 1, why_item)
        self.setTitle(f"Skipped files ({len(ds.skipped)})")
        self.setVisible(bool(ds.skipped))
        if ds.skipped:
            self.skipped.setColumnWidth(0, 160)
