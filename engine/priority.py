"""The CPU priority of a helper process (training, service, analysis), the same for all its threads.

Linux keeps a nice value per thread: ``os.nice`` alone changes only the calling thread, so a process that
already runs a thread pool (torch's, after a warm-up step) would keep its workers at the old priority
while its main thread yields. :func:`lower_priority` renices every thread of the process; threads started
later inherit the value of the thread that starts them.
"""

from __future__ import annotations

import os


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except (OSError, ValueError):
        return []


def lower_priority(nice: int, batch: bool = False) -> None:
    """Raise the nice value of every thread of this process by ``nice`` (0: leave it). ``batch``: also mark
    them CPU-bound (Linux ``SCHED_BATCH``: their wake-ups do not preempt other programs, such as the
    window). Needs no privileges; a system that refuses keeps the priority it had."""
    nice = int(nice)
    tids = _threads() if hasattr(os, "setpriority") else []
    if nice > 0:
        if tids:
            for tid in tids:
                try:
                    os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
                except OSError:  # the thread ended meanwhile, or a system that refuses
                    pass
        elif hasattr(os, "nice"):
            try:
                os.nice(nice)  # one value for the whole process elsewhere (macOS)
            except OSError:
                pass
    if batch and hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_BATCH"):
        for tid in tids or [0]:
            try:
                os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
            except OSError:
                pass


def thread_nices() -> dict[int, int]:
    """Every thread's nice value (Linux), for tests and diagnostics."""
    out = {}
    for tid in _threads():
        try:
            out[tid] = os.getpriority(os.PRIO_PROCESS, tid)
        except OSError:
            pass
    return out


__all__ = ["lower_priority", "thread_nices"]
