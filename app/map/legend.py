"""The embedding map's legend: classes or clusters with their counts (click one to highlight it), or a
colour gradient for a per-point property."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QLinearGradient, QPainter, QPixmap
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QSizePolicy, QVBoxLayout, QWidget

from app.common.charts import class_color
from app.map.model import GRADIENT_LEVELS, Coloring

GRADIENT = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
            "#b5de2b", "#fde725"]
WIDTH = 170


def gradient_palette(levels: int = GRADIENT_LEVELS) -> list[QColor]:
    stops = [QColor(c) for c in GRADIENT]
    out = []
    for i in range(levels):
        t = i / (levels - 1) * (len(stops) - 1)
        j = min(int(t), len(stops) - 2)
        f = t - j
        a, b = stops[j], stops[j + 1]
        out.append(QColor.fromRgbF(a.redF() + (b.redF() - a.redF()) * f, a.greenF() + (b.greenF() - a.greenF()) * f,
                                   a.blueF() + (b.blueF() - a.blueF()) * f))
    return out


def palette_for(c: Coloring) -> list[QColor]:
    """The colours of a colouring, index by index."""
    if c.kind == "class":
        return [class_color(i) for i in range(c.n_colors - 1)] + [class_color(-1)]
    if c.kind == "cluster":
        return [class_color(i) for i in range(c.n_colors)]
    if c.kind == "gradient":
        return gradient_palette(c.n_colors)
    return [QColor("#4e79a7")]


class GradientLegend(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.lo = self.hi = 0.0
        self.name = ""
        self.setMinimumHeight(46)

    def set_range(self, name: str, lo: float, hi: float) -> None:
        self.name, self.lo, self.hi = name, lo, hi
        self.update()

    def paintEvent(self, ev):  # noqa: N802
        p = QPainter(self)
        fm = self.fontMetrics()
        p.setPen(self.palette().color(self.palette().ColorRole.Text))
        p.drawText(4, fm.ascent() + 2, self.name)
        g = QLinearGradient(4, 0, self.width() - 4, 0)
        for i, c in enumerate(GRADIENT):
            g.setColorAt(i / (len(GRADIENT) - 1), QColor(c))
        y = fm.height() + 4
        p.fillRect(4, y, self.width() - 8, 12, g)
        p.drawText(4, y + 14 + fm.ascent(), f"{self.lo:.3g}")
        hi = f"{self.hi:.3g}"
        p.drawText(self.width() - 4 - fm.horizontalAdvance(hi), y + 14 + fm.ascent(), hi)
        p.end()


class MapLegend(QWidget):
    entryClicked = Signal(int)  # a class or cluster

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel("")
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        f = self.title.font()
        f.setBold(True)
        self.title.setFont(f)
        self.title.setFixedWidth(WIDTH)
        self.title.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        lay.addWidget(self.title)
        self.list = QListWidget()
        self.list.setIconSize(QSize(12, 12))
        self.list.setFixedWidth(WIDTH)
        self.list.setToolTip("Click a class to highlight it; click again to show all")
        self.list.itemClicked.connect(lambda item: self.entryClicked.emit(item.data(Qt.ItemDataRole.UserRole)))
        lay.addWidget(self.list, 1)
        self.gradient_box = QWidget()
        gl = QVBoxLayout(self.gradient_box)
        gl.setContentsMargins(0, 0, 0, 0)
        self.gradient = GradientLegend()
        self.gradient.setFixedWidth(WIDTH)
        gl.addWidget(self.gradient)
        gl.addStretch(1)
        self.gradient_box.hide()
        lay.addWidget(self.gradient_box, 1)
        self._key = None

    def clear(self) -> None:
        self.list.clear()
        self._key = None

    def show_coloring(self, c: Coloring, palette: list[QColor], isolated: int | None) -> None:
        if c.kind == "gradient":
            self.clear()
            self.list.hide()
            self.title.hide()
            self.gradient_box.show()
            self.gradient.set_range(c.title, c.lo, c.hi)
            return
        self.gradient_box.hide()
        self.list.show()
        self.title.show()
        if self.title.text() != c.title:
            self.title.setText(c.title)
        if c.kind != "pending":
            self._fill(c.names, palette, c.counts, isolated)

    def _fill(self, names, palette, counts, isolated) -> None:
        key = (tuple(names), tuple(c.rgba() for c in palette[:len(names)]), tuple(int(c) for c in counts), isolated)
        if key == self._key and self.list.count() == len(names):
            return  # a label change costs a layout pass
        self._key = key
        self.list.clear()
        for i, name in enumerate(names):
            pm = QPixmap(12, 12)
            pm.fill(palette[i])
            item = QListWidgetItem(QIcon(pm), f"{name}  ({int(counts[i]) if i < len(counts) else 0})")
            item.setData(Qt.ItemDataRole.UserRole, i)
            if isolated is not None and isolated != i:
                item.setForeground(QColor("#999999"))
            self.list.addItem(item)
