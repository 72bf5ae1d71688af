"""The Inspector's Attention tab: where the encoder looks in a few images of its data.

For a ViT (the workbench's, timm's or torchvision's) the last block's attention of the class token to every
patch, one map per head (DINO's figure); for a CNN one map, the norm of its last feature map. The maps come from
the analysis process (op ``attention``); the head box (each head, their mean, or all heads side by side) and the
"keep the top X% of the mass" threshold redraw them here without asking again (app/inspector/overlay.py).
A point clicked on the map shows its image here (``show_point``)."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox

from app.common.charts import ThumbGrid
from app.inspector.overlay import ALL, MEAN, attention_tiles, head_choices, parse_indices
from app.inspector.tab import InspectorTab

DEFAULT_IMAGES = "0-7"


class AttentionTab(InspectorTab):
    def __init__(self, target):
        super().__init__(target)
        row = QHBoxLayout()
        row.addWidget(QLabel("Images #"))
        self.indices = QLineEdit(DEFAULT_IMAGES)
        self.indices.setToolTip("Image numbers of the set (0, 5, 17) or a range (0-7); clicking a point on the "
                                "Embedding map shows its image here")
        self.indices.setMaximumWidth(180)
        self.indices.returnPressed.connect(self.refresh)
        row.addWidget(self.indices)
        self.split = QComboBox()
        self.split.addItem("of the evaluation set", "eval")
        self.split.addItem("of the training set", "train")
        row.addWidget(self.split)
        self.show_btn = QPushButton("Show")
        self.show_btn.clicked.connect(self.refresh)
        row.addWidget(self.show_btn)
        row.addSpacing(16)
        row.addWidget(QLabel("Heads"))
        self.head = QComboBox()
        self.head.setToolTip("One head's map, the mean over heads, or every head side by side")
        self.head.addItem("mean of heads", MEAN)
        self.head.currentIndexChanged.connect(lambda _i: self.redraw())
        row.addWidget(self.head)
        row.addWidget(QLabel("Keep the top"))
        self.keep = QSpinBox()
        self.keep.setRange(1, 100)
        self.keep.setValue(60)
        self.keep.setSuffix("% of the mass")
        self.keep.setToolTip("The third picture keeps the fewest patches that hold this share of the map's "
                             "attention (DINO shows 60%)")
        self.keep.valueChanged.connect(lambda _v: self.redraw())
        row.addWidget(self.keep)
        row.addStretch(1)
        self.lay.addLayout(row)
        self.lay.addWidget(self.status)
        self.grid = ThumbGrid(tile=112, captions=1, columns=3, group=3,
                              empty_text="Where the encoder looks: for a ViT the class token's attention to every "
                                         "patch in the last block, per head; for a CNN where its last feature map is "
                                         "strongest. Choose images and press Show, or click a point on the map.")
        self.lay.addWidget(self.grid, 1)
        self.result: dict | None = None
        self.data = ""  # another dataset than the run's (a map of it was clicked)
        self.pending = False  # a point was chosen while the tab was hidden: show it when it is shown

    # -- asking ------------------------------------------------------------------------------------------------
    def refresh(self) -> int | None:
        """Ask for the maps of the chosen images."""
        try:
            idx = parse_indices(self.indices.text())
        except ValueError as exc:
            self.set_status(str(exc), error=True)
            return None
        self.pending = False
        args = {"run_dir": self.target.run_dir, "indices": idx, "split": self.split.currentData(),
                "keep": self.keep.value() / 100}
        if self.data:
            args["data"] = self.data
        return self.request("attention", self._on_reply, **args)

    def show_point(self, index: int, split: str = "eval", data: str = "", now: bool = True) -> None:
        """A point of the map was clicked: its image is the one to look at (asked now if ``now``, else when the
        tab is next shown)."""
        self.indices.setText(str(int(index)))
        i = self.split.findData(split)
        self.split.setCurrentIndex(i if i >= 0 else 0)
        self.data = str(data or "")
        self.pending = not now
        if now:
            self.refresh()

    def reset(self) -> None:
        """Another run is shown: its own images, nothing drawn yet."""
        self.result = None
        self.data = ""
        self.pending = False
        self.indices.setText(DEFAULT_IMAGES)
        self.grid.clear()
        self.set_status("")

    # -- drawing -----------------------------------------------------------------------------------------------
    def _on_reply(self, d: dict, final: bool = True) -> None:
        if not final:
            return
        self.result = d
        heads, kind = int(d.get("heads", 1)), str(d.get("kind", ""))
        was = self.head.currentData()
        self.head.blockSignals(True)
        self.head.clear()
        for text, value in head_choices(heads, kind):
            self.head.addItem(text, value)
        i = self.head.findData(was)
        self.head.setCurrentIndex(i if i >= 0 else 0)
        self.head.setEnabled(heads > 1)
        self.head.blockSignals(False)
        self.redraw()
        grid = "×".join(str(g) for g in d.get("grid", ()))
        what = (f"the class token's attention in the last block, {heads} heads" if kind == "attention"
                else "where its last feature map is strongest (its norm)")
        self.set_status(f"{len(d['images'])} images · {what} · a {grid} grid")

    def redraw(self) -> None:
        """Draw the last maps for the head box and the threshold (nothing is asked again)."""
        d = self.result
        if d is None:
            return
        head = self.head.currentData()
        self.keep.setEnabled(head != ALL)  # all heads side by side: each head's map, no threshold picture
        images, captions, tips, per = attention_tiles(d, head, self.keep.value() / 100)
        self.grid.fixed_columns = per
        self.grid.group = per
        self.grid.set_items(images, captions, tips, smooth=False)

    def tiles_shown(self) -> int:
        return self.grid.count()
