"""The window's client of the service process (``engine.worker.service_main``): catalogue, config
validation, dataset loading for the data view, pretext previews. A :class:`app.common.process_client.RequestClient`
that restarts the process at once when it dies (the window needs its catalogue and previews)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject

from app.common.process_client import RequestClient, describe_exit

__all__ = ["WorkerClient", "describe_exit"]


class WorkerClient(RequestClient):
    LABEL = "engine helper"
    PROCESS_NAME = "sslwb-service"
    RESTART = "now"
    DEFAULT_NICE = 5

    def __init__(self, parent: QObject | None = None, *, target: Callable | None = None, nice: int | None = None,
                 budget_ms: float = 6.0, name: str | None = None):
        super().__init__(parent, nice=nice, budget_ms=budget_ms)
        if target is None:
            from engine.worker import service_main

            target = service_main
        self._target = target
        if name:
            self.LABEL = name

    def _spawn_args(self, requests, messages):
        return self._target, (requests, messages, self._nice), {}
