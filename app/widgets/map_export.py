"""The embedding map's Export menu: embeddings (CSV + .npy), the map as PNG, the encoder (safetensors); and
the run's maps as an animated GIF (written in a worker thread)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QMenu,
    QPlainTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


class EncoderExampleDialog(QDialog):
    """Shows where the encoder went and the one line that loads it back."""

    def __init__(self, parent, path: str, examples: dict[str, str]):
        super().__init__(parent)
        self.setWindowTitle("Encoder exported")
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Saved <b>{path}</b> (safetensors). Load it back with one line of Python:"))
        self.text = QPlainTextEdit("\n\n".join(f"# {k}\n{v}" for k, v in examples.items()))
        self.text.setReadOnly(True)
        self.text.setMinimumSize(640, 120)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        lay.addWidget(self.text)
        lay.addWidget(QLabel("The workbench's backbones normalise [0, 1] images themselves; the torchvision form "
                             "expects ImageNet-normalised inputs."))
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = bb.addButton("Copy", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: (self.text.selectAll(), self.text.copy()))
        bb.rejected.connect(self.close)
        lay.addWidget(bb)


class ExportButton(QToolButton):
    """Asks where to save, then calls the panel's export functions with the path."""

    def __init__(self, folder: Callable[[], str], embedding: Callable[[str], object], png: Callable[[str], object],
                 encoder: Callable[[str, str], object], parent: QWidget | None = None):
        super().__init__(parent)
        self.folder, self.embedding, self.png, self.encoder = folder, embedding, png, encoder
        self.setText("Export")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self)
        menu.addAction("Embeddings and 2-D map (CSV + .npy)…", self.embedding_dialog)
        menu.addAction("Map as PNG…", self.png_dialog)
        menu.addAction("Encoder (safetensors)…", self.encoder_dialog)
        self.setMenu(menu)

    def _ask(self, title: str, name: str, filters: str) -> tuple[str, str]:
        return QFileDialog.getSaveFileName(self, title, os.path.join(self.folder(), name), filters)

    def embedding_dialog(self) -> None:
        path, _ = self._ask("Export embeddings", "embedding.csv", "CSV (*.csv)")
        if path:
            self.embedding(path)

    def png_dialog(self) -> None:
        path, _ = self._ask("Save the map", "map.png", "PNG image (*.png)")
        if path:
            self.png(path)

    def encoder_dialog(self) -> None:
        path, flt = self._ask("Export the encoder", "encoder.safetensors",
                              "Workbench backbone (*.safetensors);;torchvision ResNet (*.safetensors)")
        if path:
            self.encoder(path, "torchvision" if flt.startswith("torchvision") else "own")


class GifWriter(QObject):
    """Writes maps as an animated GIF (:func:`app.map_movie.write_gif`, Pillow) in a worker thread;
    ``on_done(frames written, or an error text)`` runs on the GUI thread."""

    _done = Signal(object)

    def write(self, path: str, frames: list, colors, on_done: Callable, legend: list | None = None) -> None:
        self._done.connect(on_done, Qt.ConnectionType.SingleShotConnection)

        def work():
            from app.map_movie import write_gif

            try:
                self._done.emit(write_gif(path, frames, colors, legend=legend))
            except Exception as exc:  # noqa: BLE001 - shown to the user
                self._done.emit(f"could not write {path}: {exc}")

        threading.Thread(target=work, daemon=True, name="gif").start()
