"""Small blocking jobs (file reads of run folders) on a thread, with the answer back on the GUI thread.

The callbacks have the shape of :meth:`app.common.process_client.RequestClient.request`'s: ``on_done(value)``
or ``on_error({"message", "path", "traceback"})``."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import QObject, Signal

from app.common.process_client import call_safely

_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sslwb-io")


class _Bridge(QObject):
    done = Signal(object, object)  # (callback, its argument)

    def __init__(self):
        super().__init__()
        self.done.connect(lambda fn, arg: call_safely(fn, arg))


_bridge: _Bridge | None = None


def run_in_thread(fn: Callable, *args, on_done: Callable | None = None, on_error: Callable | None = None) -> None:
    """Run ``fn(*args)`` on an I/O thread; call ``on_done(value)`` or ``on_error(error)`` on the GUI thread."""
    global _bridge
    if _bridge is None:
        _bridge = _Bridge()  # created on the GUI thread (the first caller)

    def job():
        try:
            value = fn(*args)
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            if on_error is not None:
                _bridge.done.emit(on_error, {"message": f"{type(exc).__name__}: {exc}", "path": "",
                                             "traceback": traceback.format_exc()})
            return
        if on_done is not None:
            _bridge.done.emit(on_done, value)

    _pool.submit(job)
