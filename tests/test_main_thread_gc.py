"""The window collects Python's cyclic garbage in its main thread only (app.common.main_thread_gc)."""

import gc
import threading
import weakref

from app.common.main_thread_gc import MainThreadGC


def test_cycles_are_collected_by_the_main_thread_timer_and_collection_is_given_back(qtbot):
    was = gc.isenabled()
    guard = MainThreadGC(interval_ms=20)
    try:
        assert not gc.isenabled()  # no collection in whatever thread allocates next
        freed_in_main = []

        class Node:
            def __del__(self):
                freed_in_main.append(threading.current_thread() is threading.main_thread())

        node = Node()
        node.me = node  # a cycle: only the collector frees it
        ref = weakref.ref(node)
        del node
        cycles = []
        for _ in range(2000):  # past the youngest generation's threshold, allocated from another thread
            c = []
            c.append(c)
            cycles.append(c)
        worker = threading.Thread(target=lambda: [[[]] for _ in range(5000)])
        worker.start()
        worker.join()
        assert ref() is not None  # nothing was collected outside the timer
        del cycles, c
        qtbot.waitUntil(lambda: ref() is None, timeout=5000)
        assert freed_in_main == [True]
    finally:
        guard.stop()
    assert gc.isenabled() == was
