"""The window's views, in tab order: key (``main.py --view KEY``), tab title, factory.

To add a view, write one module with a ``QWidget`` that also derives from ``app.common.view.View`` and
takes the ``ViewContext`` (see app/view.py), and add one line here.
"""

from __future__ import annotations

from app.common.view import ViewSpec
from app.curves.panel import CurvesPanel
from app.data.panel import DataPanel
from app.history.panel import HistoryPanel
from app.inspector.view import InspectorView
from app.map.view import EmbeddingView
from app.preview.panel import PreviewPanel
from app.run.panel import RunPanel

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
