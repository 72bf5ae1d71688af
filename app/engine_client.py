"""Starts and controls the training process; turns its messages into Qt signals.

One generic ``message(object)`` signal carries every engine message in order (any panel can
connect to it), next to specific signals for the common ones. The training runs in its own
process (``engine.worker.train_process``, spawned), never on the GUI thread. If the process dies
without saying goodbye (killed, out of memory, a crash in native code), ``died`` tells why, the
window keeps everything it has shown, and :meth:`resume_last` continues from the last checkpoint.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from app.worker_client import describe_exit
from engine import messages as M

IDLE, STARTING, FINISHED, STOPPED, FAILED, DIED = "idle", "starting", "finished", "stopped", "failed", "died"
ACTIVE = ("starting", "loading", "running", "paused", "stopping", "evaluating")


class EngineClient(QObject):
    message = Signal(object)  # every engine message, in order
    run_started = Signal(object)  # RunStarted
    step = Signal(object)  # StepMetrics
    eval_result = Signal(object)  # EvalResult
    checkpoint = Signal(object)  # CheckpointSaved
    warning = Signal(str)
    progress = Signal(object)  # Progress (data loading)
    state_changed = Signal(str)  # idle, starting, loading, running, paused, stopping, evaluating, finished,...
    finished = Signal(object)  # RunFinished
    failed = Signal(object)  # RunFailed
    died = Signal(str)  # the process ended without a word: a sentence for the user

    def __init__(self, parent: QObject | None = None, nice: int = 10, poll_ms: int = 20, budget_ms: float = 8.0):
        super().__init__(parent)
        self._nice = nice
        self._budget = budget_ms / 1000.0
        self._proc = None
        self._out = self._cmd = None
        self.state = IDLE
        self.run_dir: str | None = None
        self.config: dict | None = None
        self.last_step = 0
        self.last_checkpoint_step: int | None = None
        self.started_msg: M.RunStarted | None = None
        self._terminal = False
        self._last_check = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self._drain)

    # -- queries ----------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def can_resume(self) -> bool:
        return (not self.active and self.run_dir is not None
                and (Path(self.run_dir) / "checkpoints" / "last.pt").exists())

    # -- control ----------------------------------------------------------------------------
    def start(self, config: dict, run_dir: str | None = None, resume: bool = False) -> str:
        """Start a run (or resume ``run_dir``); returns the run folder. The folder is made here, so
        the window knows where the run lives even if the process dies before it says anything."""
        if self.active:
            raise RuntimeError("a run is already in progress; stop it first")
        from engine.runs import new_run_dir

        config = dict(config)
        if run_dir is None:
            root = Path(config.get("runs_root") or "runs").expanduser().resolve()
            config["runs_root"] = str(root)
            run_dir = str(new_run_dir(root, config.get("method", "run"), config.get("data", {}).get("spec", ""),
                                      config.get("name", "")))
        self.run_dir = str(run_dir)
        self.config = config
        self.last_step = 0
        self.started_msg = None
        self._terminal = False
        if not resume:
            self.last_checkpoint_step = None
        ctx = mp.get_context("spawn")
        self._out, self._cmd = ctx.Queue(), ctx.Queue()
        from engine.worker import train_process

        self._proc = ctx.Process(target=train_process, args=(config, self.run_dir, resume, self._out, self._cmd,
                                                             self._nice), daemon=True, name="sslwb-train")
        self._proc.start()
        self._set_state(STARTING)
        self._timer.start()
        return self.run_dir

    def resume_last(self, budget: dict | None = None) -> str:
        """Continue the last run from its checkpoint (after a stop, a failure or a crash)."""
        if self.run_dir is None:
            raise RuntimeError("no run to resume")
        return self.start(budget or {}, self.run_dir, resume=True)

    def send(self, name: str, **args) -> None:
        if self._cmd is not None and self._proc is not None and self._proc.is_alive():
            try:
                self._cmd.put(M.Command(name, args))
            except (OSError, ValueError):
                pass

    def pause(self) -> None:
        self.send(M.PAUSE)

    def resume(self) -> None:
        self.send(M.RESUME)

    def stop(self) -> None:
        if self.active:
            self.send(M.STOP)
            if self.state in ("running", "paused", "loading", "starting"):
                self._set_state("stopping")

    def snapshot(self) -> None:
        self.send(M.SNAPSHOT)

    def embed(self) -> None:
        self.send(M.EMBED)

    def kill(self) -> None:
        """End the process at once (no checkpoint): the window then reports it like any crash."""
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop a run cleanly (checkpoint) and wait for the process; used when the window closes."""
        proc = self._proc
        if proc is None:
            return
        if proc.is_alive():
            self.send(M.STOP)
            end = time.monotonic() + timeout
            while proc.is_alive() and time.monotonic() < end:
                proc.join(0.1)
                self._drain_all(emit=False)
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
        self._timer.stop()
        self._close_queues()
        self._proc = None

    # -- messages ---------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    def _drain(self) -> None:
        if self._out is None:
            return
        end = time.perf_counter() + self._budget
        while time.perf_counter() < end:
            try:
                msg = self._out.get_nowait()
            except queue.Empty:
                break
            except (EOFError, OSError, ValueError):
                break
            self._handle(msg)
        now = time.monotonic()
        if now - self._last_check > 0.25:
            self._last_check = now
            self._check_process()

    def _drain_all(self, emit: bool = True) -> None:
        while self._out is not None:
            try:
                msg = self._out.get_nowait()
            except (queue.Empty, EOFError, OSError, ValueError):
                return
            if emit:
                self._handle(msg)

    def _check_process(self) -> None:
        proc = self._proc
        if proc is None or proc.is_alive():
            return
        proc.join(0.1)
        self._drain_all()  # what it managed to send before it ended
        code = proc.exitcode
        self._timer.stop()
        self._close_queues()
        self._proc = None
        if self._terminal:
            return
        step = f" at step {self.last_step}" if self.last_step else ""
        ckpt = (f"; the last checkpoint is from step {self.last_checkpoint_step}" if self.last_checkpoint_step
                is not None else "")
        text = (f"The training process {describe_exit(code)}{step}. Everything shown so far is kept{ckpt}.")
        if self.can_resume():
            text += " Resume continues from the last checkpoint."
        else:
            text += " No checkpoint was written, so the run cannot be resumed; start it again."
        self._set_state(DIED)
        self.died.emit(text)

    def _close_queues(self) -> None:
        for q in (self._out, self._cmd):
            if q is None:
                continue
            try:
                q.cancel_join_thread()
                q.close()
            except (OSError, ValueError, AttributeError):
                pass
        self._out = self._cmd = None

    def _handle(self, msg) -> None:
        if isinstance(msg, M.StepMetrics):
            self.last_step = msg.step
        elif isinstance(msg, M.RunStarted):
            self.started_msg = msg
            self.last_step = msg.start_step
            self.run_dir = msg.run_dir
        elif isinstance(msg, M.CheckpointSaved):
            self.last_checkpoint_step = msg.step
        self.message.emit(msg)
        if isinstance(msg, M.StepMetrics):
            self.step.emit(msg)
        elif isinstance(msg, M.StateChanged):
            if not self._terminal:
                self._set_state("stopping" if self.state == "stopping" and msg.state == "running" else msg.state)
        elif isinstance(msg, M.RunStarted):
            self.run_started.emit(msg)
        elif isinstance(msg, M.EvalResult):
            self.eval_result.emit(msg)
        elif isinstance(msg, M.CheckpointSaved):
            self.checkpoint.emit(msg)
        elif isinstance(msg, M.Warning):
            self.warning.emit(msg.text)
        elif isinstance(msg, M.Progress):
            self.progress.emit(msg)
        elif isinstance(msg, M.RunFinished):
            self._terminal = True
            self._set_state(STOPPED if msg.reason == "stopped" else FINISHED)
            self.finished.emit(msg)
        elif isinstance(msg, M.RunFailed):
            self._terminal = True
            self._set_state(FAILED)
            self.failed.emit(msg)
