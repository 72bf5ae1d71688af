"""The suite's own set-up (tests/conftest.py): how many processes ``-n auto`` starts, and the threads each
test process takes."""

from types import SimpleNamespace

from tests import conftest


def _workers(monkeypatch, cores: int, *args: str) -> int:
    monkeypatch.setattr(conftest, "_cores", lambda: cores)
    return conftest.pytest_xdist_auto_num_workers(SimpleNamespace(args=list(args)))


def test_the_whole_suite_spreads_over_the_cores_and_named_tests_stay_in_one_process(monkeypatch):
    assert _workers(monkeypatch, 2, "tests") == 2
    assert _workers(monkeypatch, 2) == 2
    assert _workers(monkeypatch, 32, "tests") == conftest.MAX_WORKERS
    assert _workers(monkeypatch, 1, "tests") == 0  # one core: no second process
    assert _workers(monkeypatch, 8, "tests/test_cli.py") == 0
    assert _workers(monkeypatch, 8, "tests/test_cli.py::test_x", "tests/test_docs.py") == 0
    assert _workers(monkeypatch, 8, "tests/test_cli.py", "tests") == 4  # a folder among them: spread


def test_a_test_process_trains_on_its_share_of_the_cores(two_threads):
    import os

    import torch

    assert two_threads == min(2, conftest.CORE_SHARE) and torch.get_num_threads() == two_threads
    assert os.environ["SSLWB_TRAIN_THREADS"] == str(two_threads)
    assert conftest.CORE_SHARE == max(1, conftest._cores() // conftest.WORKERS)


def _cmdline(monkeypatch, has_xdist: bool, numprocesses, dist: str = "no") -> SimpleNamespace:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    option = SimpleNamespace(numprocesses=numprocesses, dist=dist)
    config = SimpleNamespace(option=option, getoption=lambda name, default=None: getattr(option, name, default),
                             pluginmanager=SimpleNamespace(hasplugin=lambda name: has_xdist and name == "xdist"))
    conftest.pytest_cmdline_main(config)
    return option


def test_the_suite_goes_on_several_processes_only_where_xdist_is_and_no_count_was_given(monkeypatch):
    assert vars(_cmdline(monkeypatch, True, None)) == {"numprocesses": "auto", "dist": "worksteal"}
    assert vars(_cmdline(monkeypatch, True, None, "loadfile")) == {"numprocesses": "auto", "dist": "loadfile"}
    assert vars(_cmdline(monkeypatch, True, 0)) == {"numprocesses": 0, "dist": "no"}  # -n 0: one process
    assert vars(_cmdline(monkeypatch, False, None)) == {"numprocesses": None, "dist": "no"}  # no xdist: no -n
