"""A Qt client of a request/response helper process (``engine.worker.service_main`` by default).

``request(name, args, on_result=..., on_error=..., on_progress=...)`` sends a request with a fresh
id and returns it; the answers come back on the GUI thread as callbacks and as the signals
``result``, ``error``, ``progress`` and ``cancelled``. A QTimer drains the response queue in
small time slices, so a burst of answers never blocks the event loop. When the process dies,
every outstanding request fails with a message saying so, ``died`` is emitted, and the process
is started again (a few times at most) so the window stays usable.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer, Signal

from app.child_process import stop_child


def describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class _Pending:
    name: str
    on_result: Callable | None = None
    on_error: Callable | None = None
    on_progress: Callable | None = None
    on_cancelled: Callable | None = None
    sent: float = 0.0


class WorkerClient(QObject):
    ready = Signal(dict)  # the process finished its start-up (torch imported)
    result = Signal(int, object)
    error = Signal(int, object)  # dict: message, path, traceback
    progress = Signal(int, object)  # engine.messages.Progress
    cancelled = Signal(int)
    died = Signal(str)  # a sentence for the user
    restarted = Signal()

    MAX_RESTARTS = 3  # within RESTART_WINDOW_S
    RESTART_WINDOW_S = 120.0

    def __init__(self, target: Callable | None = None, parent: QObject | None = None, nice: int | None = None,
                 poll_ms: int = 15, budget_ms: float = 6.0, name: str = "engine helper"):
        super().__init__(parent)
        if target is None:
            from engine.worker import service_main

            target = service_main
        self._target = target
        # helper processes yield the CPU to the window (SSLWB_NICE overrides, e.g. 0 in tests)
        self._nice = nice if nice is not None else int(os.environ.get("SSLWB_NICE", 5))
        self._budget = budget_ms / 1000.0
        self._name = name
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._proc = None
        self._req = self._resp = None
        self._ready = False
        self._stopping = False
        self._restarts: list[float] = []
        self._last_check = 0.0
        self.ready_info: dict = {}
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._drain)

    # -- life cycle --------------------------------------------------------------------------
    @property
    def is_ready(self) -> bool:
        return self._ready

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        self._req, self._resp = ctx.Queue(), ctx.Queue()
        self._proc = ctx.Process(target=self._target, args=(self._req, self._resp, self._nice), daemon=True,
                                 name="sslwb-service")
        self._proc.start()
        self._ready = False
        self._stopping = False
        self._timer.start()

    def stop(self, timeout: float = 2.0) -> None:
        """End the process (politely, then firmly)."""
        self._stopping = True
        self._timer.stop()
        proc = self._proc
        if proc is None:
            return
        stop_child(proc, self._req, timeout)
        for q in (self._req, self._resp):
            try:
                q.cancel_join_thread()
                q.close()
            except (OSError, ValueError, AttributeError):
                pass
        self._proc = None

    # -- requests ----------------------------------------------------------------------------
    def request(self, name: str, args: dict | None = None, on_result: Callable | None = None,
                on_error: Callable | None = None, on_progress: Callable | None = None,
                on_cancelled: Callable | None = None) -> int:
        rid = next(self._ids)
        self._pending[rid] = _Pending(name, on_result, on_error, on_progress, on_cancelled, time.monotonic())
        if self._proc is None:
            self.start()
        try:
            self._req.put((rid, name, args or {}))
        except (OSError, ValueError) as exc:
            err = {"message": f"cannot reach the {self._name}: {exc}", "path": "", "traceback": ""}
            QTimer.singleShot(0, self, lambda: self._finish(rid, "error", err))
        return rid

    def cancel(self, rid: int) -> None:
        if rid in self._pending and self._req is not None:
            try:
                self._req.put((0, "cancel", {"id": rid}))
            except (OSError, ValueError):
                pass

    def pending(self, name: str | None = None) -> list[int]:
        return [rid for rid, p in self._pending.items() if name is None or p.name == name]

    # -- answers -----------------------------------------------------------------------------
    def _drain(self) -> None:
        if self._resp is None:
            return
        end = time.perf_counter() + self._budget
        while time.perf_counter() < end:
            try:
                kind, rid, payload = self._resp.get_nowait()
            except queue.Empty:
                break
            except (EOFError, OSError, ValueError):
                break
            self._dispatch(kind, rid, payload)
        now = time.monotonic()
        if now - self._last_check > 0.3:
            self._last_check = now
            if self._proc is not None and not self._proc.is_alive() and not self._stopping:
                self._on_death()

    def _dispatch(self, kind: str, rid: int, payload) -> None:
        if kind == "ready":
            self._ready = True
            self.ready_info = payload or {}
            self.ready.emit(self.ready_info)
            return
        if kind == "progress":
            p = self._pending.get(rid)
            if p is not None and p.on_progress is not None:
                p.on_progress(payload)
            self.progress.emit(rid, payload)
            return
        self._finish(rid, kind, payload)

    def _finish(self, rid: int, kind: str, payload) -> None:
        p = self._pending.pop(rid, None)
        if kind == "result":
            if p is not None and p.on_result is not None:
                p.on_result(payload)
            self.result.emit(rid, payload)
        elif kind == "error":
            if p is not None and p.on_error is not None:
                p.on_error(payload)
            self.error.emit(rid, payload)
        elif kind == "cancelled":
            if p is not None and p.on_cancelled is not None:
                p.on_cancelled()
            self.cancelled.emit(rid)

    def _on_death(self) -> None:
        # hand over what it still managed to say
        while True:
            try:
                kind, rid, payload = self._resp.get_nowait()
            except (queue.Empty, EOFError, OSError, ValueError):
                break
            self._dispatch(kind, rid, payload)
        code = self._proc.exitcode if self._proc is not None else None
        text = f"The {self._name} process {describe_exit(code)}"
        for rid in list(self._pending):
            self._finish(rid, "error", {"message": f"{text} while answering this request; it has been "
                                                   "restarted, try again", "path": "", "traceback": ""})
        self._timer.stop()
        self._proc = None
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < self.RESTART_WINDOW_S]
        if len(self._restarts) < self.MAX_RESTARTS:
            self._restarts.append(now)
            self.died.emit(f"{text}; restarting it.")
            self.start()
            self.restarted.emit()
        else:
            self.died.emit(f"{text} again; it was restarted {self.MAX_RESTARTS} times in a short while and is "
                           "left stopped. Save your config and restart the workbench.")
