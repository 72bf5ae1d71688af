"""The embedding map's "Selection" tab: what a box or lasso selected (how many, their labels, the images)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.common.charts import BarChart, ThumbGrid
from app.map.model import MapStore

HINT = "Choose Box or Lasso and drag over the map to select images"
SHOWN = 400  # thumbnails shown at most


class SelectionTab(QWidget):
    picked = Signal(int)  # a thumbnail was clicked (its position in the selection)

    def __init__(self, parent=None):
        super().__init__(parent)
        sl = QVBoxLayout(self)
        sl.setContentsMargins(4, 4, 4, 4)
        self.info = QLabel(HINT)
        self.info.setWordWrap(True)
        sl.addWidget(self.info)
        self.histogram = BarChart(percent=False)
        self.histogram.hide()
        sl.addWidget(self.histogram)
        self.grid = ThumbGrid(tile=48, captions=1, empty_text="Nothing selected")
        self.grid.clicked.connect(self.picked)
        sl.addWidget(self.grid, 1)

    def clear(self) -> None:
        self.info.setText(HINT)
        self.histogram.set_data([], [])
        self.histogram.hide()
        self.grid.clear()

    def show_selection(self, store: MapStore) -> None:
        """The selection of the map shown: how many, their labels (or clusters), the first images."""
        s, rows = store.current, store.selected_rows
        if not len(rows):
            self.clear()
            return
        shown = rows[:SHOWN]
        self.info.setText(f"<b>{len(rows):,}</b> images selected" + (f" (showing {len(shown)})"
                                                                      if len(rows) > len(shown) else ""))
        histogram = store.selection_histogram()
        if histogram is not None:
            names, counts, title = histogram
            self.histogram.set_data(names, [("images", counts, None)], title=title)
        self.histogram.show()
        images = s.thumbs[shown] if s.thumbs is not None else np.zeros((len(shown), 8, 8, 3), np.uint8)
        self.grid.set_items(list(images), [store.label_text(r) or f"#{int(s.indices[r])}" for r in shown])
