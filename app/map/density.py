"""The map zoomed out: where the points are too many to tell apart, their density, without Qt.

:func:`density_image` bins the points inside the view into a grid of screen cells (one ``np.bincount`` per
view, a few milliseconds at 100,000 points) and colours each cell with the mean colour of its points (the
classes' colours when the map is coloured by class), its opacity growing with the log of the count, so a
dense cluster reads as solid colour and a stray point stays visible. :func:`visible_count` decides between
density and points (``DENSITY_AT``)."""

from __future__ import annotations

import numpy as np

DENSITY_AT = 20_000  # more points than this in view: draw their density, else the points
CELL_PX = 2  # a density cell is this many screen pixels wide


def visible_count(coords: np.ndarray, rect: tuple[float, float, float, float]) -> int:
    """How many of ``coords`` lie inside ``rect`` (x0, y0, x1, y1)."""
    c = np.asarray(coords)
    if not len(c):
        return 0
    x0, y0, x1, y1 = rect
    return int(np.count_nonzero((c[:, 0] >= x0) & (c[:, 0] <= x1) & (c[:, 1] >= y0) & (c[:, 1] <= y1)))


def density_image(coords: np.ndarray, rect: tuple[float, float, float, float], shape: tuple[int, int],
                  color_index: np.ndarray | None = None, palette: np.ndarray | None = None,
                  dim: np.ndarray | None = None, default=(78, 121, 167)) -> np.ndarray:
    """An (h, w, 4) uint8 RGBA image of the points in ``rect`` (x0, y0, x1, y1) binned into ``shape`` = (h, w)
    cells; row 0 is the bottom of the rect (y grows upwards, as on the map). Each cell has the mean colour of its
    points (``palette[color_index]``, (k, 3) uint8; else ``default``); dimmed points (``dim``) count a tenth and
    in grey. Empty cells are transparent."""
    h, w = int(shape[0]), int(shape[1])
    out = np.zeros((h, w, 4), np.uint8)
    c = np.asarray(coords, np.float64).reshape(-1, 2)
    x0, y0, x1, y1 = (float(v) for v in rect)
    if not len(c) or h <= 0 or w <= 0 or x1 <= x0 or y1 <= y0:
        return out
    ix = np.floor((c[:, 0] - x0) / (x1 - x0) * w).astype(np.int64)
    iy = np.floor((c[:, 1] - y0) / (y1 - y0) * h).astype(np.int64)
    keep = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    cell = (iy * w + ix)[keep]
    if not len(cell):
        return out
    if color_index is not None and palette is not None and len(color_index) == len(c) and len(palette):
        rgb = np.asarray(palette, np.float64)[np.clip(np.asarray(color_index)[keep], 0, len(palette) - 1)]
    else:
        rgb = np.tile(np.asarray(default, np.float64), (len(cell), 1))
    weight = np.ones(len(cell))
    if dim is not None and len(dim) == len(c):
        d = np.asarray(dim, bool)[keep]
        rgb[d] = 0.85 * 255 + 0.15 * rgb[d]
        weight[d] = 0.1
    size = h * w
    count = np.bincount(cell, weights=weight, minlength=size)
    filled = count > 0
    flat = out.reshape(size, 4)  # a view: out is contiguous
    for ch in range(3):
        s = np.bincount(cell, weights=rgb[:, ch] * weight, minlength=size)
        flat[filled, ch] = np.clip(s[filled] / count[filled], 0, 255).round().astype(np.uint8)
    top = float(np.log1p(count.max()))
    alpha = 0.35 + 0.65 * np.log1p(count[filled]) / max(top, 1e-9)
    flat[filled, 3] = np.clip(alpha * 255, 0, 255).round().astype(np.uint8)
    return out
