"""The embedding map's timeline: a slider through the run's maps (one per snapshot), play, and
"Follow training"."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSlider, QToolButton, QWidget

PLAY_MS = 900
LONGEST = "epoch 9999.99 · step 9999999 · from the checkpoint  (999/999)"


class MapTimeline(QWidget):
    moved = Signal(int)  # the user (or play) chose the map at this position
    exportGif = Signal()  # "Export GIF…"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.ready: Callable[[], bool] = lambda: True  # may play step on? (the map shown has drawn)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Maps over training"))
        self.play_btn = QToolButton()
        self.play_btn.setText("▶")
        self.play_btn.setToolTip("Play the run: its maps one after the other, points gliding between them")
        self.play_btn.setCheckable(True)
        self.play_btn.toggled.connect(self._toggle_play)
        lay.addWidget(self.play_btn)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.setPageStep(1)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.valueChanged.connect(self.moved)
        lay.addWidget(self.slider, 1)
        self.label = QLabel("no snapshots")
        # wide enough for the longest title: a label that changes size makes the row lay out again
        self.label.setFixedWidth(self.label.fontMetrics().horizontalAdvance(LONGEST) + 8)
        lay.addWidget(self.label)
        self.gif_btn = QToolButton()
        self.gif_btn.setText("Export GIF…")
        self.gif_btn.setToolTip("Save the run's maps as an animated GIF (for slides)")
        self.gif_btn.clicked.connect(self.exportGif)
        lay.addWidget(self.gif_btn)
        self.follow = QCheckBox("Follow training")
        self.follow.setChecked(True)
        self.follow.setToolTip("Show each new snapshot of a live run as it arrives")
        lay.addWidget(self.follow)
        self._play = QTimer(self, interval=PLAY_MS)
        self._play.timeout.connect(self._play_step)

    @property
    def position(self) -> int:
        return self.slider.value()

    def set_entries(self, count: int, position: int | None, text: str) -> None:
        """``count`` maps; ``position`` (if given) is shown; no ``moved`` signal."""
        with QSignalBlocker(self.slider):
            self.slider.setRange(0, max(0, count - 1))
            if position is not None:
                self.slider.setValue(position)
        self.label.setText(text)

    def set_text(self, text: str) -> None:
        self.label.setText(text)

    def stop(self) -> None:
        self._toggle_play(False)

    def _toggle_play(self, on: bool) -> None:
        if on and self.slider.maximum() > 0:
            if self.slider.value() >= self.slider.maximum():
                self.slider.setValue(0)
            self._play.start()
        else:
            self._play.stop()
            self.play_btn.setChecked(False)

    def _play_step(self) -> None:
        if not self.ready():
            return  # wait for the current map
        i = self.slider.value() + 1
        if i > self.slider.maximum():
            self._toggle_play(False)
            return
        self.slider.setValue(i)
