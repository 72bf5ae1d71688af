"""The embedding map view: one pyqtgraph ScatterPlotItem with a precomputed brush array, hover with
a thumbnail card, click, rectangle/lasso selection and animated transitions between layouts.

Performance notes (smooth at 10,000 points):
- one ScatterPlotItem for all points; brushes are shared QBrush objects per colour, so pyqtgraph's
  symbol atlas holds one sprite per colour and draws with ``drawPixmapFragments``;
- layout changes and animation frames write the positions into the item's record array in
  place (no ``setData``, which rebuilds every spot);
- hover uses a uniform grid over the layout (app/map/geometry.py): a query looks at the few cells within
  12 px of the cursor, and signals/updates happen only when the hovered point changes;
- zoomed out over more than ``DENSITY_AT`` points (app/map/density.py), the map draws their density (per class
  colour) as one image, computed when the view or the points change (never in a paint), and switches back to
  points as the user zooms in; hover, clicks and the lasso work on the points' exact positions either way.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QElapsedTimer, QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

from app.common.images import qpixmap
from app.map.density import CELL_PX, DENSITY_AT, density_image, visible_count
from app.map.geometry import GridIndex, rows_in_selection
from app.map.movie import glide

HEADLINE_PT, HEADLINE_MIN_PT = 20, 11  # the map's headline: its size, and the smallest it shrinks to to fit

HOVER_PX = 12
DWELL_MS = 120


class SelectViewBox(pg.ViewBox):
    """A ViewBox whose left drag pans, or draws a selection rectangle or lasso (``mode``)."""

    sigSelection = Signal(object)  # polygon (M, 2) in data coordinates

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.mode = "pan"
        self._poly: list[tuple[float, float]] = []
        self.outline = pg.PlotCurveItem(pen=pg.mkPen("#202020", width=1.5, style=Qt.PenStyle.DashLine))
        self.outline.setZValue(50)
        self.addItem(self.outline, ignoreBounds=True)
        self.outline.hide()

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802
        if self.mode == "pan" or ev.button() != Qt.MouseButton.LeftButton:
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        p = self.mapToView(ev.pos())
        if ev.isStart():
            s = self.mapToView(ev.buttonDownPos())
            self._poly = [(s.x(), s.y())]
            self.outline.show()
        if self.mode == "rect":
            x0, y0 = self._poly[0]
            poly = [(x0, y0), (p.x(), y0), (p.x(), p.y()), (x0, p.y())]
        else:
            self._poly.append((p.x(), p.y()))
            poly = self._poly
        closed = np.array(poly + [poly[0]], dtype=np.float64)
        self.outline.setData(closed[:, 0], closed[:, 1])
        if ev.isFinish():
            self.outline.hide()
            self.sigSelection.emit(np.array(poly, dtype=np.float64))
            self._poly = []


class HoverCard(QFrame):
    """The thumbnail card shown next to the hovered point."""

    def __init__(self, parent: QWidget):
        super().__init__(parent)
        self.setObjectName("hoverCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setStyleSheet("#hoverCard { background: palette(base); border: 1px solid palette(mid); "
                           "border-radius: 4px; }")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(3)
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text = QLabel()
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setMaximumWidth(200)
        self.text.setWordWrap(True)
        lay.addWidget(self.image)
        lay.addWidget(self.text)
        self.index = -1
        self.hide()
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)

    def show_point(self, index: int, thumb: np.ndarray | None, text: str, at: QPoint) -> None:
        self.index = index
        if thumb is not None:
            self.image.setPixmap(qpixmap(thumb, 112, smooth=thumb.shape[0] > 112))
            self.image.show()
        else:
            self.image.hide()
        self.text.setText(text)
        self.adjustSize()
        par = self.parentWidget()
        x, y = at.x() + 18, at.y() + 18
        if x + self.width() > par.width():
            x = at.x() - 18 - self.width()
        if y + self.height() > par.height():
            y = max(0, at.y() - 18 - self.height())
        self.move(max(0, x), max(0, y))
        self.show()
        self.raise_()


class MapBrushes:
    """The points' colours as shared QBrush objects, one per colour (and per colour dimmed), so pyqtgraph's
    symbol atlas holds one sprite per colour and draws with ``drawPixmapFragments``."""

    DEFAULT = "#4e79a7"  # before any colouring

    def __init__(self):
        self._cache: dict[tuple, object] = {}
        self.index = np.zeros(0, np.int64)  # point -> palette entry
        self.palette: list[QColor] = []
        self.dim: np.ndarray | None = None  # bool per point: greyed out

    def set(self, color_index: np.ndarray, palette: list[QColor], dim: np.ndarray | None) -> bool:
        """Take new colours; False when they are the ones held."""
        color_index = np.asarray(color_index, dtype=np.int64)
        dim = None if dim is None else np.asarray(dim, bool)
        same = (len(color_index) == len(self.index) and np.array_equal(color_index, self.index)
                and [c.rgba() for c in palette] == [c.rgba() for c in self.palette]
                and ((dim is None and self.dim is None) or
                     (dim is not None and self.dim is not None and np.array_equal(dim, self.dim))))
        self.index, self.palette, self.dim = color_index, list(palette), dim
        return not same

    def brush(self, color: QColor, dim: bool) -> object:
        key = (color.rgba(), dim)
        b = self._cache.get(key)
        if b is None:
            c = QColor(color)
            if dim:
                c = QColor.fromRgbF(0.85 + 0.15 * c.redF(), 0.85 + 0.15 * c.greenF(), 0.85 + 0.15 * c.blueF())
            b = self._cache[key] = pg.mkBrush(c)
        return b

    def for_points(self, n: int) -> np.ndarray:
        """A brush per point (the default colour while the colours are not for ``n`` points)."""
        if len(self.index) != n or not self.palette:
            return np.array([self.brush(QColor(self.DEFAULT), False)] * n, dtype=object)
        full = np.array([self.brush(c, False) for c in self.palette], dtype=object)
        out = full[self.index]
        if self.dim is not None and len(self.dim) == n:
            dim = np.array([self.brush(c, True) for c in self.palette], dtype=object)
            out = out.copy()
            out[self.dim] = dim[self.index[self.dim]]
        return out


class Rings:
    """Rings over points: around the neighbours (orange) and the clicked point (red)."""

    def __init__(self, plot: pg.PlotWidget):
        self.marks = pg.ScatterPlotItem(pxMode=True, size=13, pen=pg.mkPen("#ff8c00", width=2), brush=None)
        self.marks.setZValue(10)
        plot.addItem(self.marks)
        self.focus = pg.ScatterPlotItem(pxMode=True, size=16, pen=pg.mkPen("#d00000", width=2.5), brush=None)
        self.focus.setZValue(11)
        plot.addItem(self.focus)
        self.marked = np.zeros(0, np.int64)  # rows ringed orange
        self.focused = -1  # the row ringed red

    def draw(self, c: np.ndarray) -> None:
        """Draw the rings at the positions ``c`` of the points."""
        marked = self.marked[(self.marked >= 0) & (self.marked < len(c))]
        if len(marked):
            self.marks.setData(x=c[marked, 0], y=c[marked, 1])
        else:
            self.marks.clear()
        if 0 <= self.focused < len(c):
            self.focus.setData(x=[c[self.focused, 0]], y=[c[self.focused, 1]])
        else:
            self.focus.clear()

    def clear(self) -> None:
        self.marked, self.focused = np.zeros(0, np.int64), -1
        self.marks.clear()
        self.focus.clear()


class EmbeddingMap(QWidget):
    """The scatter plot of a 2-D layout. Feed it coordinates, colours and per-point metadata."""

    hoveredChanged = Signal(int)  # -1 when no point is hovered
    pointClicked = Signal(int)
    selectionChanged = Signal(object)  # np.ndarray of row indices
    animationFinished = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        pg.setConfigOptions(antialias=False)
        self.vb = SelectViewBox()
        self.plot = pg.PlotWidget(viewBox=self.vb, background="w")
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        for ax in ("left", "bottom"):
            self.plot.getPlotItem().hideAxis(ax)
        self.vb.setAspectLocked(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)
        self.scatter = pg.ScatterPlotItem(pxMode=True, size=6, pen=None, useCache=True, hoverable=False)
        self.plot.addItem(self.scatter)
        self.density = pg.ImageItem()  # the points' density, zoomed out over many points
        self.density.setZValue(-1)
        self.plot.addItem(self.density, ignoreBounds=True)
        self.density.hide()
        self.density_at = DENSITY_AT
        self._density_timer = QTimer(self, singleShot=True, interval=20)
        self._density_timer.timeout.connect(self.update_density)
        self.rings = Rings(self.plot)
        self.marks, self.focus = self.rings.marks, self.rings.focus
        self.hover_mark = pg.ScatterPlotItem(pxMode=True, size=14, pen=pg.mkPen("#111111", width=2), brush=None)
        self.hover_mark.setZValue(12)
        self.plot.addItem(self.hover_mark)
        self.empty_text = pg.TextItem("", color="#777777", anchor=(0.5, 0.5))
        self.plot.addItem(self.empty_text, ignoreBounds=True)
        self.card = HoverCard(self)
        self.headline = QLabel(self)  # the kNN, big enough to read on a projector
        self._headline_pt = 0.0
        self._style_headline(HEADLINE_PT)
        self.headline.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.headline.move(8, 6)
        self.headline.hide()
        self.headline_detail = QLabel(self)  # what the kNN is: the final evaluation, or the monitor at a step
        self.headline_detail.setStyleSheet("QLabel { font-size: 10pt; color: #444;"
                                           " background: rgba(255, 255, 255, 200); padding: 1px 8px; }")
        self.headline_detail.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.headline_detail.hide()

        self.coords = np.zeros((0, 2), np.float32)
        self.thumbs: np.ndarray | None = None
        self.captions: list[str] | None = None
        self.describe = None  # callable(row) -> rich text for the hover card
        self.index = GridIndex(self.coords)
        self.hovered = -1
        self._dwell = QTimer(self, singleShot=True, interval=DWELL_MS)
        self._dwell.timeout.connect(self._show_card)
        self._last_scene_pos = QPointF()
        self._anim = QTimer(self, interval=33)  # ~30 frames a second
        self._anim.timeout.connect(self._anim_step)
        self._anim_clock = QElapsedTimer()
        self._anim_from = self._anim_to = None
        self._anim_bounds = None  # (start, end) bounding boxes while the view follows an animation
        self._anim_ms = 500
        self.brushes = MapBrushes()
        self._colored_count = -1  # the points the brushes were set for
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.plot.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        self.vb.sigSelection.connect(self._on_selection)
        self.vb.sigRangeChanged.connect(lambda *a: self._hide_hover())
        self.vb.sigRangeChanged.connect(lambda *a: self._density_timer.start())
        self.vb.sigRangeChangedManually.connect(self._user_moved_view)
        self._auto_fit = True
        self.set_message("No map yet")

    # -- data -------------------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.coords)

    def set_headline(self, text: str, detail: str = "") -> None:
        """The big line (the kNN, chance) and under it, smaller, what the number is."""
        detail = detail if text else ""
        if text == self.headline.text() and self.headline.isVisible() == bool(text) and \
                detail == self.headline_detail.text():
            return
        self.headline.setText(text)
        self.headline.setVisible(bool(text))
        self.headline.raise_()
        self.headline_detail.setText(detail)
        self.headline_detail.adjustSize()
        self.headline_detail.setVisible(bool(detail))
        self.headline_detail.raise_()
        self._fit_headline()

    def _style_headline(self, pt: float) -> None:
        if pt != self._headline_pt:
            self._headline_pt = pt
            self.headline.setStyleSheet(f"QLabel {{ font-size: {pt:g}pt; font-weight: 600; color: #222;"
                                        " background: rgba(255, 255, 255, 200); padding: 2px 8px; }")

    def _fit_headline(self) -> None:
        """The headline on one line across the map: its full size where it fits, smaller (down to
        ``HEADLINE_MIN_PT``) on a narrow map, so "chance 0.12" is never cut off."""
        text = self.headline.text()
        if text:
            room = max(1, self.width() - 16)
            font = QFont(self.headline.font())  # as the style sheet has it now
            frame = self.headline.sizeHint().width() - QFontMetrics(font).horizontalAdvance(text)  # padding
            pt = HEADLINE_PT
            while pt > HEADLINE_MIN_PT:
                font.setPointSizeF(pt)
                if QFontMetrics(font).horizontalAdvance(text) + frame <= room:
                    break
                pt -= 1
            self._style_headline(pt)
        self.headline.adjustSize()
        self.headline_detail.move(8, 6 + self.headline.height())

    def set_message(self, text: str) -> None:
        self.empty_text.setText(text)
        self.empty_text.setVisible(bool(text))
        if text:
            r = self.vb.viewRect()
            self.empty_text.setPos(r.center())

    def set_points(self, coords: np.ndarray, thumbs: np.ndarray | None = None, reset_view: bool = True) -> None:
        """A new set of points (no animation)."""
        self._anim.stop()
        c = np.asarray(coords, dtype=np.float32).reshape(-1, 2)
        self.coords = c.copy()
        self.thumbs = thumbs
        n = len(c)
        size = 7 if n < 2000 else 6 if n < 6000 else 5
        brushes = self.brushes.for_points(n)
        self.scatter.setData(x=c[:, 0], y=c[:, 1], size=size, brush=brushes, pen=None)
        self._colored_count = n if len(self.brushes.index) == n else -1
        self.index = GridIndex(c)
        self.rings.clear()  # rings belong to the points they were drawn on
        self._hide_hover()
        self.set_message("" if n else "No points")
        if reset_view and n:
            self.reset_view()
        self._density_timer.start()

    def _user_moved_view(self, *_) -> None:
        self._auto_fit = False

    def resizeEvent(self, ev):  # noqa: N802
        super().resizeEvent(ev)
        self._fit_headline()
        if self._auto_fit and self.count and not self.animating:
            QTimer.singleShot(0, self.reset_view)

    def reset_view(self) -> None:
        self._auto_fit = True
        if self.count:
            self._set_range(self.coords.min(0), self.coords.max(0))

    def _set_range(self, lo, hi) -> None:
        lo, hi = [float(v) for v in lo], [float(v) for v in hi]
        pad = 0.04 * max(hi[0] - lo[0], hi[1] - lo[1], 1e-6)
        room = 0.0 if not self.headline.isVisibleTo(self) else 0.18 if self.headline_detail.isVisibleTo(self) else 0.12
        top = pad + room * max(hi[1] - lo[1], 1e-6)  # room for the headline
        self.vb.setRange(xRange=(lo[0] - pad, hi[0] + pad), yRange=(lo[1] - pad, hi[1] + top), padding=0)

    def move_to(self, coords: np.ndarray, animate: bool = True, duration_ms: int = 500) -> None:
        """Move the same points to a new layout, animated (positions written in place)."""
        c = np.asarray(coords, dtype=np.float32).reshape(-1, 2)
        if c.shape != self.coords.shape:
            self.set_points(c, self.thumbs)
            return
        self._hide_hover()
        if not animate or duration_ms <= 0:
            self._anim.stop()
            self.coords = c.copy()
            self._apply_positions(self.coords)
            self.index = GridIndex(self.coords)
            if self._auto_fit:
                self.reset_view()
            self.animationFinished.emit()
            return
        start = self._current_positions()
        self._anim_from, self._anim_to = start, c.copy()
        self._anim_ms = duration_ms
        self.coords = c.copy()
        self.index = GridIndex(self.coords)
        if self._auto_fit:  # the view follows the points (growing or shrinking) unless the user moved it
            self._anim_bounds = (np.stack([start.min(0), start.max(0)]), np.stack([c.min(0), c.max(0)]))
        else:
            self._anim_bounds = None
            lo = np.minimum(start.min(0), c.min(0))
            hi = np.maximum(start.max(0), c.max(0))
            r = self.vb.viewRect()
            if lo[0] < r.left() or hi[0] > r.right() or lo[1] < r.top() or hi[1] > r.bottom():
                self._set_range(lo, hi)
        self._anim_clock.start()
        self._anim.start()

    @property
    def animating(self) -> bool:
        return self._anim.isActive()

    def _current_positions(self) -> np.ndarray:
        d = self.scatter.data
        return np.stack([d["x"], d["y"]], 1).astype(np.float32)

    def _apply_positions(self, c: np.ndarray) -> None:
        d = self.scatter.data
        if len(d) != len(c):
            return
        d["x"] = c[:, 0]
        d["y"] = c[:, 1]
        s = self.scatter
        s.prepareGeometryChange()
        s.bounds = [None, None]
        s.informViewBoundsChanged()
        s.update()
        self.rings.draw(c)
        self._density_timer.start()

    def _anim_step(self) -> None:
        t = min(1.0, self._anim_clock.elapsed() / max(1, self._anim_ms))
        frame = glide(self._anim_from, self._anim_to, t)
        self._apply_positions(frame)
        if self.density_shown:
            self.update_density(frame)
        if self._anim_bounds is not None and self._auto_fit:
            b = glide(self._anim_bounds[0], self._anim_bounds[1], t)
            self._set_range(b[0], b[1])
        if t >= 1.0:
            self._anim.stop()
            self.animationFinished.emit()

    # -- colours --------------------------------------------------------------------------------------------
    def set_colors(self, color_index: np.ndarray, palette: list[QColor], dim: np.ndarray | None = None) -> None:
        """Colour point i with ``palette[color_index[i]]``; ``dim`` (bool) greys points out."""
        if not self.brushes.set(color_index, palette, dim) and self._colored_count == self.count:
            return  # brushes are costly to rebuild (tens of ms at 10,000 points): only on a change
        if self.count and len(self.brushes.index) == self.count:
            self._colored_count = self.count
            self.scatter.setBrush(list(self.brushes.for_points(self.count)))
        if self.density_shown:
            self.update_density()

    # -- density, zoomed out -----------------------------------------------------------------------------------
    @property
    def density_shown(self) -> bool:
        """Does the map draw the points' density (zoomed out over many points) instead of the points?"""
        return self.density.isVisible()

    def update_density(self, coords: np.ndarray | None = None) -> bool:
        """Density or points, for the view now: the density image of the points in view when they are more than
        ``density_at``, else the points. Returns whether the density is shown."""
        c = self.coords if coords is None else coords
        r = self.vb.viewRect()
        rect = (r.left(), r.top(), r.right(), r.bottom())
        many = len(c) > self.density_at and visible_count(c, rect) > self.density_at
        if many:
            size = self.vb.boundingRect()
            shape = (max(1, int(size.height() / CELL_PX)), max(1, int(size.width() / CELL_PX)))
            pal = np.array([[q.red(), q.green(), q.blue()] for q in self.brushes.palette], np.uint8) \
                if self.brushes.palette and len(self.brushes.index) == len(c) else None
            img = density_image(c, rect, shape, self.brushes.index if pal is not None else None, pal,
                                self.brushes.dim if pal is not None else None)
            self.density.setImage(img.transpose(1, 0, 2), autoLevels=False, levels=(0, 255))
            self.density.setRect(QRectF(rect[0], rect[1], rect[2] - rect[0], rect[3] - rect[1]))
        self.density.setVisible(many)
        self.scatter.setVisible(not many)
        return many

    # -- overlays ---------------------------------------------------------------------------------------------
    def set_marked(self, rows) -> None:
        """Rings around ``rows`` (neighbours)."""
        self.rings.marked = np.asarray(rows, dtype=np.int64)
        self.rings.draw(self.coords)

    def set_focus(self, row: int) -> None:
        self.rings.focused = int(row)
        self.rings.draw(self.coords)

    def clear_overlays(self) -> None:
        self.rings.clear()

    # -- hover and click ---------------------------------------------------------------------------------------
    def row_at_scene(self, scene_pos: QPointF) -> int:
        if not self.count or self.animating:
            return -1
        if not self.vb.sceneBoundingRect().contains(scene_pos):
            return -1
        p = self.vb.mapSceneToView(scene_pos)
        px, py = self.vb.viewPixelSize()
        return self.index.nearest(p.x(), p.y(), HOVER_PX * px, HOVER_PX * py)

    def _on_mouse_moved(self, scene_pos) -> None:
        self._last_scene_pos = QPointF(scene_pos)
        row = self.row_at_scene(scene_pos)
        if row == self.hovered:
            return
        self.hovered = row
        if row < 0:
            self.hover_mark.clear()
            self.card.hide()
            self._dwell.stop()
        else:
            self.hover_mark.setData(x=[self.coords[row, 0]], y=[self.coords[row, 1]])
            self.card.hide()
            self._dwell.start()
        self.hoveredChanged.emit(row)

    def _show_card(self) -> None:
        row = self.hovered
        if row < 0:
            return
        thumb = self.thumbs[row] if self.thumbs is not None and row < len(self.thumbs) else None
        text = self.describe(row) if self.describe else f"point {row}"
        at = self.plot.mapFromScene(self._last_scene_pos)
        at = self.plot.mapTo(self, at)
        self.card.show_point(row, thumb, text, at)

    def _hide_hover(self) -> None:
        if self.hovered >= 0:
            self.hovered = -1
            self.hoveredChanged.emit(-1)
        self.hover_mark.clear()
        self.card.hide()
        self._dwell.stop()

    def _on_mouse_clicked(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or ev.double():
            return
        row = self.row_at_scene(ev.scenePos())
        if row >= 0:
            self.pointClicked.emit(row)

    def _on_selection(self, poly: np.ndarray) -> None:
        if not self.count:
            return
        rect = self.vb.mode == "rect" or len(poly) == 4 and self.vb.mode != "lasso"
        self.selectionChanged.emit(rows_in_selection(self.coords, poly, rect))

    def set_mode(self, mode: str) -> None:
        self.vb.mode = mode
        self.plot.setCursor(Qt.CursorShape.CrossCursor if mode != "pan" else Qt.CursorShape.ArrowCursor)

    def view_pos_of(self, row: int) -> QPoint:
        """Where point ``row`` is on screen, in the plot widget's coordinates (tests and tooling)."""
        sp = self.vb.mapViewToScene(QPointF(float(self.coords[row, 0]), float(self.coords[row, 1])))
        return self.plot.mapFromScene(sp)


__all__ = ["EmbeddingMap", "MapBrushes", "Rings", "SelectViewBox", "HoverCard"]
