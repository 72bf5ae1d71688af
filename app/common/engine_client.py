"""Starts and controls the training process; turns its messages into Qt signals.

One generic ``message(object)`` signal carries every engine message in order (any panel can
connect to it), next to specific signals for the common ones. The training runs in its own
process (``engine.worker.train_process``, spawned), never on the GUI thread. If the process dies
without saying goodbye (killed, out of memory, a crash in native code), ``died`` tells why, the
window keeps everything it has shown, and :meth:`resume_last` continues from the last checkpoint.
Spawning, reading and noticing the death are :class:`app.common.process_client.ProcessClient`'s.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from app.common.process_client import ProcessClient, describe_exit
from engine import messages as M

IDLE, STARTING, FINISHED, STOPPED, FAILED, DIED = "idle", "starting", "finished", "stopped", "failed", "died"
ACTIVE = ("starting", "loading", "running", "paused", "stopping", "evaluating")


class EngineClient(ProcessClient):
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
    # died(str) (ProcessClient): the process ended without a word: a sentence for the user

    LABEL = "training"
    PROCESS_NAME = "sslwb-train"
    RESTART = "never"  # a run is resumed by the user (resume_last), never behind their back
    # training is the main job: at the priority of any other program (a niced trainer lost a core to any busy
    # program; bench/first_minute.py --busy 1 measured 0.90 kNN at nice 10, 0.94 at nice 0, the window as
    # smooth). SSLWB_TRAIN_NICE sets another.
    DEFAULT_NICE = 0
    NICE_ENV = "SSLWB_TRAIN_NICE"

    def __init__(self, parent: QObject | None = None, *, nice: int | None = None, budget_ms: float = 8.0):
        super().__init__(parent, nice=nice, budget_ms=budget_ms)
        self.state = IDLE
        self.run_dir: str | None = None
        self.config: dict | None = None
        self.last_step = 0
        self.last_checkpoint_step: int | None = None
        self.started_msg: M.RunStarted | None = None
        self._terminal = False
        self._resume = False
        self._standby = False  # the child is a standby process waiting for its run (prewarm)
        self._prewarm_timer = QTimer(self)  # keeps a standby ready between runs (enable_prewarm)
        self._prewarm_timer.setSingleShot(True)
        self._prewarm_timer.timeout.connect(self._prewarm_due)
        self._prewarm_on = False

    # -- queries ----------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.state in ACTIVE

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
        self._resume = resume
        if not self._start_standby():
            self._spawn()
        self._set_state(STARTING)
        return self.run_dir

    def prewarm(self) -> bool:
        """Start the next run's process ahead of time: it imports torch and the engine while the user is
        still choosing, so Start shows the first step seconds sooner. Nothing happens while another child
        is there. Returns whether a standby process waits."""
        if self._standby:
            return self.alive
        if self._proc is not None or self.active or self.in_process:
            return False
        self._standby = True
        self._spawn()
        return True

    def enable_prewarm(self, delay_ms: int = 500) -> None:
        """Keep a standby process ready: ``delay_ms`` from now, and again after every run's process ends."""
        self._prewarm_on = True
        self._prewarm_timer.start(delay_ms)

    def _prewarm_due(self) -> None:
        if not self._prewarm_on or self.active or self._stopping:
            return
        if not self.prewarm() and self._proc is not None and not self._standby:
            self._prewarm_timer.start(2000)  # the last run's process is still saying goodbye

    def _start_standby(self) -> bool:
        """Hand the run to the standby process, if one waits; False: spawn a fresh one."""
        if not self._standby:
            return False
        from engine.worker import START

        self._standby = False
        if self.alive and self._send(M.Command(START, {"config": self.config, "run_dir": self.run_dir,
                                                       "resume": self._resume})):
            return True
        ProcessClient.shutdown(self, 1.0)  # gone or deaf: drop it
        return False

    def _spawn_args(self, requests, messages):
        from engine.worker import train_process, train_standby

        if self._standby:
            return train_standby, (messages, requests, self._nice), {}
        return train_process, (self.config, self.run_dir, self._resume, messages, requests, self._nice), {}

    def resume_last(self, budget: dict | None = None) -> str:
        """Continue the last run from its checkpoint (after a stop, a failure or a crash)."""
        if self.run_dir is None:
            raise RuntimeError("no run to resume")
        return self.start(budget or {}, self.run_dir, resume=True)

    def send(self, name: str, **args) -> None:
        self._send(M.Command(name, args))

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
        if self.alive:
            self._proc.kill()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop a run cleanly (checkpoint) and wait for the process; used when the window closes."""
        self._prewarm_on = False
        self._prewarm_timer.stop()
        if self._standby:  # no run: the standby just ends
            self._standby = False
            super().shutdown(min(timeout, 2.0))
        elif self._proc is not None:
            super().shutdown(timeout, goodbye=M.Command(M.STOP))

    # -- messages ---------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)
        if self._prewarm_on and state in (FINISHED, STOPPED, FAILED, DIED):
            self._prewarm_timer.start(2000)

    def _child_ended(self, code: int | None) -> None:
        if self._standby:  # a standby that ended before its run: the next Start spawns a fresh process
            self._standby = False
            return
        if self._terminal:  # it said goodbye (RunFinished / RunFailed) before it ended
            return
        self._set_state(DIED)  # before can_resume(): a dead run is no longer active
        recorded = self.recorded_step()
        step = f" after step {recorded}" if recorded else ""
        if self.can_resume():
            ckpt = f" from step {self.last_checkpoint_step}" if self.last_checkpoint_step is not None else ""
            tail = f" Resume continues from the last checkpoint{ckpt}."
        else:
            tail = " No checkpoint was written, so the run cannot be resumed; start it again."
        self.died.emit(f"The training process {describe_exit(code)}{step}: the run is interrupted. Everything shown "
                       f"so far is kept.{tail}")

    def recorded_step(self) -> int:
        """The last step the run folder records (its status.json, as the Run history shows it); the last step
        reported when the folder says nothing."""
        from engine.runs import read_status

        try:
            step = read_status(self.run_dir).get("step") if self.run_dir else None
        except OSError:
            step = None
        return int(step) if isinstance(step, int) and not isinstance(step, bool) else int(self.last_step or 0)

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
