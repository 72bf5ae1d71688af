"""Draws the attract/repel figure (app/map/pairs.py computes it) over the embedding map: the chosen image's two
views (diamonds) with lines to the image (attract) and their trails over the last snapshots, and arrows for the
other images of their batch from where they were at the snapshot before to where they are now, red when they
became less alike the chosen image (repel), blue when more. A caption line under the map's headline gives the
numbers."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel

from app.map.pairs import Figure

VIEW_COLOR, ATTRACT_COLOR = "#6a1b9a", "#2e7d32"
AWAY_COLOR, CLOSER_COLOR = "#d32f2f", "#1e88e5"
Z = 20  # over the points and the rings


class AttractOverlay:
    """The figure's items on ``plot`` (a pyqtgraph PlotWidget) and its caption, a label on ``host``."""

    def __init__(self, plot: pg.PlotWidget, host):
        self.plot = plot
        self.attract = pg.PlotCurveItem(pen=pg.mkPen(ATTRACT_COLOR, width=2.5), connect="pairs")
        self.trails = [pg.PlotCurveItem(pen=pg.mkPen(VIEW_COLOR, width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine))
                       for _ in range(2)]
        self.away = pg.PlotCurveItem(pen=pg.mkPen(AWAY_COLOR, width=2), connect="pairs")
        self.closer = pg.PlotCurveItem(pen=pg.mkPen(CLOSER_COLOR, width=2), connect="pairs")
        self.heads = pg.ScatterPlotItem(pxMode=True, size=9, pen=None)
        self.image = pg.ScatterPlotItem(pxMode=True, size=18, pen=pg.mkPen("#111111", width=3), brush=None)
        self.views = pg.ScatterPlotItem(pxMode=True, size=16, symbol="d", pen=pg.mkPen("w", width=1.5),
                                        brush=pg.mkBrush(VIEW_COLOR))
        self.items = [self.away, self.closer, self.heads, *self.trails, self.attract, self.image, self.views]
        for i, item in enumerate(self.items):
            item.setZValue(Z + i)
            plot.addItem(item, ignoreBounds=True)
        self.caption = QLabel(host)
        self.caption.setStyleSheet("QLabel { font-size: 11pt; color: #222; background: rgba(255, 255, 255, 220);"
                                   " padding: 2px 8px; }")
        self.caption.setWordWrap(True)  # a narrow map: the line wraps rather than runs off the map
        self.host = host
        self.caption.hide()
        self.shown: Figure | None = None
        self.clear()

    def clear(self) -> None:
        self.shown = None
        for item in self.items:
            item.setVisible(False)
        self.caption.hide()

    def draw(self, fig: Figure | None, top: int = 6) -> None:
        """Draw ``fig`` (None: nothing); the caption's top edge at ``top`` pixels (under the headline)."""
        if fig is None:
            self.clear()
            return
        self.shown = fig
        img, v = fig.image, fig.views
        self.attract.setData(x=[v[0, 0], img[0], v[1, 0], img[0]], y=[v[0, 1], img[1], v[1, 1], img[1]])
        for i, curve in enumerate(self.trails):
            curve.setData(x=fig.trails[:, i, 0], y=fig.trails[:, i, 1])
        self.image.setData(x=[img[0]], y=[img[1]])
        self.views.setData(x=v[:, 0], y=v[:, 1])
        if fig.others_from is not None and fig.away is not None:
            for curve, mask in ((self.away, fig.away), (self.closer, ~fig.away)):
                a, b = fig.others_from[mask], fig.others_to[mask]
                seg = np.empty((2 * len(a), 2), np.float32)
                seg[0::2], seg[1::2] = a, b
                curve.setData(x=seg[:, 0], y=seg[:, 1])
            self.heads.setData(x=fig.others_to[:, 0], y=fig.others_to[:, 1],
                               brush=[pg.mkBrush(AWAY_COLOR if w else CLOSER_COLOR) for w in fig.away])
            arrows = True
        else:  # one snapshot loaded: the other images are only marked
            self.heads.setData(x=fig.others_to[:, 0], y=fig.others_to[:, 1], brush=pg.mkBrush("#555555"))
            arrows = False
        for item in self.items:
            item.setVisible(item not in (self.away, self.closer) or arrows)
        self.caption.setText(fig.caption)
        width = min(self.caption.fontMetrics().horizontalAdvance(fig.caption) + 24, max(200, self.host.width() - 16))
        self.caption.resize(width, self.caption.heightForWidth(width))
        self.caption.move(8, top)
        self.caption.show()
        self.caption.raise_()


__all__ = ["AttractOverlay"]
