import contextlib
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYTHONUNBUFFERED", "1")


def _cores() -> int:
    """The cores this process may run on (as engine.training.threads does; not imported from there, which
    would load torch before OMP_NUM_THREADS is set below)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


MAX_WORKERS = 4  # each test process holds torch and Qt (about half a GB)
# The suite runs on several processes (pytest-xdist, -n auto: pytest_cmdline_main below). Each process gets its share
# of the cores, set before torch is imported (OMP_NUM_THREADS, which the engines a test starts inherit too):
# two processes on two cores each running two threads would wait on each other's spinning threads.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
CORE_SHARE = max(1, _cores() // WORKERS)
if WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(CORE_SHARE))

import pytest  # noqa: E402


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Where pytest-xdist is installed and no ``-n`` was given: ``-n auto --dist worksteal`` (a process that runs
    out of tests takes some of another's). Not in ``addopts``: pytest would refuse ``-n`` where xdist is not
    installed."""
    if (config.pluginmanager.hasplugin("xdist") and config.getoption("numprocesses", None) is None
            and not os.environ.get("PYTEST_XDIST_WORKER")):
        config.option.numprocesses = "auto"
        if config.option.dist == "no":
            config.option.dist = "worksteal"


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: no error where it is not installed
def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: the whole suite (or a folder of it) on as many processes as there are cores, up to
    MAX_WORKERS; named test files or tests, and a one-core machine, stay in this one process."""
    named = [a for a in config.args if a.endswith(".py") or "::" in a]
    if named and len(named) == len(config.args):
        return 0
    n = min(MAX_WORKERS, _cores())
    return n if n > 1 else 0

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CIFAR_SMALL = ROOT.parent / "shared" / "datasets" / "cifar10-small"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Keep caches, settings and downloads of every test away from the user's home."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("SSLWB_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("SSLWB_DATA_DIR", str(base / "tvdata"))
    monkeypatch.setenv("SSLWB_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("SSLWB_ANALYSIS_WARMUP", "0")  # the window's analysis process skips the UMAP warm-up
    monkeypatch.setenv("SSLWB_PREWARM", "0")  # no standby training process per window (tests/test_prewarm.py)


@pytest.fixture(autouse=True)
def _qt_garbage_goes_in_the_main_thread(request):
    """After a test with widgets, collect its garbage here, in the main thread. Left to Python's cyclic
    collector, a dead widget may be destroyed in whatever thread allocates next, such as an in-process
    analysis worker; Qt then waits for a lock the main thread holds while that thread waits for the GIL,
    and the suite hangs (seen once: a QMenu collected in the "rpc-fast" lane)."""
    yield
    if "qtbot" in request.fixturenames:
        import gc

        gc.collect()


@contextlib.contextmanager
def _torch_threads(n: int):
    """torch on ``n`` threads inside the block, on the count before it after."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(old)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks on a shared CPU: one torch thread is faster than two fighting over it.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    with _torch_threads(1):
        yield


@pytest.fixture(scope="module")
def two_threads():
    """Training runs that learn for a few hundred steps: two torch threads where this test process has two
    cores to itself (one where it shares them with another: CORE_SHARE), fixed (``SSLWB_TRAIN_THREADS``) so
    the engine's thread tuner does not switch counts mid-run and a run's result does not depend on the
    machine's timing. Modules opt in with ``pytestmark = pytest.mark.usefixtures("two_threads")``."""
    n = min(2, CORE_SHARE)
    with pytest.MonkeyPatch.context() as mp, _torch_threads(n):
        mp.setenv("SSLWB_TRAIN_THREADS", str(n))
        yield n


@pytest.fixture
def cifar_small():
    if not CIFAR_SMALL.exists():
        pytest.skip(f"{CIFAR_SMALL} is not on this machine")
    return CIFAR_SMALL


# -- the fault matrix (issue 12): every fault case is a test marked @pytest.mark.fault("case") -----
_FAULT_MATRIX: dict[str, dict] = {}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny finished run (RotNet, one epoch on 64 shapes), trained once per test module."""
    from tests.test_bad_inputs import TINY, run_cli

    base = tmp_path_factory.mktemp("finished")
    rc, out, err = run_cli(["train", "--method", "rotnet", "--data", "builtin:shapes:64", "--epochs", "1",
                            "--run-dir", base / "run", *TINY])
    assert rc == 0, err
    return base / "run"


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A copy of :func:`finished_run` for one test to change or damage."""
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(finished_run, dst)
    (dst / ".writer.lock").unlink(missing_ok=True)
    return dst


def pytest_configure(config):
    config.addinivalue_line("markers", "fault(case): a case of the fault matrix (bad inputs, crashes, "
                                       "signals); counted in the 'fault matrix: N cases, N held' line")
    import signal

    # a suite started in the background (`nohup ... &`, some CI runners) inherits SIGINT ignored: Python then
    # raises no KeyboardInterrupt, and every child it starts ignores Ctrl-C too. The Ctrl-C cases test what a
    # user at a terminal gets, so the suite runs with Python's own handler (children start with the default).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A fault case's report carries its name (the process that ran it may be a pytest-xdist worker: the
    reports, not the items, reach the process that writes the summary)."""
    outcome = yield
    marker = item.get_closest_marker("fault")
    if marker is not None:
        outcome.get_result().user_properties.append(("fault_case", marker.args[0] if marker.args else item.name))


def pytest_runtest_logreport(report):
    name = dict(report.user_properties).get("fault_case")
    if name is None:
        return
    case = _FAULT_MATRIX.setdefault(report.nodeid, {"case": name, "held": None})
    if report.failed or report.skipped:
        case["held"] = False  # a skipped case is not counted as held
    elif report.when == "call" and case["held"] is None:
        case["held"] = True


def pytest_terminal_summary(terminalreporter):
    if not _FAULT_MATRIX:
        return
    held = sum(1 for c in _FAULT_MATRIX.values() if c["held"])
    for nodeid, c in _FAULT_MATRIX.items():
        if not c["held"]:
            terminalreporter.write_line(f"fault case not held: {c['case']} ({nodeid})")
    terminalreporter.write_line(f"fault matrix: {len(_FAULT_MATRIX)} cases, {held} held")
