"""Python's cyclic garbage collection in the window's main thread only.

Left alone, the collector runs in whichever thread happens to allocate when a generation fills up:
in the window process that may be a reader thread of a helper process. A dead widget collected there
is destroyed outside the GUI thread, where Qt takes its lock and then waits for the GIL, while the
GUI thread holds the GIL and waits for that lock: the window hangs. So the window turns the automatic
collector off and runs the same generational collections from a timer in the main thread.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class MainThreadGC(QObject):
    """Collect each generation when its count passes Python's own threshold, checked every
    ``interval_ms`` in the main thread. :meth:`stop` gives collection back to Python."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = 500):
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        self.was_enabled = gc.isenabled()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)
        self.timer.start()

    def check(self) -> None:
        counts = gc.get_count()
        for generation in (2, 1, 0):  # the oldest due generation (collecting it collects the younger)
            if counts[generation] > self.thresholds[generation]:
                gc.collect(generation)
                return

    def stop(self) -> None:
        self.timer.stop()
        if self.was_enabled:
            gc.enable()
