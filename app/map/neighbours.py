"""The embedding map's "Neighbours" tab: the clicked image and its nearest neighbours in feature space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from app.common.charts import ThumbGrid
from app.common.images import qpixmap
from app.map.model import MapStore

HINT = "Click a point: its nearest neighbours in feature space appear here"
SAME, OTHER = QColor("#59a14f"), QColor("#e15759")  # a neighbour of the clicked image's class, or not


class NeighboursTab(QWidget):
    picked = Signal(int)  # a neighbour's thumbnail was clicked (its position in the grid)
    searchAll = Signal()  # "Search all images"
    kChanged = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        pl = QVBoxLayout(self)
        pl.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        self.image = QLabel()
        self.image.setFixedSize(96, 96)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setFrameShape(QFrame.Shape.StyledPanel)
        self.info = QLabel(HINT)
        self.info.setWordWrap(True)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top.addWidget(self.image)
        top.addWidget(self.info, 1)
        pl.addLayout(top)
        krow = QHBoxLayout()
        krow.addWidget(QLabel("Neighbours"))
        self.k = QSpinBox()
        self.k.setRange(1, 100)
        self.k.setValue(12)
        self.k.valueChanged.connect(self.kChanged)
        krow.addWidget(self.k)
        krow.addStretch(1)
        self.search_all = QPushButton("Search all images")
        self.search_all.setToolTip("Nearest neighbours among all images of the set, not only those on the map")
        self.search_all.clicked.connect(self.searchAll)
        krow.addWidget(self.search_all)
        pl.addLayout(krow)
        self.grid = ThumbGrid(tile=64, captions=2, empty_text="No point chosen yet")
        self.grid.clicked.connect(self.picked)
        pl.addWidget(self.grid, 1)

    def show_query(self, store: MapStore, row: int, rows: np.ndarray, sims: np.ndarray) -> None:
        """The clicked image ``row`` of the map shown and its neighbours ``rows`` (cosine ``sims``)."""
        s, label = store.current, store.label_text
        if s.thumbs is not None:
            self.image.setPixmap(qpixmap(s.thumbs[row], 92, smooth=True))
        info = [f"<b>{label(row) or 'image'}</b> #{int(s.indices[row])}"]
        if s.paths:
            info.append(Path(s.paths[row]).name)
        share = store.same_class_share(row, rows)
        if share is not None:
            info.append(f"{share:.0%} of its {len(rows)} nearest neighbours share its class")
        self.info.setText("<br>".join(info))
        imgs = s.thumbs[rows] if s.thumbs is not None else np.zeros((len(rows), 8, 8, 3), np.uint8)
        colors = None if s.labels is None else [SAME if s.labels[r] == s.labels[row] else OTHER for r in rows]
        self.grid.set_items(
            list(imgs), [f"{sim:.3f}\n{label(r) or '#' + str(int(s.indices[r]))}" for r, sim in zip(rows, sims)],
            [f"image #{int(s.indices[r])} · cosine similarity {sim:.4f} · {label(r)}" for r, sim in zip(rows, sims)],
            colors)

    def show_retrieved(self, d: dict) -> None:
        """Neighbours among all images of the set (the analysis process's ``retrieve`` answer)."""
        names, labels = d.get("class_names") or [], d.get("labels")
        caps = []
        for j, (i, sim) in enumerate(zip(d["indices"], d["similarities"])):
            lab = names[int(labels[j])] if labels is not None and 0 <= int(labels[j]) < len(names) else f"#{int(i)}"
            caps.append(f"{sim:.3f}\n{lab}")
        self.grid.set_items(list(d["thumbs"]), caps)

    def clear(self) -> None:
        self.grid.clear()
