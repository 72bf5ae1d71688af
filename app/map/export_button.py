"""The embedding map's Export menu: embeddings and 2-D map (CSV + .npy), the map as PNG, the encoder as
safetensors. It asks where to save, then calls the export it was given for that kind."""

from __future__ import annotations

import os
from collections.abc import Callable

from PySide6.QtWidgets import QMenu, QToolButton, QWidget

from app.common import dialogs


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
        return dialogs.save_file_choice(self, title, os.path.join(self.folder(), name), filters)

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
