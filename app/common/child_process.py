"""Ending the window's helper processes (service, analysis, training) the same way."""

from __future__ import annotations


def stop_child(proc, requests, timeout: float, goodbye=None) -> None:
    """Ask ``proc`` to end (``goodbye``, by default ``None``, on its request queue), wait ``timeout`` s,
    then terminate, then kill."""
    try:
        requests.put(goodbye)
    except (OSError, ValueError, AttributeError):
        pass  # the queue is already closed: go straight to waiting
    proc.join(timeout)
    for end in (proc.terminate, proc.kill):
        if not proc.is_alive():
            return
        end()
        proc.join(1.0)
