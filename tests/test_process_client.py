"""app.common.process_client + engine.rpc: an op added as one handler method, called through the real clients;
a newer request of a kind cancels the older; errors; a process that dies is reported and restarted."""

from __future__ import annotations

import os
import time

import pytest

from engine.rpc import Handler, Job, serve_requests

pytestmark = pytest.mark.gui


# -- ops a test adds to the analysis process --------------------------------------------------------
def op_double(self, job: Job) -> dict:
    for i in range(3):
        job.progress(i, 3, f"step {i}")
    job.partial({"half": job.args["x"]})
    return {"value": 2 * job.args["x"]}


def op_wait(self, job: Job) -> dict:
    end = time.monotonic() + float(job.args.get("seconds", 5.0))
    i = 0
    while time.monotonic() < end:
        job.check()
        job.progress(i, 0, "waiting")
        i += 1
        time.sleep(0.02)
    return {"waited": job.args.get("tag")}


def op_fail(self, job: Job) -> None:
    if job.args.get("user"):
        raise ValueError("x must be positive; choose x > 0")
    raise RuntimeError("something broke")


@pytest.fixture
def client(qtbot, monkeypatch):
    """The real AnalysisClient, its process as a thread here (in_process) so the test's ops reach it."""
    from app.common.analysis_client import AnalysisClient
    from engine.analysis import AnalysisWorker

    for fn in (op_double, op_wait, op_fail):
        monkeypatch.setattr(AnalysisWorker, fn.__name__, fn, raising=False)
    c = AnalysisClient(warm=False, in_process=True)
    qtbot.waitUntil(lambda: c.is_ready, timeout=30_000)
    yield c
    c.shutdown()


class Calls:
    def __init__(self):
        self.log: list = []

    def kw(self, tag: str = "") -> dict:
        return {f"on_{k}": (lambda *a, k=k: self.log.append((tag + k, a[0] if a else None)))
                for k in ("progress", "partial", "done", "error", "cancelled")}

    def kinds(self, tag: str = "") -> list:
        return [k for k, _ in self.log if k.startswith(tag)]


def test_an_op_is_one_handler_method_called_through_the_client(client, qtbot):
    calls = Calls()
    client.request("double", {"x": 21}, **calls.kw())
    qtbot.waitUntil(lambda: "done" in calls.kinds(), timeout=10_000)
    assert calls.kinds() == ["progress"] * 3 + ["partial", "done"]
    progress = [v for k, v in calls.log if k == "progress"]
    assert [(p.done, p.total, p.detail) for p in progress] == [(0, 3, "step 0"), (1, 3, "step 1"), (2, 3, "step 2")]
    assert calls.log[3][1] == {"half": 21} and calls.log[4][1] == {"value": 42}
    assert client.pending() == []


def test_a_newer_request_of_a_kind_cancels_the_older(client, qtbot):
    calls = Calls()
    old = client.request("wait", {"seconds": 5, "tag": "old"}, kind="k", **calls.kw("old-"))
    qtbot.waitUntil(lambda: "old-progress" in calls.kinds(), timeout=10_000)  # it is running
    seen = len(calls.log)
    t0 = time.monotonic()
    client.request("wait", {"seconds": 0.2, "tag": "new"}, kind="k", **calls.kw("new-"))
    other = client.request("double", {"x": 1}, kind="other", **calls.kw("other-"))  # another kind runs on
    qtbot.waitUntil(lambda: "new-done" in calls.kinds() and "other-done" in calls.kinds(), timeout=10_000)
    # the old request stopped (it would run 5 s) and none of its callbacks ran once it was replaced
    assert time.monotonic() - t0 < 4
    assert calls.kinds("old-") == ["old-progress"] * len(calls.kinds("old-"))
    assert len([k for k, _ in calls.log[seen:] if k.startswith("old-")]) == 0
    assert [v for k, v in calls.log if k == "new-done"] == [{"waited": "new"}]
    assert old not in client.pending() and other not in client.pending()

    # cancel(): on_cancelled at once, nothing after it
    calls = Calls()
    rid = client.request("wait", {"seconds": 5}, **calls.kw())
    qtbot.waitUntil(lambda: "progress" in calls.kinds(), timeout=10_000)
    client.cancel(rid)
    assert calls.kinds()[-1] == "cancelled"
    n = len(calls.log)
    qtbot.wait(300)
    assert len(calls.log) == n and client.pending() == []


def test_errors_carry_one_message_field(client, qtbot):
    calls = Calls()
    client.request("fail", {"user": True}, **calls.kw("user-"))
    client.request("fail", {}, **calls.kw("bug-"))
    client.request("no_such_op", {}, **calls.kw("unknown-"))
    qtbot.waitUntil(lambda: len(calls.log) == 3, timeout=10_000)
    errs = {k: v for k, v in calls.log}
    assert set(errs) == {"user-error", "bug-error", "unknown-error"}
    assert errs["user-error"] == {"message": "x must be positive; choose x > 0", "path": "", "traceback": ""}
    assert errs["bug-error"]["message"] == "RuntimeError: something broke" and "op_fail" in errs["bug-error"]["traceback"]
    assert "unknown request 'no_such_op'" in errs["unknown-error"]["message"]


# -- a real child process that dies --------------------------------------------------------------------
class _Tiny(Handler):
    INLINE = ("crash",)

    def op_pid(self, job: Job) -> int:
        return os.getpid()

    def op_wait(self, job: Job) -> dict:
        return op_wait(self, job)

    def op_crash(self, job: Job) -> None:
        os._exit(int(job.args.get("code", 3)))


def tiny_server(requests, replies, nice: int = 0) -> None:
    from engine.rpc import Status

    def make(emit):
        emit(Status({"state": "ready", "pid": os.getpid()}))
        return _Tiny(emit)

    serve_requests(requests, replies, make)


def test_a_dead_process_is_reported_and_restarted(qtbot):
    from app.common.worker_client import WorkerClient

    client = WorkerClient(target=tiny_server, nice=0, name="tiny")
    restarted = []
    client.restarted.connect(lambda: restarted.append(True))
    try:
        pids = []
        client.request("pid", on_done=pids.append)
        qtbot.waitUntil(lambda: bool(pids), timeout=60_000)
        assert pids == [client.pid] and client.alive
        calls = Calls()
        client.request("wait", {"seconds": 30}, **calls.kw())  # outstanding when it dies
        with qtbot.waitSignal(client.died, timeout=30_000) as died:
            client.request("crash", {"code": 5})
        assert died.args[0] == "The tiny process stopped unexpectedly (exited with code 5); restarting it."
        assert calls.kinds() == ["progress"] * (len(calls.log) - 1) + ["error"]
        assert "exited with code 5" in calls.log[-1][1]["message"] and "try again" in calls.log[-1][1]["message"]
        assert restarted == [True] and client.pending() == []
        client.request("pid", on_done=pids.append)
        qtbot.waitUntil(lambda: len(pids) == 2, timeout=60_000)
        assert pids[1] != pids[0] and pids[1] == client.pid
    finally:
        client.shutdown()
    assert not client.alive and client.state == "stopped"
