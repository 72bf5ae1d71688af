"""Small blocking jobs (file reads of run folders) on a thread, with the answer back on the GUI thread."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import QObject, Signal

_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sslwb-io")


class _Bridge(QObject):
    done = Signal(object, object, object)  # (callback, value, error)

    def __init__(self):
        super().__init__()
        self.done.connect(self._deliver)

    @staticmethod
    def _deliver(callback, value, error) -> None:
        try:
            callback(value, error)
        except RuntimeError as exc:  # the receiving widget was closed meanwhile
            if "already deleted" not in str(exc):
                raise


_bridge: _Bridge | None = None


def run_in_thread(fn: Callable, *args, on_done: Callable | None = None, on_error: Callable | None = None) -> None:
    """Run ``fn(*args)`` on an I/O thread; call ``on_done(value)`` or ``on_error(text)`` on the GUI thread."""
    global _bridge
    if _bridge is None:
        _bridge = _Bridge()  # created on the GUI thread (the first caller)

    def finish(value, error):
        if error is None:
            if on_done is not None:
                on_done(value)
        elif on_error is not None:
            on_error(error)

    def job():
        try:
            value = fn(*args)
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            _bridge.done.emit(finish, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
            return
        _bridge.done.emit(finish, value, None)

    _pool.submit(job)
