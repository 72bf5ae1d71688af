"""One request/response layer for the engine's helper processes (the service and the analysis process).

Nothing here imports Qt or torch. A front end sends :class:`Request` objects on a queue; the process
answers each with a stream of typed replies on another queue:

- :class:`Progress`  (also an :class:`engine.messages.Progress`: task, done, total, detail), any number;
- :class:`Partial`   a stage of the answer (``data`` a dict; a map's stages carry a
  :class:`engine.messages.MapStage` under ``"stage"``), any number;
- then exactly one of :class:`Result` (``data``: the op's return value), :class:`Error` (``message``,
  ``path``, ``traceback``) or :class:`Cancelled`.

Id 0 carries unprompted :class:`Status` replies (``{"state": "ready" | "warm", ...}``). Every reply has
``id``, ``op``, ``kind`` (the lowercase name: ``"progress"``, ``"partial"``, ...) and ``data``.

A process serves one *handler*: an object whose ``op_<name>(job)`` methods answer the op ``<name>``
(see :class:`Handler`). :class:`Dispatcher` runs them in lanes (one thread each, ``Handler.LANES``
maps an op to its lane) so a minute-long request never holds a quick one back; ops in
``Handler.INLINE`` run at once on the reading thread (liveness: ``ping``). A request is cancelled by
the op ``cancel`` with ``{"id": N}``, or superseded by a newer request of the same ``kind``.
:func:`serve_requests` is the loop every helper process runs.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from engine import messages as M

STATUS_ID = 0


# -- the envelope ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    id: int
    op: str
    args: dict = field(default_factory=dict)
    kind: str = ""  # requests of one (non-empty) kind supersede each other: the newest wins


class Reply:
    """Base of the typed replies: ``id``, ``op``, ``kind`` and ``data`` on all of them."""

    kind: ClassVar[str] = "reply"
    terminal: ClassVar[bool] = False  # the last reply of its request
    id: int
    op: str


@dataclass(frozen=True, kw_only=True)
class Progress(M.Progress, Reply):
    id: int
    op: str = ""
    kind: ClassVar[str] = "progress"

    @property
    def data(self) -> dict:
        return {"task": self.task, "done": self.done, "total": self.total, "detail": self.detail}


@dataclass(frozen=True)
class Partial(Reply):
    id: int
    op: str
    data: dict = field(default_factory=dict)
    kind: ClassVar[str] = "partial"

    @property
    def stage(self):
        return self.data.get("stage")


@dataclass(frozen=True)
class Result(Reply):
    id: int
    op: str
    data: Any = None
    kind: ClassVar[str] = "result"
    terminal: ClassVar[bool] = True


@dataclass(frozen=True)
class Error(Reply):
    """A failed request. ``message`` is one line a person can act on; ``path`` names a config field."""

    id: int
    op: str
    message: str
    path: str = ""
    traceback: str = ""
    kind: ClassVar[str] = "error"
    terminal: ClassVar[bool] = True

    @property
    def data(self) -> dict:
        return {"message": self.message, "path": self.path, "traceback": self.traceback}


@dataclass(frozen=True)
class Cancelled(Reply):
    id: int
    op: str
    superseded_by: int | None = None
    kind: ClassVar[str] = "cancelled"
    terminal: ClassVar[bool] = True

    @property
    def data(self) -> dict:
        return {"superseded_by": self.superseded_by}


@dataclass(frozen=True)
class Status(Reply):
    data: dict
    id: int = STATUS_ID
    op: str = "status"
    kind: ClassVar[str] = "status"


class CancelledError(RuntimeError):
    """Raised inside a handler (by :meth:`Job.check`) when its request was cancelled."""


def error_fields(exc: BaseException) -> tuple[str, str, str]:
    """(message, path, traceback) of an exception: a user's mistake (bad config, missing file, bad
    value) is its own message without a traceback; anything else names its type and keeps the trace."""
    from engine.params import ConfigError

    if isinstance(exc, ConfigError):
        return exc.message, exc.path, ""
    if isinstance(exc, (ValueError, FileNotFoundError, IndexError)):  # DataError is a ValueError
        return str(exc), "", ""
    return f"{type(exc).__name__}: {exc}", "", traceback.format_exc()


# -- a request being served ----------------------------------------------------------------------------
class Job:
    """One request inside the process: its args, a cancel flag and the ways to answer it."""

    def __init__(self, request: Request, emit: Callable[[Reply], None]):
        self.request = request
        self.cancel = threading.Event()
        self._emit = emit

    @property
    def args(self) -> dict:
        return self.request.args

    def progress(self, done: int, total: int, detail: str = "", task: str = "") -> None:
        self._emit(Progress(id=self.request.id, op=self.request.op, task=task or self.request.op,
                            done=int(done), total=int(total), detail=str(detail)))

    def partial(self, data: dict) -> None:
        self._emit(Partial(self.request.id, self.request.op, data))

    def result(self, data: Any) -> None:
        self._emit(Result(self.request.id, self.request.op, data))

    def error(self, message: str, path: str = "", tb: str = "") -> None:
        self._emit(Error(self.request.id, self.request.op, message, path, tb))

    def cancelled(self, superseded_by: int | None = None) -> None:
        self._emit(Cancelled(self.request.id, self.request.op, superseded_by))

    def send(self, kind: str, data: Any = None) -> None:
        """Answer by kind name (``partial``, ``result``, ``error``, ``cancelled``)."""
        data = {} if data is None else data
        if kind == "partial":
            self.partial(data)
        elif kind == "result":
            self.result(data)
        elif kind == "error":
            self.error(data.get("message", ""), data.get("path", ""), data.get("traceback", ""))
        elif kind == "cancelled":
            self.cancelled(data.get("superseded_by"))
        else:
            raise ValueError(f"unknown reply kind {kind!r}")

    def check(self) -> None:
        if self.cancel.is_set():
            raise CancelledError("cancelled")


class Handler:
    """Base of the objects a helper process serves: ``op_<name>(job)`` answers the op ``<name>``.

    An ``op_`` method returns the result (or raises); it may send :meth:`Job.progress` and
    :meth:`Job.partial` before. Adding an op is adding one method (tests may also :meth:`register`
    a function)."""

    LANES: ClassVar[dict] = {}  # op -> lane name; others run in DEFAULT_LANE
    DEFAULT_LANE: ClassVar[str] = "fast"
    INLINE: ClassVar[tuple] = ()  # ops answered at once on the reading thread

    def __init__(self, emit: Callable[[Reply], None]):
        self.emit = emit
        self.extra_ops: dict[str, Callable] = {}

    def register(self, op: str, fn: Callable, lane: str | None = None) -> None:
        """Serve ``op`` with ``fn(job)`` (like an ``op_`` method)."""
        self.extra_ops[op] = fn
        if lane is not None:
            self.LANES = {**self.LANES, op: lane}

    def lane_of(self, op: str) -> str:
        return self.LANES.get(op, self.DEFAULT_LANE)

    def lane_names(self) -> list[str]:
        return list(dict.fromkeys([self.DEFAULT_LANE, *self.LANES.values()]))

    def cancelled_types(self) -> tuple:
        """Exception types that mean "cancelled" (besides :class:`CancelledError`)."""
        return ()

    def handle(self, request: Request, job: Job | None = None) -> None:
        """Run one request synchronously and send its final reply."""
        job = job or Job(request, self.emit)
        fn = self.extra_ops.get(request.op) or getattr(self, f"op_{request.op}", None)
        if fn is None:
            job.error(f"unknown request {request.op!r}")
            return
        try:
            result = fn(job)
            job.check()
            job.result({} if result is None else result)
        except Exception as exc:  # noqa: BLE001 - every failure is answered
            if isinstance(exc, CancelledError) or job.cancel.is_set() or isinstance(exc, self.cancelled_types()):
                job.cancelled()
            else:
                job.error(*error_fields(exc))


# -- lanes and the dispatcher ----------------------------------------------------------------------------
class Lane:
    """One worker thread with its queue of jobs; cancels by id and supersedes by request kind."""

    def __init__(self, handler, name: str):
        self.handler = handler
        self.name = name
        self.pending: collections.deque[Job] = collections.deque()
        self.current: Job | None = None
        self.cv = threading.Condition()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name=f"rpc-{name}", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> None:
        tag = job.request.kind
        with self.cv:
            if tag:
                keep = collections.deque()
                for j in self.pending:
                    if j.request.kind == tag:
                        j.cancelled(superseded_by=job.request.id)
                    else:
                        keep.append(j)
                self.pending = keep
                if self.current is not None and self.current.request.kind == tag:
                    self.current.cancel.set()
            self.pending.append(job)
            self.cv.notify()

    def cancel(self, request_id: int) -> bool:
        with self.cv:
            if self.current is not None and self.current.request.id == request_id:
                self.current.cancel.set()
                return True
            for j in list(self.pending):
                if j.request.id == request_id:
                    self.pending.remove(j)
                    j.cancelled()
                    return True
        return False

    def stop(self) -> None:
        with self.cv:
            self.stopped = True
            if self.current is not None:
                self.current.cancel.set()
            self.cv.notify()

    def _run(self) -> None:
        while True:
            with self.cv:
                while not self.pending and not self.stopped:
                    self.cv.wait()
                if self.stopped:
                    return
                self.current = self.pending.popleft()
            try:
                self.handler.handle(self.current.request, self.current)
            finally:
                with self.cv:
                    self.current = None


class Dispatcher:
    """Routes requests to the handler's lanes; ``cancel`` requests to the lane that holds the id."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.lanes = {name: Lane(handler, name) for name in handler.lane_names()}

    def submit(self, req: Request) -> None:
        if req.op == "cancel":
            rid = int(req.args.get("id", -1))
            for lane in self.lanes.values():
                if lane.cancel(rid):
                    break
            return
        if req.op in self.handler.INLINE:
            self.handler.handle(req)
            return
        name = self.handler.lane_of(req.op)
        lane = self.lanes.get(name)
        if lane is None:  # an op registered at run time with a lane of its own
            lane = self.lanes[name] = Lane(self.handler, name)
        lane.submit(Job(req, self.handler.emit))

    def stop(self, timeout: float = 0.0) -> None:
        for lane in self.lanes.values():
            lane.stop()
        for lane in self.lanes.values():  # let a running job finish its native calls first
            if timeout:
                lane.thread.join(timeout)


# -- the process loop -------------------------------------------------------------------------------------
def put_quietly(q, item) -> None:
    try:
        q.put(item)
    except (OSError, ValueError, EOFError):  # the reader is gone: nothing left to tell
        pass


def exit_child() -> None:
    """In a spawned child: end now. Interpreter finalisation with torch, numba or OpenMP threads loaded
    takes seconds and has nothing left to do (queues are flushed, files closed). In a thread of the
    calling process (tests, ``in_process`` clients) this returns."""
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        os._exit(0)


def serve_requests(requests, replies, make_handler: Callable[[Callable], Handler], join_s: float = 0.0) -> None:
    """Read :class:`Request` objects from ``requests`` and answer them on ``replies`` until ``None`` or a
    ``shutdown`` request (or the parent process dies). ``make_handler(emit)`` builds the handler."""
    import multiprocessing

    handler = make_handler(lambda reply: put_quietly(replies, reply))
    dispatcher = Dispatcher(handler)
    parent = multiprocessing.parent_process()
    try:
        while True:
            try:
                req = requests.get(timeout=1.0)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    break
                continue
            except (EOFError, OSError, KeyboardInterrupt):
                break
            if req is None or getattr(req, "op", "") == "shutdown":
                break
            dispatcher.submit(req)
    finally:
        dispatcher.stop(join_s)
        try:  # deliver what is queued, then leave
            replies.close()
            replies.join_thread()
        except (OSError, ValueError, AttributeError):
            pass
        exit_child()


__all__ = ["Request", "Reply", "Progress", "Partial", "Result", "Error", "Cancelled", "Status", "CancelledError",
           "Job", "Handler", "Lane", "Dispatcher", "serve_requests", "error_fields", "put_quietly", "exit_child"]
