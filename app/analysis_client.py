"""The GUI's handle on the analysis process (engine/analysis.py): start it, send requests, get replies
as Qt signals on the GUI thread. Never imports torch or umap.

    client = AnalysisClient()            # spawns the process; it warms UMAP up in the background
    rid = client.request("map", on_reply, run_dir=..., projection="umap")
    client.cancel(rid)

``on_reply(reply)`` is called on the GUI thread for every reply of that request (progress,
partial stages, then one of result / error / cancelled). ``replied`` carries every reply too.
If the process dies, pending requests get an ``error`` reply, ``crashed`` is emitted and the
next request starts a fresh process.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import queue
import threading
from collections.abc import Callable

from PySide6.QtCore import QCoreApplication, QObject, Signal

from app.child_process import stop_child
from engine.analysis import Reply, Request

TERMINAL = ("result", "error", "cancelled")


class AnalysisClient(QObject):
    replied = Signal(object)  # Reply
    statusChanged = Signal(str)  # "starting", "ready", "warm", "stopped", "crashed"
    crashed = Signal(str)
    _incoming = Signal(object)

    def __init__(self, parent: QObject | None = None, *, warm: bool = True, device: str = "cpu",
                 in_process: bool = False, runs_roots: tuple = (), start: bool = True):
        super().__init__(parent)
        self.warm_up = warm
        self.device = device
        self.in_process = in_process
        self.runs_roots = tuple(str(r) for r in runs_roots)
        self.state = "stopped"
        self.is_warm = False
        self._ids = itertools.count(1)
        self._callbacks: dict[int, Callable] = {}
        self._ops: dict[int, str] = {}
        self._proc = None
        self._dispatcher = None
        self._req_q = None
        self._rep_q = None
        self._reader: threading.Thread | None = None
        self._stop_reader = threading.Event()
        self._incoming.connect(self._deliver)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        if start:
            self.start()

    # -- life cycle -------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        if self.in_process:
            return self._dispatcher is not None
        return self._proc is not None and self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        if self.alive:
            return
        self._stop_reader = threading.Event()
        self._set_state("starting")
        self.is_warm = False
        if self.in_process:
            from engine.analysis import Dispatcher

            self._rep_q = queue.Queue()
            self._dispatcher = Dispatcher(self._rep_q.put, self.device, self.warm_up, self.runs_roots)
        else:
            from engine.analysis import serve

            ctx = mp.get_context("spawn")
            self._req_q, self._rep_q = ctx.Queue(), ctx.Queue()
            self._proc = ctx.Process(target=serve, args=(self._req_q, self._rep_q),
                                     kwargs={"device": self.device, "warm": self.warm_up,
                                             "runs_roots": self.runs_roots},
                                     name="ssl-workbench-analysis", daemon=True)
            self._proc.start()
        self._reader = threading.Thread(target=self._read, args=(self._rep_q, self._stop_reader),
                                        name="analysis-reader", daemon=True)
        self._reader.start()

    def shutdown(self, timeout: float = 3.0) -> None:
        self._stop_reader.set()
        if self._dispatcher is not None:
            self._dispatcher.stop()
            self._dispatcher = None
        if self._proc is not None:
            proc, self._proc = self._proc, None
            stop_child(proc, self._req_q, timeout)
        self._set_state("stopped")

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.statusChanged.emit(state)

    # -- requests ------------------------------------------------------------------------------------------
    def request(self, op: str, callback: Callable[[Reply], None] | None = None, **args) -> int:
        if not self.alive:
            self.start()
        rid = next(self._ids)
        if callback is not None:
            self._callbacks[rid] = callback
        self._ops[rid] = op
        req = Request(rid, op, args)
        if self.in_process:
            self._dispatcher.submit(req)
        else:
            self._req_q.put(req)
        return rid

    def cancel(self, request_id: int | None) -> None:
        if request_id is None or request_id not in self._ops:
            return
        req = Request(0, "cancel", {"id": int(request_id)})
        if self.in_process and self._dispatcher is not None:
            self._dispatcher.submit(req)
        elif self._req_q is not None and self.alive:
            self._req_q.put(req)

    def pending(self) -> list[int]:
        return list(self._ops)

    # -- replies -------------------------------------------------------------------------------------------
    def _read(self, q, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                reply = q.get(timeout=0.25)
            except queue.Empty:
                if not self.in_process and self._proc is not None and not self._proc.is_alive() \
                        and not stop.is_set():
                    self._incoming.emit(("died", self._proc.exitcode))
                    return
                continue
            except (EOFError, OSError, ValueError):
                return
            self._incoming.emit(reply)

    def _deliver(self, reply) -> None:
        if isinstance(reply, tuple) and reply and reply[0] == "died":
            self._on_died(reply[1])
            return
        if reply.id == 0:
            state = reply.data.get("state")
            if state == "warm":
                self.is_warm = True
            if state:
                self._set_state(state)
            self.replied.emit(reply)
            return
        cb = self._callbacks.get(reply.id)
        if reply.kind in TERMINAL:
            self._callbacks.pop(reply.id, None)
            self._ops.pop(reply.id, None)
        if cb is not None:
            try:
                cb(reply)
            finally:
                self.replied.emit(reply)
        else:
            self.replied.emit(reply)

    def _on_died(self, exitcode) -> None:
        msg = (f"the analysis process stopped unexpectedly (exit code {exitcode}); "
               "it restarts with the next request")
        self._proc = None
        self._set_state("crashed")
        pending = list(self._ops.items())
        self._ops.clear()
        callbacks, self._callbacks = self._callbacks, {}
        for rid, op in pending:
            cb = callbacks.get(rid)
            reply = Reply(rid, op, "error", {"error": msg})
            if cb is not None:
                cb(reply)
            self.replied.emit(reply)
        self.crashed.emit(msg)
