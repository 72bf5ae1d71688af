"""The fault matrix, part 2 (issue 12): faults while a run runs. Signals (SIGTERM, SIGKILL mid-step
and mid-checkpoint), divergence, a full disk, damaged or malicious checkpoints, two writers, and
what --resume may change.

Each case asserts the message (one line, no traceback), the exit code, that the run folder and its
last checkpoint are intact and loadable, and that the run goes on where that makes sense.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from engine.methods import get_method_class
from engine.runs import acquire_writer, run_info
from tests.test_bad_inputs import TINY, png, run_cli, the_error

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")
RUN = ["--method", "rotnet", "--data", "builtin:shapes:64", *TINY]


# -- helpers ----------------------------------------------------------------------------------------
def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def folder_state(run_dir: Path) -> dict:
    return {p.relative_to(run_dir).as_posix(): digest(p) for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != ".writer.lock"}


def strict_json_lines(path: Path) -> list[dict]:
    """Every line of a JSON-lines file, parsed strictly (a bare NaN or Infinity fails)."""
    def refuse(name):
        raise ValueError(f"{path} holds a bare {name}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines() if line.strip()]


def checkpoint(run_dir: Path) -> dict:
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    return state


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def temporaries(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob(".*") if ".tmp" in p.name]


def main_py(*args, code: str | None = None) -> subprocess.Popen:
    """``python main.py ARGS`` (or ``python -c CODE ARGS``) in a new process."""
    head = ["-c", code] if code else [str(ROOT / "main.py")]
    return subprocess.Popen([sys.executable, *head, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
                            env=dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT)))


def wait_for(cond, timeout=120.0, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended early: {proc.communicate()}")
        time.sleep(0.1)
    raise AssertionError("timed out")


def running(run_dir: Path) -> bool:
    try:
        return status(run_dir).get("state") == "running"
    except (OSError, ValueError):
        return False


# -- case 6: signals -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.fault("case 6: SIGTERM mid-run stops like Ctrl-C: checkpoint, status 'stopped', exit 130, resumable")
def test_sigterm_stops_with_a_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    p = main_py("train", *RUN, "--minutes", "2", "--run-dir", run_dir)
    try:
        wait_for(lambda: running(run_dir), proc=p)
        time.sleep(1.0)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and "finished (stopped)" in err
    assert f"continue with: python main.py train --resume {run_dir}" in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["reason"] == "stopped"
    assert checkpoint(run_dir)["step"] == summary["step"] > 0
    assert status(run_dir)["state"] == "stopped"
    more = str(summary["epoch"] + 2)  # a fast machine may be past any fixed epoch count by now
    rc, out, err = run_cli(["train", "--resume", run_dir, "--epochs", more])
    assert rc == 0, err
    assert json.loads(out.strip().splitlines()[-1])["step"] > summary["step"]


@pytest.mark.slow
@pytest.mark.fault("case 6: SIGKILL mid-step: the last checkpoint is intact, the run is resumed from it")
def test_sigkill_mid_step_resumes_from_the_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    p = main_py("train", *RUN, "--minutes", "2", "--run-dir", run_dir, "--set", "checkpoint_every_minutes=0.01")
    try:
        wait_for(lambda: running(run_dir) and (run_dir / "checkpoints" / "last.pt").exists(), proc=p)
        time.sleep(0.5)
        p.kill()
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    step, epoch = checkpoint(run_dir)["step"], checkpoint(run_dir)["epoch"]
    assert step > 0
    assert run_info(run_dir).state == "interrupted"  # status.json says running, its pid is gone
    rc, out, err = run_cli(["train", "--resume", run_dir, "--epochs", str(epoch + 2)])
    assert rc == 0, err
    assert f"took over {run_dir} from process {p.pid}" in err
    assert "(resumed at step" in err
    assert json.loads(out.strip().splitlines()[-1])["epoch"] == epoch + 2
    assert not temporaries(run_dir)


HANG_IN_CHECKPOINT = """
import os, sys, time
real = os.fsync
count = [0]
def fsync(fd):
    if ".last.pt." in os.readlink(f"/proc/self/fd/{fd}"):
        count[0] += 1
        if count[0] >= 2:  # the second checkpoint: half written when the kill comes
            print("writing checkpoint", file=sys.stderr, flush=True)
            time.sleep(300)
    real(fd)
os.fsync = fsync
from engine.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
@pytest.mark.fault("case 6: SIGKILL mid-checkpoint: last.pt stays the previous one; the temporary file is removed")
def test_sigkill_mid_checkpoint_write(tmp_path):
    run_dir = tmp_path / "run"
    p = main_py("train", *RUN, "--minutes", "2", "--run-dir", run_dir, "--set", "checkpoint_every_minutes=0.01",
                code=HANG_IN_CHECKPOINT)
    try:
        while True:
            line = p.stderr.readline()
            assert line, p.communicate()
            if "writing checkpoint" in line:
                break
        p.kill()
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    left = temporaries(run_dir)
    assert [t.name for t in left] == [f".last.pt.{p.pid}.tmp"]
    step, epoch = checkpoint(run_dir)["step"], checkpoint(run_dir)["epoch"]  # the first checkpoint, whole
    rc, out, err = run_cli(["train", "--resume", run_dir, "--epochs", str(epoch + 2)])
    assert rc == 0, err
    assert "removed 1 unfinished temporary file(s)" in err and "(resumed at step" in err
    assert not temporaries(run_dir)
    assert checkpoint(run_dir)["step"] > step


# -- case 6: a full disk ---------------------------------------------------------------------------
@pytest.mark.fault("case 6: full disk (ENOSPC) mid-run: one line naming the file, status 'failed', the last "
                   "checkpoint intact, no temporary files, resumable")
def test_full_disk_during_a_checkpoint(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    real = os.fsync
    written = []

    def fsync(fd):
        if written:  # after the first checkpoint the disk is full: every write fails
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)
        if ".last.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            written.append(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    rc, out, err = run_cli(["train", *RUN, "--epochs", "50", "--run-dir", run_dir,
                            "--set", "checkpoint_every_minutes=0.005"])
    monkeypatch.setattr(os, "fsync", real)
    assert rc == EXIT_FAILED, err
    line = the_error(err)
    assert "the disk is full" in line and str(run_dir / "checkpoints" / "last.pt") in line
    assert f"--resume {run_dir}" in line and "last checkpoint (step" in line
    st = status(run_dir)
    assert st["state"] == "failed" and "disk is full" in st["error"]
    state = checkpoint(run_dir)
    assert st["checkpoint_step"] == state["step"]
    assert not temporaries(run_dir)
    strict_json_lines(run_dir / "metrics.jsonl")
    rc, out, err = run_cli(["train", "--resume", run_dir, "--epochs", "2"])
    assert rc == 0, err
    assert status(run_dir)["state"] == "finished"


# -- case 5: divergence ------------------------------------------------------------------------------
@pytest.fixture
def nan_after(monkeypatch):
    """Make rotnet's loss NaN from its n-th step on (n set by the test)."""
    cls = get_method_class("rotnet")
    real = cls.training_step
    box = {"n": 10**9, "calls": 0}

    def step(self, x, labels, g):
        out = real(self, x, labels, g)
        box["calls"] += 1
        if box["calls"] >= box["n"]:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(cls, "training_step", step)
    yield box
    monkeypatch.setattr(cls, "training_step", real)


@pytest.mark.fault("case 5: divergence before any checkpoint: a last good checkpoint, one line that says what "
                   "to change, exit 1, strict JSON; resumed with a lower --lr")
def test_divergence_keeps_a_last_good_checkpoint(tmp_path, nan_after):
    run_dir = tmp_path / "run"
    nan_after["n"] = 20
    rc, out, err = run_cli(["train", *RUN, "--epochs", "20", "--run-dir", run_dir])
    assert rc == EXIT_FAILED, err
    line = the_error(err)
    assert "training diverged: the loss became nan" in line
    assert f"python main.py train --resume {run_dir} --lr " in line and "checkpoints/last.pt" in line
    state = checkpoint(run_dir)  # written by the failed run: it had none before (finite weights)
    assert 0 <= state["step"] < 20
    assert f"the last good state (step {state['step']})" in line
    st = status(run_dir)
    assert st["state"] == "failed" and st["error"] == line.removeprefix("error: ")
    records = strict_json_lines(run_dir / "metrics.jsonl")
    assert records[-1]["type"] == "diverged" and records[-1]["loss"] is None
    assert not (run_dir / "encoder.safetensors").exists()  # NaN weights are never exported
    nan_after["n"] = 10**9
    rc, out, err = run_cli(["train", "--resume", run_dir, "--lr", "0.0001", "--epochs", "2"])
    assert rc == 0, err
    assert f"(resumed at step {state['step']})" in err
    assert "the peak learning rate changed from" in err
    assert json.loads((run_dir / "config.json").read_text())["optim"]["lr"] == 0.0001
    assert json.loads(out.strip().splitlines()[-1])["epoch"] == 2


@pytest.mark.fault("case 5: a periodic checkpoint never overwrites the last good one with diverged weights")
def test_divergence_between_reads_does_not_overwrite_a_good_checkpoint(tmp_path, nan_after):
    run_dir = tmp_path / "run"
    nan_after["n"] = 30
    rc, out, err = run_cli(["train", *RUN, "--epochs", "20", "--run-dir", run_dir,
                            "--set", "checkpoint_every_minutes=0.001"])
    assert rc == EXIT_FAILED, err
    assert "training diverged" in the_error(err)
    assert checkpoint(run_dir)["step"] < 30  # finite weights (checked by checkpoint())


# -- case 5: what --resume may change ------------------------------------------------------------------
@pytest.mark.fault("case 5: --resume refuses flags that cannot change mid-run, naming each; nothing changes")
def test_resume_refuses_unsafe_changes(run_copy):
    before = folder_state(run_copy)
    rc, _, err = run_cli(["train", "--resume", run_copy, "--epochs", "2", "--batch-size", "4", "--method", "simclr",
                          "--set", "augment={\"hue\": 0.5}", "--set", "eval.knn_k=5"])
    assert rc == EXIT_USAGE
    line = the_error(err)
    assert "--batch-size" in line and "--method" in line and "--set augment=" in line
    assert "eval.knn_k" not in line.split("cannot change")[0]  # a safe change is not refused
    assert "a resumed run may change only: --lr" in line
    assert folder_state(run_copy) == before
    rc, _, err = run_cli(["train", "--resume", run_copy, "--config", run_copy / "config.json"])
    assert rc == EXIT_USAGE and "--config cannot be combined with --resume" in the_error(err)


@pytest.mark.fault("case 5: --resume applies the safe overrides (lr, budget, evaluation, final-eval switch) and "
                   "says the schedule is stretched")
def test_resume_applies_safe_changes(run_copy):
    (run_copy / "results.json").unlink()
    rc, out, err = run_cli(["train", "--resume", run_copy, "--epochs", "3", "--lr", "0.0005", "--no-final-eval",
                            "--set", "eval.knn_every_epochs=1", "--method", "rotnet"])
    assert rc == 0, err
    cfg = json.loads((run_copy / "config.json").read_text())
    assert cfg["epochs"] == 3 and cfg["optim"]["lr"] == 0.0005 and cfg["eval"]["final_eval"] is False
    assert cfg["eval"]["knn_every_epochs"] == 1 and cfg["device"] == "cpu"
    assert not (run_copy / "results.json").exists()  # --no-final-eval was applied, not ignored
    assert "learning-rate schedule is stretched over the new budget" in err
    records = strict_json_lines(run_copy / "metrics.jsonl")
    assert any(r.get("type") == "eval" and r.get("kind") == "knn_monitor" and r["epoch"] == 3 for r in records)


def test_resume_may_switch_compilation_like_the_device():
    """Compiling the step changes how it runs, not what the checkpoint means: a run compiled on a GPU
    resumes uncompiled on a CPU (and the other way round)."""
    from engine.config import default_config
    from engine.training.resume import apply_resume_changes

    cfg = default_config("simclr", compile=True, device="cuda")
    assert apply_resume_changes(cfg, {"compile": False, "device": "cpu"}).compile is False
    assert apply_resume_changes(default_config("simclr"), {"compile": True}).compile is True


# -- case 7: damaged, foreign and malicious checkpoints --------------------------------------------------
class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _damage(run_dir: Path, kind: str, tmp_path: Path) -> str:
    """Damage the run's checkpoint or encoder; the text the one-line error must hold."""
    ckpt = run_dir / "checkpoints" / "last.pt"
    if kind == "malicious pickle":
        torch.save({"model": Evil(tmp_path / "pwned"), "step": 1, "epoch": 0}, ckpt)
        return "is not a workbench checkpoint (it holds Python objects"
    if kind == "random bytes":
        ckpt.write_bytes(os.urandom(4096))
        return "cannot be read"
    if kind == "garbage safetensors":
        ckpt.unlink()
        (run_dir / "encoder.safetensors").write_bytes(os.urandom(4096))
        return "is not a readable safetensors file"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    if kind == "wrong shapes":
        key = next(k for k, v in state["model"].items() if v.ndim == 4)
        state["model"][key] = torch.zeros(3, 3, 3, 3)
        torch.save(state, ckpt)
        return "do not fit this run's model"
    if kind == "missing key":
        del state["step"]
        torch.save(state, ckpt)
        return "lacks 'step'"
    raise AssertionError(kind)


DAMAGE = ["malicious pickle", "random bytes", "garbage safetensors", "wrong shapes", "missing key"]


@pytest.mark.parametrize("cmd,kind", [("eval", k) for k in DAMAGE] +
                         [("resume", k) for k in DAMAGE if k != "garbage safetensors"])  # resume reads last.pt
def test_damaged_checkpoints_get_one_line(cmd, kind, run_copy, tmp_path, request):
    request.node.add_marker(pytest.mark.fault(f"case 7: {cmd} with a checkpoint: {kind}"))
    expected = _damage(run_copy, kind, tmp_path)
    before = folder_state(run_copy)
    if cmd == "eval":
        rc, _, err = run_cli(["eval", "--run", run_copy, "--train-data", "builtin:shapes:40",
                              "--test-data", "builtin:shapes:40", "--image-size", "16", "--no-baselines"])
    else:
        rc, _, err = run_cli(["train", "--resume", run_copy])
    assert rc == EXIT_USAGE, err
    line = the_error(err)
    assert expected in line, line
    assert "weights_only" not in err  # torch's hint at the unsafe path is never shown
    assert not (tmp_path / "pwned").exists()
    assert folder_state(run_copy) == before


# -- case 2: one writer, taken by the session ------------------------------------------------------------
HOLD_LOCK = ("import sys, time\nfrom engine.runs import acquire_writer\nlock = acquire_writer(sys.argv[1])\n"
             "print('holding', flush=True)\ntime.sleep(120)\n")


@pytest.mark.fault("case 2: the session claims its run folder: a resume (CLI or the window's engine "
                   "process) of a live run is refused, nothing changes")
def test_session_refuses_a_live_run(run_copy):
    from engine.session import Session, resume_config

    holder = main_py(run_copy, code=HOLD_LOCK)
    try:
        assert holder.stdout.readline().strip() == "holding"
        before = folder_state(run_copy)
        got = []
        summary = Session(resume_config(run_copy), got.append, run_dir=run_copy, resume=True).run()
        assert summary["exit_code"] == EXIT_USAGE
        assert f"process {holder.pid}" in summary["error"] and "one writer" in summary["error"]
        assert "\n" not in summary["error"]
        assert folder_state(run_copy) == before
    finally:
        holder.kill()
        holder.wait(10)


@pytest.mark.fault("case 2: the lock is held while the session runs and released when run() ends")
def test_lock_is_held_for_the_run(tmp_path):
    from engine.config import default_config
    from engine.errors import RunBusy
    from engine.messages import StepMetrics
    from engine.session import Session

    run_dir = tmp_path / "run"
    seen = []

    def emit(msg):
        if isinstance(msg, StepMetrics) and not seen:
            with pytest.raises(RunBusy):
                acquire_writer(run_dir)  # a second claim, even from this process, is refused
            seen.append(json.loads((run_dir / ".writer.lock").read_text())["pid"])

    cfg = default_config("rotnet", backbone="small_cnn", device="cpu", epochs=1,
                         data={"spec": "builtin:shapes:64", "image_size": 16}, optim={"batch_size": 8},
                         eval={"knn_every_epochs": 0, "final_eval": False})
    summary = Session(cfg, emit, run_dir=run_dir).run()
    assert summary["reason"] == "completed" and seen == [os.getpid()]
    acquire_writer(run_dir).release()  # released at the end


@pytest.mark.fault("case 8: bad data in the window's run folder: the empty folder is removed, exit 2")
def test_bad_data_leaves_no_stub_folder_from_the_window_path(tmp_path):
    from engine.config import default_config
    from engine.runs import new_run_dir
    from engine.session import Session

    run_dir = new_run_dir(tmp_path / "runs", "rotnet", "x")  # what the window makes before the engine starts
    cfg = default_config("rotnet", device="cpu", epochs=1, data={"spec": str(tmp_path / "missing")})
    summary = Session(cfg, run_dir=run_dir).run()
    assert summary["exit_code"] == EXIT_USAGE and "\n" not in summary["error"]
    assert not run_dir.exists()


# -- the window shows the same messages ------------------------------------------------------------------
@pytest.mark.gui
@pytest.mark.slow
@pytest.mark.fault("window: a diverged run and a damaged checkpoint show the engine's one-line messages")
def test_window_shows_divergence_and_a_damaged_checkpoint(qtbot, tmp_path, monkeypatch):
    from tests.test_app_window import WAIT, small_run

    monkeypatch.setenv("SSLWB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SSLWB_NICE", "0")
    from app.window.launch import make_app
    from app.window.main_window import MainWindow

    make_app()
    win = MainWindow(data_spec="builtin:shapes:96")
    win.confirm_quit = False
    qtbot.addWidget(win)
    win.model.set("runs_root", str(tmp_path / "runs"))
    win.show()
    try:
        qtbot.waitUntil(lambda: win.dataset is not None and win.model.catalogue is not None, timeout=WAIT)
        small_run(win)
        # MAE with plain SGD at lr 10 diverges within a few steps
        win.model.set("method", "mae")
        for path, value in {"backbone": "vit_mini", "device": "cpu", "epochs": 0, "minutes": 3.0,
                            "data.spec": "builtin:shapes:96", "data.image_size": 16, "optim.batch_size": 8,
                            "optim.optimizer": "sgd", "optim.lr": 10.0, "optim.warmup_fraction": 0.0,
                            "eval.final_eval": False, "eval.knn_every_epochs": 0}.items():
            win.model.set(path, value)
        win.view("run").request_start()
        qtbot.waitUntil(lambda: win.engine.state == "failed", timeout=WAIT)
        text = win.banner.text.text()
        assert win.banner.isVisible() and "training diverged: the loss became" in text, text
        assert "--lr 1" in text and "Traceback" not in text
        run_dir = Path(win.engine.run_dir)
        assert checkpoint(run_dir)["step"] >= 0  # the last good state, loadable
        # a damaged checkpoint under the window: resuming says so in one line
        (run_dir / "checkpoints" / "last.pt").write_bytes(os.urandom(2048))
        win.resume_run(str(run_dir))
        qtbot.waitUntil(lambda: win.engine.state == "failed" and "cannot be read" in win.banner.text.text(),
                        timeout=WAIT)
        text = win.banner.text.text()
        assert "weights_only" not in text and "\n" not in text
    finally:
        win.engine.shutdown(timeout=10)
        win.close()


# -- second round: a stop is a stop in every phase ----------------------------------------------------------
class StopWhen:
    """A control whose STOP comes once ``ready()`` says so (looked at every time the session polls)."""

    def __init__(self, ready):
        from engine.session import FlagControl

        self.inner, self.ready, self.sent = FlagControl(), ready, False

    def poll(self):
        if not self.sent and self.ready():
            self.sent = True
            self.inner.send("stop")
        return self.inner.poll()

    def wait(self, timeout):
        return self.inner.wait(timeout)


def _tiny_cfg(tmp_path, **kw):
    from engine.config import default_config

    base = dict(backbone="small_cnn", device="cpu", epochs=2, runs_root=str(tmp_path / "runs"),
                data={"spec": "builtin:shapes:96", "image_size": 16}, optim={"batch_size": 16},
                eval={"knn_every_epochs": 0, "linear_probe_epochs": 5})
    base.update(kw)
    return default_config("rotnet", **base)


@pytest.mark.fault("round 2: a stop during the final evaluation ends it within a batch: state stopped, exit 130, "
                   "the checkpoint intact, what was measured kept")
def test_stop_during_the_final_evaluation(tmp_path):
    import inspect

    from engine.errors import run_exit_code
    from engine.session import Session

    cfg = _tiny_cfg(tmp_path, eval={"knn_every_epochs": 0, "linear_probe_epochs": 10000})

    def probing():  # the stop comes while the linear probe trains, after the kNN
        return any(f.function == "linear_probe" for f in inspect.stack()[1:6])

    s = Session(cfg, control=StopWhen(probing), run_dir=tmp_path / "run")
    summary = s.run()
    assert summary["reason"] == "stopped" and run_exit_code(summary) == EXIT_INTERRUPTED
    run_dir = tmp_path / "run"
    assert status(run_dir)["state"] == "stopped"
    assert checkpoint(run_dir)["step"] == summary["step"] > 0
    results = json.loads((run_dir / "results.json").read_text())
    assert "knn_top1" in results and "linear_top1" not in results  # the kNN was measured, the probe stopped
    assert "stopped during the final evaluation" in results["stopped"]


@pytest.mark.fault("round 2: a stop while the data is read: nothing written, exit 130, no run folder")
def test_stop_while_reading_the_data(tmp_path):
    from engine.errors import run_exit_code
    from engine.session import Session

    for c in ("a", "b"):
        for i in range(20):
            png(tmp_path / "data" / c / f"{i}.png", (10 * i, 100 if c == "a" else 0, 50))
    cfg = _tiny_cfg(tmp_path, data={"spec": str(tmp_path / "data"), "image_size": 16})
    control = StopWhen(lambda: True)
    msgs = []
    summary = Session(cfg, msgs.append, control=control).run()
    assert summary["reason"] == "stopped" and run_exit_code(summary) == EXIT_INTERRUPTED
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert type(msgs[-1]).__name__ == "RunFinished" and msgs[-1].reason == "stopped"


@pytest.mark.fault("round 2: a stop during a snapshot ends the run at once, without that snapshot")
def test_stop_during_a_snapshot(tmp_path):
    from engine.session import Session

    cfg = _tiny_cfg(tmp_path, epochs=50, eval={"knn_every_epochs": 0, "snapshot_every_s": 0.01, "final_eval": False})
    s = None
    calls = {"n": 0}

    def ready():  # the stop arrives while the third snapshot extracts its features
        import inspect

        if any(f.function == "snapshot" for f in inspect.stack()[1:8]):
            calls["n"] += 1
        return calls["n"] >= 3

    control = StopWhen(ready)
    s = Session(cfg, control=control, run_dir=tmp_path / "run")
    summary = s.run()
    assert summary["reason"] == "stopped" and 0 < summary["step"] < 50 * 6
    assert status(tmp_path / "run")["state"] == "stopped"


@pytest.mark.slow
@pytest.mark.fault("round 2: SIGTERM during the final evaluation: stopped within seconds, exit 130, resumable")
def test_sigterm_during_the_final_evaluation(tmp_path):
    run_dir = tmp_path / "run"
    p = main_py("train", "--method", "rotnet", "--data", "builtin:shapes:64", "--image-size", "16",
                "--batch-size", "8", "--device", "cpu", "--epochs", "1", "--run-dir", run_dir,
                "--set", "eval.linear_probe_epochs=10000", "--set", "eval.knn_every_epochs=0")
    try:
        wait_for(lambda: (run_dir / "status.json").exists() and status(run_dir).get("state") == "evaluating",
                 proc=p)
        p.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert time.monotonic() - t0 < 15, "the stop took too long"
    assert p.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and f"continue with: python main.py train --resume {run_dir}" in err
    assert status(run_dir)["state"] == "stopped"
    assert checkpoint(run_dir)["step"] > 0


@pytest.mark.fault("round 2: Ctrl-C twice (the second aborts the stop): the state is stopped, not failed; the "
                   "checkpoint is the last whole step")
def test_ctrl_c_twice_is_a_stop(tmp_path, monkeypatch):
    from engine.errors import run_exit_code
    from engine.session import Session

    cls = get_method_class("rotnet")
    real, calls = cls.training_step, {"n": 0}

    def step(self, x, labels, g):  # the second Ctrl-C lands in the middle of step 7
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(self, x, labels, g)

    monkeypatch.setattr(cls, "training_step", step)
    summary = Session(_tiny_cfg(tmp_path, epochs=5), run_dir=tmp_path / "run").run()
    assert summary["reason"] == "stopped" and run_exit_code(summary) == EXIT_INTERRUPTED
    assert status(tmp_path / "run")["state"] == "stopped"
    assert checkpoint(tmp_path / "run")["step"] == 6


@pytest.mark.slow
@pytest.mark.fault("round 2: SIGINT twice from the shell: exit 130, state stopped, no traceback")
def test_sigint_twice_is_a_stop(tmp_path):
    run_dir = tmp_path / "run"
    p = main_py("train", *RUN, "--minutes", "2", "--run-dir", run_dir)
    try:
        wait_for(lambda: running(run_dir), proc=p)
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        time.sleep(0.02)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == EXIT_INTERRUPTED, err
    # the second Ctrl-C aborts at once (Python's KeyboardInterrupt): one landing in a finaliser is reported by
    # Python itself as "Exception ignored"; nothing else may show a traceback
    assert "Traceback" not in err or "Exception ignored" in err, err
    assert status(run_dir)["state"] == "stopped"
    checkpoint(run_dir)  # loadable


# -- second round: torn logs, early checkpoints, a process gone -------------------------------------------
@pytest.mark.fault("round 2: a torn last line of metrics.jsonl: readers skip and report it, a resume repairs the "
                   "tail so every line parses, and keeps its resume marker")
def test_torn_metrics_line_is_repaired_on_resume(run_copy):
    from engine.runs import TORN_FILE, clean_resumed, tail_metrics

    log = run_copy / "metrics.jsonl"
    whole = log.read_bytes()
    log.write_bytes(whole + b'{"type":"step","step":99,"lo')  # a crash mid-line
    torn = []
    records, _ = tail_metrics(run_copy, torn=torn)
    assert len(records) == whole.count(b"\n") and torn == []  # a last line without its end is left unread
    log.write_bytes(whole + b'{"type":"step","step":99,"lo\n' + b'{"type":"eval","kind":"x","step":1}\n')
    records, _ = tail_metrics(run_copy, torn=torn)
    assert len(torn) == 1 and torn[0][0] == len(whole) and torn[0][1].startswith('{"type":"step"')
    log.write_bytes(whole + b'{"type":"step","step":99,"lo')
    rc, out, err = run_cli(["train", "--resume", run_copy, "--epochs", "3", "--quiet"])
    assert rc == 0, err
    lines = log.read_text().splitlines()
    parsed = strict_json_lines(log)  # every line parses
    assert len(parsed) == len(lines)
    resume = [r for r in parsed if r["type"] == "resume"]
    assert len(resume) == 1 and resume[0]["repaired_bytes"] == len(b'{"type":"step","step":99,"lo')
    assert (run_copy / TORN_FILE).read_bytes() == b'{"type":"step","step":99,"lo\n'  # kept, not thrown away
    assert clean_resumed(parsed)[-1]["type"] in ("eval", "step")


@pytest.mark.fault("round 2: the first checkpoint comes after the first epoch or minute, not after 5 minutes")
def test_first_checkpoint_comes_early():
    from types import SimpleNamespace

    from engine.training.progress import Progress
    from engine.training.run_checkpoints import RunCheckpoints

    p = Progress()
    ck = RunCheckpoints(SimpleNamespace(), None, p, None)
    assert not ck.due(5.0)
    p.train_time = 59.0
    assert not ck.due(5.0)
    p.epoch = 1  # the first epoch ended first
    assert ck.due(5.0)
    p.epoch, p.train_time = 0, 60.0  # or the first minute did
    assert ck.due(5.0) and not ck.due(0)
    ck.step, ck.saved_at = 100, time.monotonic()  # then by time
    p.epoch, p.train_time = 7, 400.0
    assert not ck.due(5.0)
    ck.saved_at -= 301
    assert ck.due(5.0)


@pytest.mark.slow
@pytest.mark.fault("round 2: a run killed in its first minutes has a checkpoint, and readers show it interrupted")
def test_a_run_killed_early_is_interrupted_and_resumable(tmp_path):
    from engine.runs import read_status

    run_dir = tmp_path / "run"
    p = main_py("train", "--method", "rotnet", "--data", "builtin:shapes:256", "--minutes", "3",
                "--run-dir", run_dir, *TINY)
    try:
        wait_for(lambda: (run_dir / "checkpoints" / "last.pt").exists(), proc=p, timeout=90)
        time.sleep(0.5)
        p.kill()  # the OOM killer, a closed lid
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    assert status(run_dir)["state"] == "running"  # what the killed process left
    st = read_status(run_dir)
    assert st["state"] == "interrupted" and st["was"] == "running" and not st["live"]
    info = run_info(run_dir)
    assert info.state == "interrupted" and not info.live
    step = checkpoint(run_dir)["step"]
    assert step > 0
    rc, out, err = run_cli(["train", "--resume", run_dir, "--epochs", "1", "--quiet"])
    assert rc == 0, err


# -- second round: raw library text, exit codes -----------------------------------------------------------
@pytest.mark.parametrize("protocol", [4, 5])
def test_a_malicious_pickle_of_any_protocol_is_refused_without_library_text(protocol, run_copy, tmp_path,
                                                                            capfd, request):
    import pickle

    request.node.add_marker(pytest.mark.fault(f"round 2: a malicious pickle (protocol {protocol}) as checkpoint: "
                                              "one line, no third-party warning"))
    with open(run_copy / "checkpoints" / "last.pt", "wb") as fh:
        pickle.dump({"model": Evil(tmp_path / "pwned"), "step": 1}, fh, protocol=protocol)
    rc, _, err = run_cli(["train", "--resume", run_copy])
    captured = capfd.readouterr().err
    assert rc == EXIT_USAGE, err
    assert "holds Python objects" in the_error(err)
    assert "Warning" not in err + captured and "weights_only" not in err + captured
    assert not (tmp_path / "pwned").exists()


@pytest.mark.fault("round 2: a runs folder that cannot be written: one line, exit 2 (bad input), nothing started")
def test_unwritable_runs_folder_is_bad_input(tmp_path):
    target = Path("/sys/sslwb-runs")  # not writable, even by root
    if os.geteuid() != 0:
        target = tmp_path / "ro"
        target.mkdir()
        target.chmod(0o555)
    elif not Path("/sys").is_dir():
        pytest.skip("no place here that root cannot write")
    rc, out, err = run_cli(["train", *RUN, "--epochs", "1", "--runs-root", target])
    assert rc == EXIT_USAGE, err
    line = the_error(err)
    assert "cannot create the run folder" in line and str(target) in line


@pytest.mark.fault("round 2: skipped files' reasons name no Python object; a decompression bomb says the limit")
def test_skip_reasons_name_no_python_objects(tmp_path):
    from PIL import Image

    from engine.data import load_dataset

    for c in ("a", "b"):
        for i in range(3):
            png(tmp_path / c / f"{i}.png")
    (tmp_path / "a" / "notes.png").write_bytes(b"hello, not an image")
    Image.new("1", (14000, 14000)).save(tmp_path / "b" / "huge.png")  # 196 megapixels: PIL refuses to open it
    d = load_dataset(str(tmp_path), 16, use_cache=False)
    reasons = dict(d.skipped)
    assert len(reasons) == 2
    assert all("<" not in r and "_io" not in r for r in reasons.values()), reasons
    from PIL import Image as I

    huge = next(r for p, r in reasons.items() if p.endswith("huge.png"))
    assert f"over {I.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels" in huge, huge


@pytest.mark.fault("round 2: a one-class folder is told it has one class, not that it has no class folders")
def test_one_class_folder_is_named_as_such(tmp_path, finished_run):
    for i in range(4):
        png(tmp_path / "cats" / f"{i}.png", (40 * i, 20, 20))
    rc, _, err = run_cli(["eval", "--run", finished_run, "--train-data", tmp_path, "--test-data", tmp_path,
                          "--image-size", "16", "--no-baselines"])
    assert rc == EXIT_USAGE
    line = the_error(err)
    assert "only one class folder (cats)" in line and "at least two classes" in line


@pytest.mark.fault("round 2: downstream with more labels per class than a class has says so before it starts")
def test_downstream_budget_over_the_smallest_class_is_said_first(tmp_path, finished_run):
    for c in ("a", "b"):
        for i in range(8):
            png(tmp_path / c / f"{i}.png", (30 * i, 200 if c == "a" else 10, 90))
    rc, out, err = run_cli(["downstream", "--run", finished_run, "--train-data", tmp_path, "--test-data", tmp_path,
                            "--labels-per-class", "50", "--modes", "knn", "--seeds", "1", "--baselines", "none"])
    assert rc == 0, err
    lines = err.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("note: 50 labels per class"))
    assert first < next(i for i, line in enumerate(lines) if line.startswith("["))  # before the work
    assert any("the test set is the training set" in line for line in lines)


def _exit_table() -> dict[int, str]:
    """The exit-status table users read: ``| exit | meaning |`` in the README or the user guide."""
    import re

    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        if not doc.is_file():
            continue
        text = doc.read_text(encoding="utf-8")
        if "| exit | meaning |" not in text:
            continue
        rows = re.findall(r"^\|\s*(\d+)\s*\|(.+)\|\s*$", text.split("| exit | meaning |", 1)[1], re.M)
        return {int(code): meaning for code, meaning in rows}
    raise AssertionError("no exit-status table (| exit | meaning |) in the README or docs/")


@pytest.mark.fault("round 2: every exit status of the documented table is what a case of its kind returns")
def test_the_exit_table_holds(tmp_path, run_copy, nan_after):
    table = _exit_table()
    assert set(table) == {0, 1, 2, 130}, table
    rc, _, err = run_cli(["train", *RUN, "--epochs", "1", "--runs-root", tmp_path / "ok"])
    assert rc == 0 and "done" in table[0], err
    nan_after["n"] = 3
    rc, _, err = run_cli(["train", *RUN, "--epochs", "3", "--runs-root", tmp_path / "bad"])
    nan_after["n"] = 10**9
    assert rc == 1 and "diverged" in table[1], err
    rc, _, err = run_cli(["train", *RUN, "--epochs", "1", "--data", tmp_path / "missing"])
    assert rc == 2 and "missing" in table[2], err
    rc, _, err = run_cli(["train", "--resume", tmp_path / "missing"])
    assert rc == 2 and "not a run" in table[2], err
    from engine.session import Session, resume_config

    summary = Session(resume_config(run_copy), control=StopWhen(lambda: True), run_dir=run_copy, resume=True).run()
    from engine.errors import run_exit_code

    assert run_exit_code(summary) == 130 and "Ctrl-C" in table[130]
