"""app/map/geometry.py without a window: the rows a drawn box or lasso selects (that it imports no Qt:
tests/test_preview_model.py)."""

from __future__ import annotations

import numpy as np

from app.map.geometry import points_in_polygon, rows_in_selection


def test_box_takes_the_bounding_box_and_lasso_the_polygon():
    pts = np.array([[0.5, 0.5], [1.5, 0.2], [0.9, 0.9], [2.0, 2.0], [0.1, 0.8]])
    tri = np.array([[0.0, 0.0], [1.6, 0.0], [0.0, 1.6]])  # x + y < 1.6
    assert rows_in_selection(pts, tri, rect=True).tolist() == [0, 1, 2, 4]  # its box: 0..1.6 both ways
    lasso = rows_in_selection(pts, tri, rect=False)
    assert lasso.tolist() == [0, 4] and lasso.tolist() == np.flatnonzero(points_in_polygon(pts, tri)).tolist()
    assert rows_in_selection(pts, tri[:2], rect=False).tolist() == []  # two points enclose nothing
