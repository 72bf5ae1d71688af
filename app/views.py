"""The window's views, in tab order: key (``main.py --view KEY``), tab title, factory.

To add a view, write one module with a ``QWidget`` that also derives from ``app.view.View`` and
takes the ``ViewContext`` (see app/view.py), and add one line here.
"""

from __future__ import annotations

from app.view import ViewSpec
from app.widgets.curves_panel import CurvesPanel
from app.widgets.data_panel import DataPanel
from app.widgets.embedding import EmbeddingView
from app.widgets.history_panel import HistoryPanel
from app.widgets.inspector import InspectorView
from app.widgets.preview_panel import PreviewPanel
from app.widgets.run_panel import RunPanel

VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec("data", "Data", DataPanel.create),
    ViewSpec("pretext", "Pretext preview", PreviewPanel.create),
    ViewSpec("run", "Run", RunPanel.create),
    ViewSpec("curves", "Curves", CurvesPanel.create),
    ViewSpec("embedding", "Embedding map", EmbeddingView),
    ViewSpec("inspector", "Inspector", InspectorView),
    ViewSpec("history", "Run history", HistoryPanel.create),
)


def view_keys() -> list[str]:
    return [v.key for v in VIEWS]
