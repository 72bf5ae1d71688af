"""The window's client of the analysis process (:mod:`engine.analysis`): maps, retrieval, evaluation,
exports. Never imports torch or umap.

    client = AnalysisClient(window)      # spawns the process; it warms UMAP up in the background
    rid = client.request("map", {"run_dir": d, "projection": "umap"}, kind="map", on_partial=..., on_done=...)
    client.cancel(rid)

A :class:`app.common.process_client.RequestClient`: if the process dies, pending requests fail with a message
saying so, ``died`` is emitted (``state`` is ``"crashed"``) and the next request starts a fresh process.
"""

from __future__ import annotations

from PySide6.QtCore import QObject

from app.common.process_client import RequestClient


class AnalysisClient(RequestClient):
    LABEL = "analysis"
    PROCESS_NAME = "ssl-workbench-analysis"
    RESTART = "on_request"

    def __init__(self, parent: QObject | None = None, *, warm: bool = True, device: str = "cpu",
                 in_process: bool = False, runs_roots: tuple = (), start: bool = True, budget_ms: float = 6.0):
        super().__init__(parent, nice=0, budget_ms=budget_ms, in_process=in_process)  # serve() sets its own
        self.warm_up = warm
        self.device = device
        self.runs_roots = tuple(str(r) for r in runs_roots)
        if start:
            self.start()

    @property
    def is_warm(self) -> bool:
        return self.state == "warm"

    def _spawn_args(self, requests, messages):
        from engine.analysis import serve

        return serve, (requests, messages), {"device": self.device, "warm": self.warm_up,
                                             "runs_roots": self.runs_roots}
