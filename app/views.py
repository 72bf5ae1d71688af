"""The window's views, in tab order: key (``main.py --view KEY``), tab title, factory.

A factory takes the window's ``ViewContext`` (app/common/view.py) and returns a QWidget that also
derives from ``View``; every room's panel module ends with its factory (``data_view``, ``run_view``, ...),
which builds the panel from narrow inputs and connects it to the context's models and clients. To add a
view, write its room (or one module) with such a factory and add one line here.
"""

from __future__ import annotations

from app.common.view import ViewSpec
from app.curves.panel import curves_view
from app.data.panel import data_view
from app.history.panel import history_view
from app.inspector.panel import inspector_view
from app.map.panel import map_view
from app.preview.panel import preview_view
from app.run.panel import run_view

VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec("data", "Data", data_view),
    ViewSpec("pretext", "Pretext preview", preview_view),
    ViewSpec("run", "Run", run_view),
    ViewSpec("curves", "Curves", curves_view),
    ViewSpec("embedding", "Embedding map", map_view),
    ViewSpec("inspector", "Inspector", inspector_view),
    ViewSpec("history", "Run history", history_view),
)


def view_keys() -> list[str]:
    return [v.key for v in VIEWS]
