"""A training process whose window dies stops by itself, with a checkpoint to resume from."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from engine.runs import last_checkpoint

ROOT = Path(__file__).resolve().parents[1]

PARENT = textwrap.dedent("""
    import multiprocessing as mp, sys, time
    from engine.config import default_config
    from engine.worker import train_process

    if __name__ == "__main__":
        run_dir = sys.argv[1]
        cfg = default_config("simclr", epochs=10000, runs_root=run_dir + "-root",
                             data={"spec": "builtin:shapes:64"}, optim={"batch_size": 16},
                             eval={"knn_every_epochs": 0, "final_eval": False}).to_dict()
        ctx = mp.get_context("spawn")
        out, cmd = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=train_process, args=(cfg, run_dir, False, out, cmd))
        p.start()
        print(p.pid, flush=True)
        while type(out.get()).__name__ != "StepMetrics":
            pass
        print("training", flush=True)
        time.sleep(600)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie counts as gone
        return fh.read().split()[2] != "Z"


def test_engine_stops_when_its_window_dies(tmp_path):
    run_dir = tmp_path / "run"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(run_dir)], cwd=str(ROOT), stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "training"
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        end = time.time() + 90
        while time.time() < end and _alive(child):
            time.sleep(0.2)
        assert not _alive(child), "the orphaned training process kept running"
    finally:
        if parent.poll() is None:
            parent.kill()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "stopped" and status["step"] > 0
    assert last_checkpoint(run_dir) is not None
