"""The "Inspector" view of the workbench window (a plugin: ``create_view(window)``)."""

from __future__ import annotations

from app.widgets.embedding import shared_client
from app.widgets.inspector_panel import InspectorPanel


class InspectorView(InspectorPanel):
    def __init__(self, window):
        super().__init__(shared_client(window))
        history = getattr(window, "history", None)
        if history is not None:
            self.roots_provider = history.all_roots
        self.statusMessage.connect(lambda t: window.statusBar().showMessage(t, 8000))

    def is_ready(self) -> bool:
        tab = self.tabs.currentWidget()
        return getattr(tab, "request_id", None) is None


def create_view(window) -> InspectorView:
    return InspectorView(window)
