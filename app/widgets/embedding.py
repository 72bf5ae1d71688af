"""The "Embedding map" view of the workbench window (a plugin: ``create_view(window)``).

The window and both analysis views share one analysis process (``window.analysis``): it starts
shortly after the window, warms UMAP up in the background and stops when the window closes.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QEvent, QObject, QTimer

from app.analysis_client import AnalysisClient
from app.widgets.embedding_panel import EmbeddingPanel

START_DELAY_MS = 1500  # let the window show (and its own helper process start) first


class _CloseWatcher(QObject):
    def __init__(self, window, client: AnalysisClient):
        super().__init__(window)
        self.client = client

    def eventFilter(self, obj, ev):  # noqa: N802
        if ev.type() == QEvent.Type.Close and ev.isAccepted():
            QTimer.singleShot(0, self._maybe_stop)
        return False

    def _maybe_stop(self) -> None:
        w = self.parent()
        if w is not None and not w.isVisible():
            self.client.shutdown()


def shared_client(window) -> AnalysisClient:
    """The window's analysis client, made (and scheduled to start) on first use."""
    client = getattr(window, "analysis", None)
    if client is None:
        warm = os.environ.get("SSLWB_ANALYSIS_WARMUP", "1") != "0"  # tests may skip the UMAP warm-up
        client = AnalysisClient(window, start=False, warm=warm)
        window.analysis = client
        window.installEventFilter(_CloseWatcher(window, client))
        # the window is the timer's context: a window closed (and deleted) before it fires cancels it
        QTimer.singleShot(START_DELAY_MS, window, lambda: client.start() if window.isVisible() else None)
    return client


class EmbeddingView(EmbeddingPanel):
    def __init__(self, window):
        super().__init__(shared_client(window))
        self.window_ = window
        self.embedRequested.connect(window.engine.embed)
        self.statusMessage.connect(lambda t: window.statusBar().showMessage(t, 8000))

    def refresh(self) -> None:
        """Live runs of this window's engine take a snapshot with the current weights; any other run
        (finished, or written by a headless job) is mapped from its checkpoint."""
        eng = self.window_.engine
        owned = self.live and eng.active and eng.run_dir and self.run_dir and \
            os.path.abspath(eng.run_dir) == os.path.abspath(self.run_dir)
        if self.live and not owned:
            self.live = False
            super().refresh()
            self.live = True
            return
        super().refresh()

    def is_ready(self) -> bool:
        if not self.run_dir or self.error_shown:
            return True
        return self.current is not None and self.request_id is None and not self.map.animating


def create_view(window) -> EmbeddingView:
    return EmbeddingView(window)
