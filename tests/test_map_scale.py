"""The map at 100,000 points: zoomed out it draws their density (per class colour), zoomed in the points; the lasso
selects exactly the points inside it (against a plain per-point even-odd test)."""

from __future__ import annotations

import numpy as np
import pytest

from app.map.density import density_image, visible_count
from app.map.geometry import points_in_polygon, rows_in_selection

pytestmark = pytest.mark.gui


def even_odd(p, poly) -> bool:
    """The textbook test, one point at a time."""
    inside = False
    x, y = p
    j = len(poly) - 1
    for i in range(len(poly)):
        xi, yi = poly[i]
        xj, yj = poly[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def lasso(rng, n=60, wobble=0.6):
    """A closed hand-drawn-like loop (star-shaped, sometimes crossing itself)."""
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = 1 + wobble * rng.uniform(-1, 1, n)
    c = rng.normal(size=2) * 0.5
    return np.stack([c[0] + 2 * r * np.cos(t), c[1] + r * np.sin(t)], 1)


def test_the_lasso_keeps_exactly_the_points_inside():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(1500, 2)) * [2.0, 1.0]
    for k in range(12):
        poly = lasso(rng, n=8 + 10 * k, wobble=0.2 + 0.07 * k)
        want = np.array([even_odd(p, poly) for p in pts])
        got = points_in_polygon(pts, poly)
        assert np.array_equal(got, want), k
        assert 0 < want.sum() < len(pts)
    # points on a horizontal edge's line and on vertices do not break it; degenerate polygons select nothing
    grid = np.stack(np.meshgrid(np.arange(-3, 4), np.arange(-3, 4)), -1).reshape(-1, 2).astype(float)
    square = np.array([[-2, -2], [2, -2], [2, 2], [-2, 2]], float)
    assert np.array_equal(points_in_polygon(grid, square), np.array([even_odd(p, square) for p in grid]))
    assert not points_in_polygon(pts, square[:2]).any()
    assert list(rows_in_selection(pts, square, rect=False)) == list(np.flatnonzero(points_in_polygon(pts, square)))


def test_a_lasso_over_100000_points_matches_the_plain_test_on_a_sample():
    rng = np.random.default_rng(2)
    pts = rng.normal(size=(100_000, 2))
    poly = lasso(rng, n=400, wobble=0.4)
    got = points_in_polygon(pts, poly)
    sample = rng.choice(len(pts), 1500, replace=False)
    assert np.array_equal(got[sample], [even_odd(pts[i], poly) for i in sample])
    assert 1000 < got.sum() < len(pts)


def test_the_density_image_counts_and_colours_by_class():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(5000, 2)) * 0.3 + [-2, 0]  # class 0 on the left
    b = rng.normal(size=(5000, 2)) * 0.3 + [2, 0]  # class 1 on the right
    coords = np.concatenate([a, b])
    cls = np.repeat([0, 1], 5000)
    palette = np.array([[230, 30, 30], [30, 30, 230]], np.uint8)
    img = density_image(coords, (-4, -2, 4, 2), (40, 80), cls, palette)
    assert img.shape == (40, 80, 4)
    left, right = img[:, :40], img[:, 40:]
    red_cells = left[left[..., 3] > 0]
    blue_cells = right[right[..., 3] > 0]
    assert len(red_cells) > 50 and len(blue_cells) > 50
    assert (red_cells[:, 0] > 200).all() and (red_cells[:, 2] < 60).all()  # each side wears its class's colour
    assert (blue_cells[:, 2] > 200).all() and (blue_cells[:, 0] < 60).all()
    # denser cells are more opaque; an empty corner stays transparent
    centre = img[20, 20, 3]
    edge_cells = left[(left[..., 3] > 0)][:, 3]
    assert centre >= 0.9 * edge_cells.max() and edge_cells.max() > 1.5 * edge_cells.min() and img[0, 0, 3] == 0
    # y grows upwards: points above the middle land in the upper rows (higher row numbers)
    up = density_image(np.array([[0.0, 1.5]]), (-4, -2, 4, 2), (40, 80))
    assert np.argwhere(up[..., 3] > 0)[0][0] > 20
    assert visible_count(coords, (-4, -2, 0, 2)) == int((coords[:, 0] <= 0).sum())


def test_the_map_draws_density_zoomed_out_and_points_zoomed_in(qtbot):
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QColor

    from app.map.map_widget import EmbeddingMap

    m = EmbeddingMap()
    qtbot.addWidget(m)
    m.resize(800, 600)
    m.show()
    qtbot.waitExposed(m)
    rng = np.random.default_rng(4)
    centres = np.array([[-3, -3], [3, -3], [0, 3]], float)
    cls = rng.integers(0, 3, 100_000)
    coords = (centres[cls] + rng.normal(size=(100_000, 2)) * 0.6).astype(np.float32)
    m.set_points(coords)
    m.set_colors(cls, [QColor("#e15759"), QColor("#4e79a7"), QColor("#59a14f")])
    qtbot.waitUntil(lambda: m.density_shown, timeout=5_000)
    assert not m.scatter.isVisible()
    img = m.density.image  # (w, h, 4): x first
    assert img is not None and (img[..., 3] > 0).sum() > 1000
    # the cluster at the top wears green (the third class's colour)
    qtbot.waitUntil(lambda: m.density.image is not None, timeout=2_000)
    col = m.density.mapRectToParent(m.density.boundingRect())
    w, h = img.shape[:2]
    gx = int((0 - col.left()) / col.width() * w)
    gy = int((3 - col.top()) / col.height() * h)
    r, g, b, a = (int(v) for v in img[gx, gy])
    assert a > 0 and g > r and g > b

    # hover stays exact in density mode: the nearest point under the cursor
    row = int(np.argmin(((coords - centres[2]) ** 2).sum(1)))
    assert m.row_at_scene(m.vb.mapViewToScene(QPointF(float(coords[row, 0]), float(coords[row, 1])))) == row

    # zoomed in on a small part: the points
    m.vb.setRange(xRange=(-0.5, 0.5), yRange=(2.5, 3.5), padding=0)
    qtbot.waitUntil(lambda: not m.density_shown, timeout=5_000)
    assert m.scatter.isVisible()
    m.reset_view()
    qtbot.waitUntil(lambda: m.density_shown, timeout=5_000)

    # a lasso in density mode selects the exact points inside it
    poly = np.array([[-4.5, -4.5], [-1.5, -4.5], [-1.5, -1.5], [-4.5, -1.5]], float)
    got = []
    m.selectionChanged.connect(got.append)
    m.set_mode("lasso")
    m.vb.sigSelection.emit(poly)
    want = np.flatnonzero((coords[:, 0] > -4.5) & (coords[:, 0] < -1.5) & (coords[:, 1] > -4.5) &
                          (coords[:, 1] < -1.5))
    assert np.array_equal(np.sort(got[-1]), want)

    # fewer points than the threshold: always points
    m.set_points(coords[:5000])
    qtbot.waitUntil(lambda: not m.density_shown and m.scatter.isVisible(), timeout=5_000)
