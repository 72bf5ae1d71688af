"""A virtualised thumbnail grid over a memory-mapped ``(N, H, W, 3)`` uint8 array.

Model/view: the model answers only for the rows on screen and converts an image to a QImage
when asked (an LRU cache keeps the recent ones), so 50k images scroll as smoothly as 50. A class
filter is a numpy index array, not a proxy model.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate

from app.common.images import to_qimage
from app.models.dataset import ViewDataset

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#17becf")

IndexRole = Qt.ItemDataRole.UserRole + 1
LabelRole = Qt.ItemDataRole.UserRole + 2


def class_color(k: int) -> QColor:
    return QColor(PALETTE[k % len(PALETTE)])


class ThumbnailModel(QAbstractListModel):
    def __init__(self, parent=None, cache_size: int = 4000):
        super().__init__(parent)
        self.dataset: ViewDataset | None = None
        self.rows = np.zeros(0, dtype=np.int64)  # row -> dataset index
        self._cache: OrderedDict[int, QImage] = OrderedDict()
        self._cache_size = cache_size

    def set_dataset(self, ds: ViewDataset | None) -> None:
        self.beginResetModel()
        self.dataset = ds
        self.rows = np.arange(len(ds), dtype=np.int64) if ds is not None else np.zeros(0, dtype=np.int64)
        self._cache.clear()
        self.endResetModel()

    def set_filter(self, indices: np.ndarray | None) -> None:
        if self.dataset is None:
            return
        self.beginResetModel()
        self.rows = np.arange(len(self.dataset), dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else int(len(self.rows))

    def image(self, i: int) -> QImage:
        img = self._cache.get(i)
        if img is None:
            img = to_qimage(self.dataset.images[i])
            self._cache[i] = img
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(i)
        return img

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.dataset is None or index.row() >= len(self.rows):
            return None
        i = int(self.rows[index.row()])
        if role == IndexRole:
            return i
        if role == Qt.ItemDataRole.DecorationRole:
            return self.image(i)
        if role == LabelRole:
            return int(self.dataset.labels[i]) if self.dataset.labels is not None else -1
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.dataset.describe(i)
        if role == Qt.ItemDataRole.DisplayRole:
            return self.dataset.label_name(i) or f"#{i}"
        return None

    def row_of(self, dataset_index: int) -> int | None:
        hits = np.flatnonzero(self.rows == dataset_index)
        return int(hits[0]) if len(hits) else None


class ThumbnailDelegate(QStyledItemDelegate):
    """Draws the image scaled into its cell, a class-coloured bar and the selection frame."""

    def __init__(self, parent=None, size: int = 64):
        super().__init__(parent)
        self.size = size
        self.show_labels = True

    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        return QSize(self.size + 6, self.size + 6)

    def paint(self, painter: QPainter, option, index) -> None:
        img = index.data(Qt.ItemDataRole.DecorationRole)
        r: QRect = option.rect.adjusted(3, 3, -3, -3)
        if img is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, img.width() > self.size)
            painter.drawImage(r, img)
        label = index.data(LabelRole)
        if self.show_labels and label is not None and label >= 0:
            painter.fillRect(QRect(r.left(), r.bottom() - 3, r.width(), 4), class_color(label))
        if option.state & QStyle.StateFlag.State_Selected:
            painter.setPen(QPen(option.palette.highlight().color(), 3))
            painter.drawRect(option.rect.adjusted(1, 1, -2, -2))
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.setPen(QPen(option.palette.highlight().color(), 1))
            painter.drawRect(option.rect.adjusted(1, 1, -2, -2))


class ThumbnailView(QListView):
    """The grid. ``chosen(int)`` gives the dataset index of a clicked image."""

    chosen = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model_ = ThumbnailModel(self)
        self.delegate = ThumbnailDelegate(self)
        self.setModel(self.model_)
        self.setItemDelegate(self.delegate)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(2000)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setMouseTracking(True)
        self.setSpacing(0)
        self.set_thumb_size(64)
        self.clicked.connect(self._on_click)
        self.selectionModel().currentChanged.connect(lambda cur, _prev: self._on_click(cur))

    def set_thumb_size(self, px: int) -> None:
        self.delegate.size = int(px)
        self.setGridSize(QSize(px + 6, px + 6))
        self.verticalScrollBar().setSingleStep(max(8, px // 2))
        self.scheduleDelayedItemsLayout()

    def _on_click(self, index: QModelIndex) -> None:
        if index.isValid():
            self.chosen.emit(int(index.data(IndexRole)))

    def select_dataset_index(self, i: int) -> None:
        row = self.model_.row_of(i)
        if row is not None:
            idx = self.model_.index(row)
            self.setCurrentIndex(idx)
            self.scrollTo(idx)
