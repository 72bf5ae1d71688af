"""The window's handles on its helper processes: one base that owns spawning, reading, death and restart.

:class:`ProcessClient` starts one child (``multiprocessing`` spawn, or a thread of this process with
``in_process=True``) with a request queue and a message queue. A reader thread takes the child's
messages off the queue (unpickling big arrays off the GUI thread) and notices when the child dies;
the GUI thread handles them in time-boxed slices (``budget_ms``), so a burst never blocks the event
loop. A death is reported once as ``died(str)`` (a sentence for the user), and the child is started
again as the subclass's ``RESTART`` policy says (``restarted`` then). :meth:`shutdown` ends it politely,
then firmly (:func:`app.common.child_process.stop_child`).

:class:`RequestClient` adds the request/response protocol of :mod:`engine.rpc`::

    rid = client.request("map", {"run_dir": d}, kind="map", on_progress=..., on_partial=...,
                         on_done=..., on_error=..., on_cancelled=...)
    client.cancel(rid)

Callbacks run on the GUI thread: ``on_progress(Progress)`` (``.done``, ``.total``, ``.detail``, ``.task``),
``on_partial(dict)``, then one of ``on_done(result)``, ``on_error(dict: message, path, traceback)`` or
``on_cancelled()``; ``on_reply(reply)`` sees every typed reply. A newer request of the same ``kind``
cancels the older one, whose callbacks never run after that; :meth:`cancel` runs ``on_cancelled`` at once
and no other callback of that request after it. Replies of requests no longer pending are dropped here,
so panels need no stale-id checks of their own.

:class:`app.common.worker_client.WorkerClient` (service), :class:`app.common.analysis_client.AnalysisClient` and
:class:`app.common.engine_client.EngineClient` (training; messages -> Qt signals) are its subclasses.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

from app.common.child_process import stop_child
from engine.rpc import Error, Request

_DIED = object()  # the reader's note that the child has ended


def describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def call_safely(fn: Callable, *args) -> None:
    """Run a callback; an exception is reported (``sys.excepthook``) without stopping the caller, and one
    about a receiving widget already deleted (closed meanwhile) is ignored."""
    try:
        fn(*args)
    except RuntimeError as exc:
        if "already deleted" not in str(exc):
            sys.excepthook(*sys.exc_info())
    except Exception:  # noqa: BLE001 - one panel's bug must not stop the others' replies
        sys.excepthook(*sys.exc_info())


class _ThreadChild:
    """A child that runs as a thread of this process (``in_process``): the same target, plain queues."""

    def __init__(self, target, args, kwargs):
        self.thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True, name="sslwb-child")
        self.pid = os.getpid()

    def start(self):
        self.thread.start()

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    @property
    def exitcode(self):
        return None if self.thread.is_alive() else 0

    def join(self, timeout=None):
        self.thread.join(timeout)

    def terminate(self):  # a thread cannot be ended from outside: it ends on the goodbye message
        pass

    kill = terminate


class ProcessClient(QObject):
    """One helper child: spawn, read, death, restart, shutdown. Subclasses say what to run
    (:meth:`_spawn_args`) and what to do with each message (:meth:`_handle`)."""

    died = Signal(str)  # the child ended unexpectedly: a sentence for the user
    restarted = Signal()  # ... and was started again
    _wake = Signal()  # reader thread -> GUI thread: messages are waiting

    LABEL = "helper"  # in sentences: "The {LABEL} process ..."
    PROCESS_NAME = "sslwb-helper"
    RESTART = "now"  # after a death: "now", "on_request" (with the next request) or "never"
    MAX_RESTARTS = 3  # within RESTART_WINDOW_S
    RESTART_WINDOW_S = 120.0
    DEFAULT_NICE = 5
    NICE_ENV = ""  # the variable that sets this kind's priority alone (SSLWB_NICE sets every kind's)

    def __init__(self, parent: QObject | None = None, *, nice: int | None = None, budget_ms: float = 6.0,
                 in_process: bool = False):
        super().__init__(parent)
        # helper processes yield the CPU to the window (SSLWB_NICE overrides, e.g. 0 in tests)
        own = os.environ.get(self.NICE_ENV, "") if self.NICE_ENV else ""
        self._nice = nice if nice is not None else int(own or os.environ.get("SSLWB_NICE", self.DEFAULT_NICE))
        self._budget = budget_ms / 1000.0
        self.in_process = in_process
        self._proc = None
        self._req_q = self._resp_q = None
        self._inbox: collections.deque = collections.deque()
        self._gen = 0  # which child the inbox's messages come from (a restart starts a new one)
        self._stop_reader = threading.Event()
        self._wake_pending = False
        self._stopping = False
        self._restarts: list[float] = []
        self._later = QTimer(self)  # the next slice of a burst
        self._later.setSingleShot(True)
        self._later.setInterval(1)
        self._later.timeout.connect(self._drain)
        self._wake.connect(self._drain)

    # -- what subclasses provide ----------------------------------------------------------------
    def _spawn_args(self, requests, messages) -> tuple[Callable, tuple, dict]:
        """The child's target and its arguments, given its two queues."""
        raise NotImplementedError

    def _handle(self, msg) -> None:
        """One message of the child, on the GUI thread."""
        raise NotImplementedError

    def _child_ended(self, code: int | None) -> None:
        """The child ended without being asked to: report it (default: :meth:`_report_death`)."""
        self._report_death(code)

    # -- life cycle -------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _spawn(self) -> None:
        """Start a fresh child (the previous one must be gone) and its reader thread."""
        if self.in_process:
            self._req_q, self._resp_q = queue.Queue(), queue.Queue()
            target, args, kwargs = self._spawn_args(self._req_q, self._resp_q)
            self._proc = _ThreadChild(target, args, kwargs)
        else:
            ctx = mp.get_context("spawn")
            self._req_q, self._resp_q = ctx.Queue(), ctx.Queue()
            target, args, kwargs = self._spawn_args(self._req_q, self._resp_q)
            self._proc = ctx.Process(target=target, args=args, kwargs=kwargs, daemon=True, name=self.PROCESS_NAME)
        self._proc.start()
        self._stopping = False
        self._gen += 1
        self._stop_reader = threading.Event()
        threading.Thread(target=self._read, args=(self._gen, self._resp_q, self._proc, self._stop_reader),
                         name=f"{self.PROCESS_NAME}-reader", daemon=True).start()

    def shutdown(self, timeout: float = 2.0, goodbye=None) -> None:
        """End the child: ``goodbye`` (default ``None``) on its request queue, wait ``timeout`` s (its
        messages keep being read meanwhile, so it never blocks on a full pipe), then terminate, then kill.
        Messages not handled yet are dropped."""
        self._stopping = True
        proc = self._proc
        if proc is not None:
            stop_child(proc, self._req_q, timeout, goodbye)
        self._release()

    def _release(self) -> None:
        self._stop_reader.set()
        self._gen += 1  # whatever the old reader still posts is ignored
        self._inbox.clear()
        if not self.in_process:
            for q in (self._req_q, self._resp_q):
                try:
                    q.cancel_join_thread()
                    q.close()
                except (OSError, ValueError, AttributeError):
                    pass
        self._proc = None
        self._req_q = self._resp_q = None

    def _send(self, item) -> bool:
        if self._req_q is None or not self.alive:
            return False
        try:
            self._req_q.put(item)
            return True
        except (OSError, ValueError):
            return False

    # -- reading ----------------------------------------------------------------------------------
    def _read(self, gen: int, q, proc, stop: threading.Event) -> None:
        """The reader thread: every message goes to the inbox; the child's end is noted once."""
        while not stop.is_set():
            try:
                msg = q.get(timeout=0.2)
            except queue.Empty:
                if proc.is_alive() or stop.is_set():
                    continue
                while True:  # what it managed to send before it ended
                    try:
                        self._post(gen, q.get_nowait())
                    except (queue.Empty, EOFError, OSError, ValueError):
                        break
                self._post(gen, _DIED)
                return
            except (EOFError, OSError, ValueError, TypeError):
                if not stop.is_set():
                    self._post(gen, _DIED)
                return
            self._post(gen, msg)

    def _post(self, gen: int, msg) -> None:
        self._inbox.append((gen, msg))
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._wake.emit()
            except RuntimeError:  # the client was deleted: nobody is listening any more
                pass

    def _drain(self) -> None:
        """Handle waiting messages for at most ``budget_ms``; the rest in the next slice."""
        self._wake_pending = False  # before reading: a message posted from now on wakes us again
        end = time.perf_counter() + self._budget
        while self._inbox and time.perf_counter() < end:
            gen, msg = self._inbox.popleft()
            if gen != self._gen:
                continue
            if msg is _DIED:
                proc = self._proc
                if proc is not None:
                    proc.join(0.1)
                code = proc.exitcode if proc is not None else None
                self._release()
                if not self._stopping:
                    self._child_ended(code)
                continue
            self._handle(msg)
        if self._inbox:
            self._later.start()

    def drain_now(self) -> None:
        """Handle every message read so far (tests and shutdown paths)."""
        while self._inbox:
            self._drain()

    # -- death ------------------------------------------------------------------------------------
    def _report_death(self, code: int | None) -> None:
        what = f"The {self.LABEL} process stopped unexpectedly ({describe_exit(code)})"
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < self.RESTART_WINDOW_S]
        if self.RESTART == "now" and len(self._restarts) < self.MAX_RESTARTS:
            self._restarts.append(now)
            self._child_lost(f"{what} while answering this request; it has been restarted, try again")
            self.died.emit(f"{what}; restarting it.")
            self._restart()
            self.restarted.emit()
        elif self.RESTART == "on_request":
            self._child_lost(f"{what} while answering this request; it restarts with the next request, "
                             "try again")
            self.died.emit(f"{what}; it restarts with the next request.")
        else:
            self._child_lost(f"{what} while answering this request")
            tail = (f" again; it was restarted {self.MAX_RESTARTS} times in a short while and is left stopped. "
                    "Save your config and restart the workbench." if self.RESTART == "now" else ".")
            self.died.emit(what + tail)

    def _restart(self) -> None:
        self._spawn()

    def _child_lost(self, text: str) -> None:
        """Hook: the child died with ``text`` for whatever it still owed (requests fail with it)."""


@dataclass
class _Call:
    op: str
    kind: str | None
    on_progress: Callable | None
    on_partial: Callable | None
    on_done: Callable | None
    on_error: Callable | None
    on_cancelled: Callable | None
    on_reply: Callable | None

    def deliver(self, reply) -> None:
        if self.on_reply is not None:
            call_safely(self.on_reply, reply)
        fn = {"progress": self.on_progress, "partial": self.on_partial, "result": self.on_done,
              "error": self.on_error, "cancelled": self.on_cancelled}.get(reply.kind)
        if fn is None:
            return
        if reply.kind == "progress":
            call_safely(fn, reply)
        elif reply.kind == "cancelled":
            call_safely(fn)
        else:
            call_safely(fn, reply.data)


class RequestClient(ProcessClient):
    """A client of an :mod:`engine.rpc` server process: requests with per-request callbacks."""

    ready = Signal(dict)  # the child finished its start-up (its Status "ready")
    stateChanged = Signal(str)  # "stopped", "starting", "ready", "warm", "crashed"

    def __init__(self, parent: QObject | None = None, **kw):
        super().__init__(parent, **kw)
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}
        self._ready = False
        self.ready_info: dict = {}
        self.state = "stopped"
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    @property
    def is_ready(self) -> bool:
        return self._ready

    def start(self) -> None:
        """Start the child unless it runs (a request starts it too)."""
        if self.alive:
            return
        self._ready = False
        self._set_state("starting")
        self._spawn()

    def _restart(self) -> None:
        self.start()

    def shutdown(self, timeout: float = 2.0, goodbye=None) -> None:
        super().shutdown(timeout, goodbye)
        self._ready = False
        self._calls.clear()
        self._set_state("stopped")

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    # -- requests ---------------------------------------------------------------------------------
    def request(self, op: str, args: dict | None = None, *, kind: str | None = None,
                on_progress: Callable | None = None, on_partial: Callable | None = None,
                on_done: Callable | None = None, on_error: Callable | None = None,
                on_cancelled: Callable | None = None, on_reply: Callable | None = None) -> int:
        """Send ``op`` with ``args``; returns the request id. A newer request of the same ``kind`` cancels
        the older one (its callbacks never run after that)."""
        if kind:
            for old in [rid for rid, c in self._calls.items() if c.kind == kind]:
                self._calls.pop(old)
                self._send(Request(0, "cancel", {"id": old}))
        rid = next(self._ids)
        self._calls[rid] = _Call(op, kind, on_progress, on_partial, on_done, on_error, on_cancelled, on_reply)
        if not self.alive:
            self.start()
        if not self._send(Request(rid, op, dict(args or {}), kind or "")):
            err = Error(rid, op, f"cannot reach the {self.LABEL} process; try again")
            QTimer.singleShot(0, self, lambda: self._handle(err))
        return rid

    def cancel(self, rid: int | None) -> None:
        """Cancel a pending request: its ``on_cancelled`` runs now, none of its other callbacks later."""
        call = self._calls.pop(rid, None) if rid is not None else None
        if call is None:
            return
        self._send(Request(0, "cancel", {"id": int(rid)}))
        if call.on_cancelled is not None:
            call_safely(call.on_cancelled)

    def pending(self, op: str | None = None) -> list[int]:
        return [rid for rid, c in self._calls.items() if op is None or c.op == op]

    # -- replies ----------------------------------------------------------------------------------
    def _handle(self, reply) -> None:
        if reply.kind == "status":
            self._on_status(reply.data or {})
            return
        call = self._calls.get(reply.id)
        if call is None:  # cancelled, superseded, or owed by a child that died
            return
        if reply.terminal:
            del self._calls[reply.id]
        call.deliver(reply)

    def _on_status(self, data: dict) -> None:
        state = data.get("state")
        if state == "ready":
            self._ready = True
            self.ready_info = data
            self._set_state("ready")
            self.ready.emit(data)
        elif state:
            self._set_state(state)

    def _child_lost(self, text: str) -> None:
        self._ready = False
        self._set_state("crashed")
        calls, self._calls = self._calls, {}
        for rid, call in calls.items():
            call.deliver(Error(rid, call.op, text))
