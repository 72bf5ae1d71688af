"""Small painted views shared by the embedding map and the inspector: a thumbnail grid, a bar chart
and a confusion-matrix heatmap. numpy + Qt only; everything is drawn with QPainter (crisp, fast,
readable at any size)."""

from __future__ import annotations

import sys

import numpy as np
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QScrollArea, QSizePolicy, QWidget

from app.common.images import qpixmap


def protect_singletons() -> None:
    """Work around PySide6 6.12 on Python 3.11: its void methods return None without a new reference,
    so every call drops one of None's references until ``none_dealloc`` aborts the process (an animation
    or a long session makes thousands of calls). Python 3.12+ makes None immortal; here we make None,
    True and False practically immortal once per process (see /work/shared/NOTE-pyside-none-refcount.md)."""
    if sys.version_info >= (3, 12) or getattr(sys, "_sslwb_singletons_protected", False):
        return
    import ctypes

    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40
    sys._sslwb_singletons_protected = True


protect_singletons()

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac", "#1f77b4", "#aec7e8", "#ff7f0e", "#98df8a", "#d62728", "#c5b0d5",
           "#8c564b", "#e377c2", "#7f7f7f", "#17becf"]
SERIES = ["#4e79a7", "#bab0ac", "#59a14f", "#f28e2b", "#e15759", "#b07aa1", "#76b7b2", "#edc948"]


def class_color(i: int) -> QColor:
    if i < 0:
        return QColor("#9a9a9a")
    if i < len(PALETTE):
        return QColor(PALETTE[i])
    return QColor.fromHsvF(((i * 0.618033988749895) % 1.0), 0.65, 0.9)


class _GridCanvas(QWidget):
    clicked = Signal(int)

    def __init__(self, owner: ThumbGrid):
        super().__init__()
        self.owner = owner
        self.setMouseTracking(True)

    def paintEvent(self, ev):  # noqa: N802
        self.owner.paint_canvas(self, ev.rect())

    def mousePressEvent(self, ev):  # noqa: N802
        i = self.owner.item_at(ev.position().toPoint())
        if i >= 0:
            self.clicked.emit(i)

    def mouseMoveEvent(self, ev):  # noqa: N802
        i = self.owner.item_at(ev.position().toPoint())
        self.setToolTip(self.owner.tooltips[i] if 0 <= i < len(self.owner.tooltips) else "")


class ThumbGrid(QScrollArea):
    """A scrolling grid of images with one or two caption lines each; ``clicked(index)``."""

    clicked = Signal(int)

    def __init__(self, tile: int = 72, captions: int = 1, parent=None, empty_text: str = "", columns: int = 0,
                 group: int = 1):
        super().__init__(parent)
        self.fixed_columns = columns
        self.group = max(1, group)  # columns come in multiples of this (image triplets stay on one row)
        self.tile = tile
        self.caption_lines = captions
        self.empty_text = empty_text
        self.images: list[QPixmap] = []
        self.captions: list[str] = []
        self.tooltips: list[str] = []
        self.colors: list[QColor | None] = []
        self.canvas = _GridCanvas(self)
        self.canvas.clicked.connect(self.clicked)
        self.setWidget(self.canvas)
        self.setWidgetResizable(False)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumHeight(tile + 30)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_items(self, images, captions=None, tooltips=None, colors=None, smooth: bool = False) -> None:
        n = len(images)
        self.images = [qpixmap(im, self.tile, smooth=smooth or im.shape[0] > self.tile) for im in images]
        self.captions = list(captions) if captions is not None else [""] * n
        self.tooltips = list(tooltips) if tooltips is not None else list(self.captions)
        self.colors = list(colors) if colors is not None else [None] * n
        self._relayout()
        self.canvas.update()

    def clear(self) -> None:
        self.set_items([])

    def count(self) -> int:
        return len(self.images)

    def _cell(self) -> QSize:
        fm = self.fontMetrics()
        return QSize(self.tile + 8, self.tile + 6 + self.caption_lines * (fm.height() + 1))

    def _columns(self) -> int:
        if self.fixed_columns:
            return self.fixed_columns
        n = max(1, (self.viewport().width() - 4) // self._cell().width())
        return max(self.group, n // self.group * self.group)

    def _relayout(self) -> None:
        cell = self._cell()
        rows = (len(self.images) + self._columns() - 1) // self._columns()
        w = max(self.viewport().width(), self._columns() * cell.width() + 4 if self.fixed_columns or
                self.group > 1 else 0)
        self.canvas.resize(w, max(self.viewport().height(), rows * cell.height() + 4))

    def resizeEvent(self, ev):  # noqa: N802
        super().resizeEvent(ev)
        self._relayout()

    def item_at(self, p: QPoint) -> int:
        cell = self._cell()
        c, r = p.x() // cell.width(), p.y() // cell.height()
        if c >= self._columns():
            return -1
        i = r * self._columns() + c
        return i if 0 <= i < len(self.images) else -1

    def paint_canvas(self, w: QWidget, rect: QRect) -> None:
        """Paint the tiles in ``rect`` of the canvas ``w`` (the scroll area's inner widget calls it)."""
        p = QPainter(w)
        pal = self.palette()
        p.fillRect(rect, pal.base())
        if not self.images:
            if self.empty_text:
                p.setPen(pal.color(pal.ColorRole.PlaceholderText))
                p.drawText(w.rect().adjusted(8, 8, -8, -8), Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap,
                           self.empty_text)
            p.end()
            return
        cell = self._cell()
        cols = self._columns()
        fm = self.fontMetrics()
        first_row = max(0, rect.top() // cell.height())
        last_row = rect.bottom() // cell.height() + 1
        for i in range(first_row * cols, min(len(self.images), (last_row + 1) * cols)):
            r, c = divmod(i, cols)
            x0, y0 = c * cell.width() + 4, r * cell.height() + 4
            pm = self.images[i]
            ox = x0 + (self.tile - pm.width()) // 2
            oy = y0 + (self.tile - pm.height()) // 2
            p.drawPixmap(ox, oy, pm)
            color = self.colors[i] if i < len(self.colors) else None
            if color is not None:
                p.setPen(QPen(color, 3))
                p.drawRect(ox - 1, oy - 1, pm.width() + 1, pm.height() + 1)
            p.setPen(pal.color(pal.ColorRole.Text))
            lines = (self.captions[i] if i < len(self.captions) else "").split("\n")[:self.caption_lines]
            for j, line in enumerate(lines):
                text = fm.elidedText(line, Qt.TextElideMode.ElideRight, cell.width() - 4)
                p.drawText(QRect(x0 - 2, y0 + self.tile + 2 + j * (fm.height() + 1), cell.width() - 4, fm.height()),
                           Qt.AlignmentFlag.AlignHCenter, text)
        p.end()


class BarChart(QWidget):
    """Horizontal bars, one row per label, one bar per series; values in [0, vmax]."""

    def __init__(self, parent=None, title: str = "", percent: bool = True):
        super().__init__(parent)
        self.title = title
        self.percent = percent
        self.labels: list[str] = []
        self.series: list[tuple[str, list[float], QColor]] = []
        self.vmax = 1.0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def set_data(self, labels, series, vmax: float | None = None, title: str | None = None) -> None:
        self.labels = [str(s) for s in labels]
        self.series = [(name, [float(v) if v is not None else float("nan") for v in vals],
                        QColor(color) if color is not None else QColor(SERIES[k % len(SERIES)]))
                       for k, (name, vals, color) in enumerate(series)]
        vals = [v for _, vs, _ in self.series for v in vs if np.isfinite(v)]
        self.vmax = vmax if vmax is not None else (max(vals) if vals else 1.0) or 1.0
        if title is not None:
            self.title = title
        self.updateGeometry()
        self.update()

    def _row_h(self) -> int:
        fm = self.fontMetrics()
        per = fm.height() - 2 if len(self.series) <= 3 else 7
        return max(fm.height() + 4, per * len(self.series) + 6)

    def sizeHint(self) -> QSize:  # noqa: N802
        fm = self.fontMetrics()
        head = (fm.height() + 6) * (2 if self.series else 1)
        return QSize(360, head + len(self.labels) * self._row_h() + 8)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(200, min(self.sizeHint().height(), 160))

    def paintEvent(self, ev):  # noqa: N802
        p = QPainter(self)
        pal = self.palette()
        p.fillRect(self.rect(), pal.base())
        fm = self.fontMetrics()
        y = 4
        p.setPen(pal.color(pal.ColorRole.Text))
        if self.title:
            f = QFont(self.font())
            f.setBold(True)
            p.setFont(f)
            p.drawText(6, y + fm.ascent(), self.title)
            p.setFont(self.font())
            y += fm.height() + 4
        if not self.labels:
            p.end()
            return
        # legend
        x = 6
        if len(self.series) > 1:
            for name, _, color in self.series:
                p.fillRect(x, y + 3, 10, 10, color)
                p.drawText(x + 14, y + fm.ascent(), name)
                x += 14 + fm.horizontalAdvance(name) + 14
            y += fm.height() + 4
        label_w = min(max(fm.horizontalAdvance(s) for s in self.labels) + 10, self.width() // 3)
        value_w = fm.horizontalAdvance("100.0%" if self.percent else f"{self.vmax:,.0f}") + 8
        bar_x = label_w + 4
        bar_w = max(20, self.width() - bar_x - value_w - 6)
        rh = self._row_h()
        nser = max(1, len(self.series))
        bh = max(3, (rh - 4) // nser)
        grid = QColor(pal.color(pal.ColorRole.Mid))
        grid.setAlpha(90)
        for i, lab in enumerate(self.labels):
            ry = y + i * rh
            p.setPen(pal.color(pal.ColorRole.Text))
            p.drawText(QRect(2, ry, label_w, rh), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       fm.elidedText(lab, Qt.TextElideMode.ElideRight, label_w - 4))
            p.fillRect(bar_x, ry + rh - 1, bar_w, 1, grid)
            for k, (_, vals, color) in enumerate(self.series):
                v = vals[i] if i < len(vals) else float("nan")
                if not np.isfinite(v):
                    continue
                w = int(round(bar_w * max(0.0, min(1.0, v / self.vmax))))
                p.fillRect(bar_x, ry + 2 + k * bh, max(1, w), bh - 1, color)
                if nser == 1 or bh >= fm.height() - 3:
                    txt = f"{v:.1%}" if self.percent else f"{v:,.0f}"
                    p.setPen(pal.color(pal.ColorRole.Text))
                    p.drawText(QRect(bar_x + w + 4, ry + 2 + k * bh - 4, value_w + 40, bh + 8),
                               Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, txt)
        p.end()


class Heatmap(QWidget):
    """A confusion matrix: rows = true class, columns = predicted; cells coloured by row share."""

    def __init__(self, parent=None, title: str = ""):
        super().__init__(parent)
        self.title = title
        self.matrix = np.zeros((0, 0), np.int64)
        self.row_labels: list[str] = []
        self.col_labels: list[str] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 180)

    def set_data(self, matrix, row_labels, col_labels=None, title: str | None = None) -> None:
        self.matrix = np.asarray(matrix)
        self.row_labels = [str(s) for s in row_labels]
        self.col_labels = [str(s) for s in (col_labels if col_labels is not None else row_labels)]
        if title is not None:
            self.title = title
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802
        n = max(1, len(self.row_labels))
        return QSize(140 + 34 * n, 90 + 26 * n)

    def paintEvent(self, ev):  # noqa: N802
        p = QPainter(self)
        pal = self.palette()
        p.fillRect(self.rect(), pal.base())
        fm = self.fontMetrics()
        p.setPen(pal.color(pal.ColorRole.Text))
        y0 = 4
        if self.title:
            f = QFont(self.font())
            f.setBold(True)
            p.setFont(f)
            p.drawText(6, y0 + fm.ascent(), self.title)
            p.setFont(self.font())
            y0 += fm.height() + 4
        m = self.matrix
        if m.size == 0:
            p.end()
            return
        n_r, n_c = m.shape
        label_w = min(max(fm.horizontalAdvance(s) for s in self.row_labels) + 10, self.width() // 3)
        head_h = fm.height() + 6
        avail_w = self.width() - label_w - 10
        avail_h = self.height() - y0 - head_h - fm.height() - 10
        cell = max(8, min(avail_w // max(1, n_c), avail_h // max(1, n_r), 56))
        x0 = label_w + 4
        gy = y0 + head_h
        # column header: predicted labels (shortened to fit)
        for j, lab in enumerate(self.col_labels):
            r = QRect(x0 + j * cell, y0, cell, head_h)
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, fm.elidedText(lab, Qt.TextElideMode.ElideRight, cell - 2))
        rows = m.sum(1, keepdims=True).astype(np.float64)
        share = np.divide(m, np.maximum(rows, 1))
        small = QFont(self.font())
        small.setPointSizeF(max(6.0, self.font().pointSizeF() * (0.85 if cell < 30 else 1.0)))
        for i in range(n_r):
            p.setPen(pal.color(pal.ColorRole.Text))
            p.drawText(QRect(2, gy + i * cell, label_w, cell), Qt.AlignmentFlag.AlignRight |
                       Qt.AlignmentFlag.AlignVCenter,
                       fm.elidedText(self.row_labels[i], Qt.TextElideMode.ElideRight, label_w - 4))
            for j in range(n_c):
                s = float(share[i, j])
                if i == j:
                    c = QColor.fromRgbF(1 - 0.65 * s, 1 - 0.35 * s, 1 - 0.7 * s)
                else:
                    c = QColor.fromRgbF(1 - 0.1 * s, 1 - 0.7 * s, 1 - 0.7 * s)
                r = QRect(x0 + j * cell, gy + i * cell, cell - 1, cell - 1)
                p.fillRect(r, c)
                if cell >= 18 and m[i, j]:
                    p.setFont(small)
                    p.setPen(QColor("#000") if s < 0.6 else QColor("#fff"))
                    p.drawText(r, Qt.AlignmentFlag.AlignCenter, str(int(m[i, j])))
                    p.setFont(self.font())
        p.setPen(pal.color(pal.ColorRole.Text))
        p.drawText(QRect(x0, gy + n_r * cell + 2, n_c * cell, fm.height() + 4), Qt.AlignmentFlag.AlignCenter,
                   "predicted →   (rows: true class)")
        p.end()
