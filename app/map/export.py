"""The embedding map's exports: the Export menu (embeddings as CSV + .npy, the map as PNG, the encoder as
safetensors), the run's maps as an animated GIF (written in a worker thread), and MapExports, which writes
them for the panel."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
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

from app.map.legend import palette_for
from app.map.model import COLOR_CLUSTER

if TYPE_CHECKING:
    from app.map.panel import EmbeddingPanel


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
    """Writes maps as an animated GIF (:func:`app.map.movie.write_gif`, Pillow) in a worker thread;
    ``on_done(frames written, or an error text)`` runs on the GUI thread."""

    _done = Signal(object)

    def write(self, path: str, frames: list, colors, on_done: Callable, legend: list | None = None) -> None:
        self._done.connect(on_done, Qt.ConnectionType.SingleShotConnection)

        def work():
            from app.map.movie import write_gif

            try:
                self._done.emit(write_gif(path, frames, colors, legend=legend))
            except Exception as exc:  # noqa: BLE001 - shown to the user
                self._done.emit(f"could not write {path}: {exc}")

        threading.Thread(target=work, daemon=True, name="gif").start()


class MapExports:
    """What the panel's Export menu and the timeline's GIF button write: the current map's embeddings, the
    figure as PNG, the run's encoder (by the analysis process) and the run's maps as a GIF (here, in a
    worker thread). Each tells the panel's status line how it went."""

    def __init__(self, panel: EmbeddingPanel):
        self.panel = panel
        self.gif_writer = GifWriter(panel)
        self._dialogs: list = []

    def embedding(self, path: str, callback=None) -> int | None:
        """Write the current map's features, 2-D coordinates, labels and file paths (CSV, .npz, .npy)."""
        p = self.panel
        s = p.current
        if s is None or not p.requests.available:
            return None
        args = {"path": path, "features": s.features, "coords": p.map.coords, "labels": s.labels,
                "indices": s.indices, "paths": s.paths, "class_names": s.class_names}
        return p.requests.export_embedding(
            args, lambda d: p.set_status(f"Saved {d['csv']} and .npy files next to it"),
            lambda e: p.set_status(e["message"] or "export failed", error=True), callback)

    def ask_gif(self) -> None:
        p = self.panel
        start = str(Path(p.run_dir) / "map.gif") if p.run_dir else "map.gif"
        path, _ = QFileDialog.getSaveFileName(p, "Export the run's maps as a GIF", start, "GIF (*.gif)")
        if path:
            self.gif(path)

    def gif(self, path: str, callback=None) -> bool:
        """Write the run's snapshot maps (those with a layout) as an animated GIF, in a worker thread;
        ``callback(frames or an error text)`` runs on the GUI thread when it is written."""
        p = self.panel
        frames = p.store.movie_frames(p.projection_name)
        if not frames:
            p.set_status("No maps to export yet: wait for the first snapshot", error=True)
            return False
        c = p.store.coloring(p.color_by.currentText() or COLOR_CLUSTER)
        palette = np.array([[q.red(), q.green(), q.blue()] for q in palette_for(c)], np.uint8)
        skipped = sum(1 for e in p.entries if e.kind != "checkpoint") - len(frames)
        p.set_status(f"Writing {len(frames)} maps to {path}…" +
                     (f" ({skipped} snapshots not mapped yet: play the timeline first)" if skipped > 0 else ""))

        def done(result) -> None:
            ok = isinstance(result, int)
            p.set_status(f"Saved {path} ({result} maps)" if ok else result, error=not ok)
            if callback is not None:
                callback(result)

        legend = list(zip(c.names, palette.tolist())) if c.kind in ("class", "cluster") else None
        self.gif_writer.write(path, frames, palette[np.clip(c.idx, 0, len(palette) - 1)], done, legend)
        return True

    def png(self, path: str) -> bool:
        """The map and its legend as shown."""
        ok = self.panel.figure.grab().save(path)
        self.panel.set_status(f"Saved {path}" if ok else f"Could not write {path}", error=not ok)
        return ok

    def encoder(self, path: str, fmt: str = "own", callback=None, show: bool = True) -> int | None:
        """The run's encoder as safetensors (``fmt`` "own" or "torchvision"); ``show`` opens the dialog with
        the line that loads it back."""
        p = self.panel
        if not p.run_dir or not p.requests.available:
            return None

        def done(d: dict) -> None:
            p.set_status(f"Saved the encoder to {d['path']}")
            if show:
                dlg = EncoderExampleDialog(p, d["path"], {f"{d['format']} form": d["example"]})
                self._dialogs.append(dlg)
                dlg.show()

        return p.requests.export_encoder({"run_dir": p.run_dir, "path": path, "format": fmt}, done,
                                         lambda e: p.set_status(e["message"] or "export failed", error=True),
                                         callback)
