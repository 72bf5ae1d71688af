"""A standby training process (torch imported ahead of time) takes the next run, so Start is quick."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui
WAIT = 120_000


@pytest.fixture
def client(qtbot, monkeypatch):
    monkeypatch.setenv("SSLWB_NICE", "0")
    from app.common.engine_client import EngineClient

    c = EngineClient()
    yield c
    c.shutdown(timeout=10)


def tiny_config(tmp_path) -> dict:
    from engine.config import default_config

    return default_config("simclr", epochs=1, device="cpu", runs_root=str(tmp_path), checkpoint_every_minutes=0.0,
                          data={"spec": "builtin:shapes:32", "image_size": 16}, optim={"batch_size": 16},
                          eval={"final_eval": False, "knn_every_epochs": 0}).to_dict()


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_the_standby_runs_the_next_start_and_another_one_follows(qtbot, client, tmp_path):
    died = []
    client.died.connect(died.append)
    assert client.prewarm() and client.alive and client.state == "idle"
    standby = client.pid
    run_dir = client.start(tiny_config(tmp_path))
    qtbot.waitUntil(lambda: client.state == "finished", timeout=WAIT)
    status = json.loads((Path(run_dir) / "status.json").read_text())
    assert status["pid"] == standby  # the run was trained by the process started ahead of it
    client.enable_prewarm(100)  # as the window does: a new standby once this run's process has ended
    qtbot.waitUntil(lambda: client._standby and client.alive and client.pid != standby, timeout=WAIT)
    nxt = client.pid
    client.shutdown(timeout=10)  # closing the window ends a standby at once
    qtbot.waitUntil(lambda: gone(nxt), timeout=20_000)
    assert not died


def test_a_standby_that_died_is_replaced_silently(qtbot, client, tmp_path):
    died = []
    client.died.connect(died.append)
    assert client.prewarm()
    os.kill(client.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: client._proc is None, timeout=WAIT)
    assert not died and client.state == "idle"  # nobody lost anything: no banner
    client.start(tiny_config(tmp_path))
    qtbot.waitUntil(lambda: client.state == "finished", timeout=WAIT)


def test_the_window_starts_a_standby_at_launch(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("SSLWB_PREWARM", "1")
    monkeypatch.setenv("SSLWB_NICE", "0")
    monkeypatch.setenv("SSLWB_CONFIG_DIR", str(tmp_path / "config"))
    from app.window.launch import make_app
    from app.window.main_window import MainWindow

    make_app()
    win = MainWindow(data_spec="builtin:shapes:64")
    win.confirm_quit = False
    qtbot.addWidget(win)
    try:
        qtbot.waitUntil(lambda: win.engine._standby and win.engine.alive, timeout=WAIT)
        assert not win.catalogue_fresh  # started with the window, not after the service's first answer
        qtbot.waitUntil(lambda: win.catalogue_fresh, timeout=WAIT)
        assert win.engine.state == "idle"  # nothing runs: Start is still the user's
        pid = win.engine.pid
    finally:
        win.engine.shutdown(timeout=10)
        win.close()
    qtbot.waitUntil(lambda: gone(pid), timeout=20_000)
