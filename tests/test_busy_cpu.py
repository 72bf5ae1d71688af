"""A training run beside another busy program: the thread count is chosen by the load and by timing the
steps, every thread of a helper process yields the same, snapshots are paced by steps too."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from engine.training.monitor import SnapshotClock
from engine.training.threads import CpuLoad, ThreadTuner


class Machine:
    """A 2-core CPU on a clock: a step's time at each thread count, with and without a busy neighbour
    (the figures measured on this machine: 84 / 131 ms idle, 300 / 124 ms beside one busy program)."""

    IDLE = {2: 0.084, 1: 0.131}
    BUSY = {2: 0.300, 1: 0.124}

    def __init__(self):
        self.now = 0.0
        self.busy = False
        self.threads = 2
        self.steps = {1: 0, 2: 0}

    def set_threads(self, n: int) -> None:
        self.threads = n

    def clock(self) -> float:
        return self.now

    def step(self) -> float:
        t = (self.BUSY if self.busy else self.IDLE)[self.threads]
        self.now += t
        self.steps[self.threads] += 1
        return t


def run(tuner: ThreadTuner, m: Machine, seconds: float) -> None:
    end = m.now + seconds
    while m.now < end:
        tuner.step_done(m.step())


def test_tuner_keeps_every_core_on_an_idle_machine_and_probes_rarely():
    m = Machine()
    t = ThreadTuner(2, set_threads=m.set_threads, clock=m.clock)
    run(t, m, 120.0)
    assert t.current == 2 and not t.switches
    # the probes of 1 thread: a first one at once, then less and less often (6, 12, 24, 24 ... s)
    assert m.steps[1] <= 4 * 8, m.steps
    assert m.steps[1] / (m.steps[1] + m.steps[2]) < 0.03


def test_tuner_moves_to_one_thread_beside_a_busy_program_and_back_when_it_ends():
    m = Machine()
    t = ThreadTuner(2, set_threads=m.set_threads, clock=m.clock)
    run(t, m, 30.0)
    assert t.current == 2
    m.busy = True  # another program starts: the steps on 2 threads slow down 3.6x
    start, on_two = m.now, m.steps[2]
    while not t.switches:
        t.step_done(m.step())
    # the slow-down itself starts the probe: within a few steps, not at the next periodic probe
    assert t.switches[0] == (2, 1) and m.now - start < 3.0
    run(t, m, 60.0)
    assert t.current == 1 and m.threads == 1
    assert m.steps[2] - on_two < 20  # the probes of 2 threads meanwhile end after their second step
    assert t.news() == [(2, 1)] and t.news() == []  # what the run's log says, once
    m.busy = False
    run(t, m, 60.0)
    assert t.current == 2 and t.switches[-1] == (1, 2)
    assert t.news() == [(1, 2)] and "room again" in t.describe(1, 2)


def test_tuner_starts_on_the_cores_the_load_leaves():
    class Load:
        def __init__(self, value):
            self.value = value

        def others(self):
            return self.value

    m = Machine()
    t = ThreadTuner(2, set_threads=m.set_threads, clock=m.clock, load=Load(1.0))
    if (os.cpu_count() or 2) != 2:
        pytest.skip("the figure below is for a 2-core machine")
    assert t.start() == 1 and m.threads == 1 and t.switches == [(2, 1)]
    m2 = Machine()
    t2 = ThreadTuner(2, set_threads=m2.set_threads, clock=m2.clock, load=Load(0.1))
    assert t2.start() == 2 and not t2.switches


def test_tuner_does_not_probe_more_threads_while_the_load_leaves_no_core():
    class Busy:
        def others(self):
            return 1.0

    m = Machine()
    m.busy = True
    t = ThreadTuner(2, set_threads=m.set_threads, clock=m.clock, load=Busy())
    if (os.cpu_count() or 2) != 2:
        pytest.skip("the figure below is for a 2-core machine")
    t.start()
    run(t, m, 60.0)
    assert m.steps[2] == 0  # every probe of 2 threads would have cost 300 ms a step


def test_cpu_load_reads_the_other_processes_time(tmp_path):
    stat, own = tmp_path / "stat", tmp_path / "self"

    def write(user, nice, system, idle, mine):
        stat.write_text(f"cpu  {user} {nice} {system} {idle} 0 0 0 0 0 0\ncpu0 1 2 3 4\n")
        own.write_text("1 (py thon) R " + " ".join(["0"] * 10) + f" {mine} 0 0 0\n")  # utime: field 14

    load = CpuLoad(str(stat), str(own))
    load.tick = 100
    write(0, 0, 0, 0, 0)
    assert load.others() is None  # the first call opens the window
    load.last = (load.last[0] - 1.0, *load.last[1:])  # one second later
    # 150 ticks of user time, 100 of them ours; 300 ticks of niced programs (below us: not counted)
    write(150, 300, 0, 50, 100)
    assert load.others() == pytest.approx(0.5, abs=0.05)
    assert CpuLoad(str(tmp_path / "missing"), str(own)).others() is None


def test_every_thread_of_a_helper_process_yields(tmp_path):
    """os.nice alone leaves torch's pool threads at the old priority (Linux keeps one per thread)."""
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("per-thread priorities are a Linux matter")
    code = textwrap.dedent("""
        import threading, time
        from engine.priority import lower_priority, thread_nices
        stop = threading.Event()
        t = threading.Thread(target=stop.wait); t.start()   # a pool thread started before
        lower_priority(4)
        late = []
        t2 = threading.Thread(target=lambda: late.append(__import__("os").getpriority(0, 0)) or stop.wait())
        t2.start(); time.sleep(0.1)
        print(sorted(set(thread_nices().values())), late)
        stop.set()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert out.stdout.split() == [f"[{min(19, base + 4)}]", f"[{min(19, base + 4)}]"], out.stdout


def test_snapshots_are_paced_by_steps_when_steps_are_slow():
    c = SnapshotClock(4.0)
    c.done(0.0, 0.1, first=True, step=0)
    # steps of 5 s (a busy machine): time alone would snapshot after every step
    assert not c.due(5.0, 1) and not c.due(45.0, 9) and c.due(50.0, 10)
    c.done(50.0, 0.2, step=10)
    assert not c.due(60.0, 12) and c.due(100.0, 20)


@pytest.fixture
def keep_torch_threads():
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_a_cpu_run_tunes_its_threads_unless_told_a_count(tmp_path, monkeypatch, keep_torch_threads):
    from engine.config import RunConfig
    from engine.session import Session

    monkeypatch.delenv("SSLWB_TRAIN_THREADS", raising=False)
    cfg = RunConfig.from_dict(dict(
        method="rotnet", backbone="small_cnn", epochs=1, device="cpu", runs_root=str(tmp_path),
        data={"spec": "builtin:shapes:64", "image_size": 16}, optim={"batch_size": 16},
        eval={"final_eval": False, "knn_every_epochs": 0}))
    s = Session(cfg)
    s.run()
    import torch

    if torch.get_num_threads() > 1 or s.threads is not None:
        assert s.threads is not None and s.threads.max >= 1
    monkeypatch.setenv("SSLWB_TRAIN_THREADS", "1")
    s2 = Session(cfg)
    s2.run()
    assert s2.threads is None and torch.get_num_threads() == 1
