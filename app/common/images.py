"""numpy images as Qt images: the one conversion the rooms share (thumbnails, tiles, grids, the map's card)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap


def to_qimage(arr: np.ndarray) -> QImage:
    """(H, W, 3) uint8 -> a QImage that owns its pixels."""
    a = np.ascontiguousarray(arr, dtype=np.uint8)
    h, w = a.shape[:2]
    return QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def qimage(arr: np.ndarray) -> QImage:
    """uint8 (H, W, 3) or (H, W) -> a QImage that owns its pixels."""
    a = np.ascontiguousarray(arr)
    if a.ndim == 2:
        a = np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))
    h, w = a.shape[:2]
    return QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def qpixmap(arr: np.ndarray, size: int | None = None, smooth: bool = False) -> QPixmap:
    pm = QPixmap.fromImage(qimage(arr))
    if size:
        mode = Qt.TransformationMode.SmoothTransformation if smooth else Qt.TransformationMode.FastTransformation
        pm = pm.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, mode)
    return pm
