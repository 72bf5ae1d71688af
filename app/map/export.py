"""What the embedding map exports: the current map's embeddings (CSV + .npy), the map as PNG, the run's
encoder as safetensors (with the dialog that shows how to load it back) and the run's maps as an animated
GIF (written in a worker thread). ``MapExports`` writes them from narrow inputs: the map's store, the
analysis requests, the coordinates drawn, the projection and colouring chosen, the figure to grab and a
status line. The Export menu that asks for a path is app/map/export_button.py."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.common import dialogs
from app.map.legend import palette_for
from app.map.model import COLOR_CLUSTER, MapStore
from app.map.requests import MapRequests

Status = Callable[..., object]  # status(text, error=False)


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
    """What the map's Export menu and the timeline's GIF button write: the current map's embeddings, the
    figure as PNG, the run's encoder (by the analysis process) and the run's maps as a GIF (here, in a
    worker thread). Each says how it went on the status line."""

    def __init__(self, store: MapStore, requests: MapRequests, coords: Callable[[], np.ndarray],
                 projection: Callable[[], str], coloring: Callable[[], str], figure: QWidget, status: Status,
                 parent: QWidget):
        """``coords()``: the 2-D coordinates drawn now; ``projection()``: the projection shown;
        ``coloring()``: the colouring chosen (one of the store's colour choices); ``figure``: what "Map as
        PNG" grabs; ``parent``: the dialogs' parent."""
        self.store, self.requests, self.coords = store, requests, coords
        self.projection, self.coloring = projection, coloring
        self.figure, self.status, self.parent = figure, status, parent
        self.gif_writer = GifWriter(parent)
        self.dialogs: list = []

    def embedding(self, path: str, callback=None) -> int | None:
        """Write the current map's features, 2-D coordinates, labels and file paths (CSV, .npz, .npy)."""
        s = self.store.current
        if s is None or not self.requests.available:
            return None
        args = {"path": path, "features": s.features, "coords": self.coords(), "labels": s.labels,
                "indices": s.indices, "paths": s.paths, "class_names": s.class_names}
        return self.requests.export_embedding(
            args, lambda d: self.status(f"Saved {d['csv']} and .npy files next to it"),
            lambda e: self.status(e["message"] or "export failed", error=True), callback)

    def ask_gif(self) -> None:
        run_dir = self.store.run_dir
        start = str(Path(run_dir) / "map.gif") if run_dir else "map.gif"
        path = dialogs.save_file(self.parent, "Export the run's maps as a GIF", start, "GIF (*.gif)")
        if path:
            self.gif(path)

    def gif(self, path: str, callback=None) -> bool:
        """Write the run's snapshot maps (those with a layout) as an animated GIF, in a worker thread;
        ``callback(frames or an error text)`` runs on the GUI thread when it is written."""
        store = self.store
        frames = store.movie_frames(self.projection())
        if not frames:
            self.status("No maps to export yet: wait for the first snapshot", error=True)
            return False
        c = store.coloring(self.coloring() or COLOR_CLUSTER)
        palette = np.array([[q.red(), q.green(), q.blue()] for q in palette_for(c)], np.uint8)
        skipped = sum(1 for e in store.entries if e.kind != "checkpoint") - len(frames)
        self.status(f"Writing {len(frames)} maps to {path}…" +
                    (f" ({skipped} snapshots not mapped yet: play the timeline first)" if skipped > 0 else ""))

        def done(result) -> None:
            ok = isinstance(result, int)
            self.status(f"Saved {path} ({result} maps)" if ok else result, error=not ok)
            if callback is not None:
                callback(result)

        legend = list(zip(c.names, palette.tolist())) if c.kind in ("class", "cluster") else None
        self.gif_writer.write(path, frames, palette[np.clip(c.idx, 0, len(palette) - 1)], done, legend)
        return True

    def png(self, path: str) -> bool:
        """The map and its legend as shown."""
        ok = self.figure.grab().save(path)
        self.status(f"Saved {path}" if ok else f"Could not write {path}", error=not ok)
        return ok

    def encoder(self, path: str, fmt: str = "own", callback=None, show: bool = True) -> int | None:
        """The run's encoder as safetensors (``fmt`` "own" or "torchvision"); ``show`` opens the dialog with
        the line that loads it back."""
        run_dir = self.store.run_dir
        if not run_dir or not self.requests.available:
            return None

        def done(d: dict) -> None:
            self.status(f"Saved the encoder to {d['path']}")
            if show:
                dlg = EncoderExampleDialog(self.parent, d["path"], {f"{d['format']} form": d["example"]})
                self.dialogs.append(dlg)
                dlg.show()

        return self.requests.export_encoder({"run_dir": run_dir, "path": path, "format": fmt}, done,
                                            lambda e: self.status(e["message"] or "export failed", error=True),
                                            callback)
