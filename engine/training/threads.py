"""How many CPU threads a training step uses, chosen by measuring the steps themselves.

A CPU step runs its operators on a pool of threads that meet at a barrier after each one. When another
program keeps one core busy, the thread that shares that core gets a slice of it now and then, and every
barrier waits for that slice: on a 2-core machine beside one busy program, a SimCLR step on 2 threads
took 300 ms at nice 0 and 6 s at nice 10, against 124 ms on 1 thread (``bench/first_minute.py --busy 1``
shows what it does to the first minute). No fixed count is right for every machine and every moment, so
:class:`ThreadTuner` measures: it times the steps at the current count, tries a neighbouring count for a
few steps now and then (sooner when the steps suddenly slow down, the mark of a new competitor), keeps
whichever is faster, and tries less often while the current count keeps winning.

On Linux a probe of more threads is skipped while ``/proc/stat`` shows the other processes using the cores
they would need (such a probe costs seconds a step beside a busy program).
"""

from __future__ import annotations

import os
import statistics
import time
from collections import deque
from collections.abc import Callable


class CpuLoad:
    """The CPU time other processes used since the last call, in cores (``/proc/stat`` minus this
    process's own time); ``None`` where the system does not say (not Linux). Processes at a lower
    priority than this one (a higher nice value: they yield to it) do not count."""

    def __init__(self, stat_path: str = "/proc/stat", self_path: str = "/proc/self/stat"):
        self.stat_path, self.self_path = stat_path, self_path
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.last: tuple[float, float, float] | None = None  # (monotonic, busy ticks of all cores, own ticks)

    def _read(self) -> tuple[float, float] | None:
        try:
            with open(self.stat_path, encoding="ascii") as f:
                cpu = f.readline().split()
            with open(self.self_path, encoding="ascii") as f:
                own = f.read().rsplit(")", 1)[1].split()
            mine = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else 0
        except (OSError, IndexError, ValueError):
            return None
        if len(cpu) < 8 or cpu[0] != "cpu":
            return None
        user, nice, system, _idle, _iowait, irq, softirq, *rest = (float(v) for v in cpu[1:])
        steal = rest[0] if rest else 0.0
        # the "nice" column is the time of processes above nice 0: below this one when it runs at nice 0
        busy = user + system + irq + softirq + steal + (nice if mine > 0 else 0.0)
        return busy, float(own[11]) + float(own[12])  # utime, stime

    def others(self) -> float | None:
        now, got = time.monotonic(), self._read()
        if got is None:
            return None
        last, self.last = self.last, (now, *got)
        if last is None or now - last[0] < 0.2:
            return None
        return max(0.0, ((got[0] - last[1]) - (got[1] - last[2])) / self.tick / (now - last[0]))


def _cores(default: int) -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or default


def spare_cores(sample_s: float = 0.3) -> int | None:
    """The cores of this process that other processes leave idle now (their CPU use sampled over ``sample_s``
    seconds); ``None`` where the system does not say."""
    load = CpuLoad()
    load.others()
    time.sleep(sample_s)
    busy = load.others()
    if busy is None:
        return None
    return max(0, _cores(1) - int(round(busy)))


def _set_torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


class ThreadTuner:
    """Calls ``set_threads(n)`` with the count that makes the steps fastest; feed it every step's time.

    ``max_threads`` is the most it uses (the count the process started with). The first probe comes once
    three steps are timed; ``probe_every_s`` is the first interval between probes after it; it doubles after each probe the current count wins, up to
    ``max_probe_every_s``, and starts over after a switch. A probe runs ``probe_steps`` steps at the other
    count (the first one, the pool's warm-up, not counted) and switches when they are at least
    ``margin`` faster than the current count's recent steps; a probe step over ``abort`` times slower
    ends the probe at once.
    """

    def __init__(self, max_threads: int, set_threads: Callable[[int], None] = _set_torch_threads,
                 clock: Callable[[], float] = time.monotonic, load: CpuLoad | None = None,
                 probe_every_s: float = 6.0, max_probe_every_s: float = 24.0, probe_steps: int = 3,
                 margin: float = 0.08, slowdown: float = 1.75, abort: float = 2.5):
        self.max = max(1, int(max_threads))
        self.current = self.max
        self.set_threads, self.clock, self.load = set_threads, clock, load
        self.base_every, self.max_every = probe_every_s, max_probe_every_s
        self.every = probe_every_s
        self.probe_steps, self.margin, self.slowdown, self.abort = probe_steps, margin, slowdown, abort
        self.recent: deque[float] = deque(maxlen=5)  # seconds a step at the current count, latest last
        self.best: float | None = None  # the best recent median at the current count since it was chosen
        self.probing: int | None = None  # the count a probe is trying
        self.probe_times: list[float] = []
        self.next_probe = clock()  # the first probe as soon as three steps are timed: a busy start shows at once
        self.last_probe = -1e9
        self.switches: list[tuple[int, int]] = []  # (from, to), in order
        self.told = 0  # how many of them news() has returned
        self.others: float | None = None  # the other processes' CPU use at the last look, in cores
        self.primed = False  # the load's window opened for the coming probe
        if load is not None:
            load.others()  # opens the window that start() reads

    @classmethod
    def for_run(cls, device, world: int) -> ThreadTuner | None:
        """A tuner for a training process on ``device``, or None where the count stays as it is: GPUs,
        several processes (each has its own, fixed share), a single thread, or ``SSLWB_TRAIN_THREADS``
        (a fixed count)."""
        fixed = os.environ.get("SSLWB_TRAIN_THREADS", "").strip()
        if fixed:
            try:
                _set_torch_threads(max(1, int(fixed)))
            except ValueError:
                pass
            return None
        if device.type != "cpu" or world > 1:
            return None
        import torch

        n = torch.get_num_threads()
        return cls(n, load=CpuLoad()) if n > 1 else None

    def start(self) -> int:
        """Before the first step: as many threads as the other processes have left cores since this tuner
        was made (the run's set-up), so a busy machine does not cost the first steps; the count."""
        others = self.load.others() if self.load is not None else None
        if others is not None:
            self.others = others
            n = max(1, min(self.max, int(_cores(self.max) - others + 0.5)))
            if n != self.current:
                self.switches.append((self.current, n))
                self.current = n
                self.set_threads(n)
        self.next_probe = self.clock()
        return self.current

    def news(self) -> list[tuple[int, int]]:
        """The changes of count (from, to) since the last call."""
        out = self.switches[self.told:]
        self.told = len(self.switches)
        return out

    def describe(self, old: int, new: int) -> str:
        """A change of count in words, for the run's log."""
        why = "another program is using the CPU" if new < old else "the CPU has room again"
        return (f"{why}: training now uses {new} of {self.max} CPU threads (the faster count at this moment; "
                "it is measured again as the run goes)")

    @property
    def threads(self) -> int:
        return self.probing if self.probing is not None else self.current

    def _median(self) -> float:
        return statistics.median(self.recent)

    def step_done(self, seconds: float) -> None:
        """One training step took ``seconds``; may change the thread count for the next one."""
        if self.probing is not None:
            self._probe_step(seconds)
            return
        self.recent.append(seconds)
        if len(self.recent) < 3:
            return
        med = self._median()
        self.best = med if self.best is None else min(self.best, med)
        now = self.clock()
        slowed = self.current > 1 and med > self.slowdown * self.best and now - self.last_probe >= 1.0
        if slowed:
            self._start_probe(self.current - 1, now)
        elif now >= self.next_probe:
            self._start_probe(self._neighbour(), now)
        elif self.load is not None and not self.primed and now >= self.next_probe - 1.0:
            self.load.others()  # the window the coming probe looks at: the last second, not the whole gap
            self.primed = True

    def _neighbour(self) -> int | None:
        """The count to try next: one more when the other processes leave a core for it, else one fewer."""
        if self.load is not None:
            self.others = self.load.others()
        cores = _cores(self.max)
        more = self.current + 1 if self.current < self.max else None
        if more is not None and (self.others is None or cores - self.others >= more - 0.5):
            return more
        return self.current - 1 if self.current > 1 else None

    def _start_probe(self, count: int | None, now: float) -> None:
        self.last_probe = now
        if count is None or count == self.current:
            self._schedule(won=True, now=now)
            return
        self.probing, self.probe_times = count, []
        self.set_threads(count)

    def _probe_step(self, seconds: float) -> None:
        self.probe_times.append(seconds)
        base = self._median()
        worse = seconds > self.abort * base and len(self.probe_times) > 1
        if len(self.probe_times) <= self.probe_steps and not worse:
            return
        tried, self.probing = self.probing, None
        measured = statistics.median(self.probe_times[1:])
        now = self.clock()
        if not worse and measured < (1 - self.margin) * base:
            self.switches.append((self.current, tried))
            self.current = tried
            self.recent.clear()
            self.recent.extend(self.probe_times[1:])
            self.best = None
            self._schedule(won=False, now=now)
        else:
            self.set_threads(self.current)
            self.best = None  # the current count's speed now, whatever slowed it, is the new reference
            self._schedule(won=True, now=now)

    def _schedule(self, won: bool, now: float) -> None:
        self.primed = False
        self.every = min(self.max_every, self.every * 2) if won else self.base_every
        self.next_probe = now + self.every


__all__ = ["ThreadTuner", "CpuLoad", "spare_cores"]
