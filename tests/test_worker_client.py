"""app.common.worker_client: the Qt client of the service process notices a death, reports it and restarts."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


def test_dead_service_is_reported_and_restarted(qtbot, monkeypatch):
    monkeypatch.setenv("SSLWB_NICE", "0")
    from app.common.worker_client import WorkerClient

    client = WorkerClient()
    client.start()
    try:
        qtbot.waitUntil(lambda: client.is_ready, timeout=120_000)
        answers = []
        client.request("ping", on_done=answers.append)
        qtbot.waitUntil(lambda: answers == ["pong"], timeout=30_000)
        first_pid = client.pid
        errors = []
        client.request("sleep", {"seconds": 60}, on_error=errors.append)  # outstanding when it dies
        with qtbot.waitSignal(client.died, timeout=30_000) as died:
            client.request("crash", {"code": 7})
        assert "exited with code 7" in died.args[0] and "restarting" in died.args[0]
        qtbot.waitUntil(lambda: bool(errors), timeout=10_000)
        assert "exited with code 7" in errors[0]["message"] and "try again" in errors[0]["message"]
        assert client.pending() == []
        # the new process answers
        qtbot.waitUntil(lambda: client.is_ready and client.pid != first_pid, timeout=120_000)
        client.request("ping", on_done=answers.append)
        qtbot.waitUntil(lambda: answers == ["pong", "pong"], timeout=30_000)
    finally:
        client.shutdown()
    assert not client.alive
