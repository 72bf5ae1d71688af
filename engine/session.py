"""The training session: the loop and its controls (pause, resume, stop, snapshot, embed).

One code path for the GUI's engine process, the headless CLI and ``torchrun``. The session talks
to the outside only through ``emit(message)`` and a ``control`` object that yields commands, and
through the run folder it writes. Its parts live in :mod:`engine.training`: the learner (method,
device and precision, optimiser and one step), budget and schedule, the run's data (``prepare_data``),
checkpoints (``RunCheckpoints``: saves, resume, last good state), reports (online evaluation and
snapshots), the run folder, and when several processes end (``Ending``).

Reproducibility: the order of every epoch comes from a generator seeded by (seed, epoch) and
the random draws of every step (augmentations, masks, permutations) from one seeded by
(seed, step, rank) (:mod:`engine.seeds`). A resumed run therefore continues exactly where it
stopped: on the CPU, stop + resume gives the same weights as an uninterrupted run (with one thread count,
``SSLWB_TRAIN_THREADS=N``: the count chosen by timing the steps may change, and sums over another count of
threads round differently).

Several processes (``torchrun``, :mod:`engine.training.distributed`): the batch size is the global
batch, each process trains on its slice of every global batch under DDP, losses that couple samples
see the global batch (``gather``), and the step and sample counts do not depend on the number of
processes (a run resumes with any number).
"""

from __future__ import annotations

import copy
import math
import queue
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from engine import messages as M
from engine.config import RunConfig
from engine.errors import EXIT_INTERRUPTED, BadInput, Diverged, Interrupted, Stopped, exit_code_for
from engine.eval.protocol import run_backbone_name
from engine.methods import get_method_class
from engine.params import ConfigError
from engine.seeds import epoch_order, step_generator
from engine.training.batch import resolve_batch
from engine.training.checkpoints import run_config
from engine.training.device import device_name, resolve_device
from engine.training.distributed import (
    Ending,
    close_distributed,
    init_distributed,
    peer_lost,
    peer_lost_message,
    shard_order,
    world_and_rank,
)
from engine.training.faults import failure_report
from engine.training.learner import Learner
from engine.training.monitor import Monitor
from engine.training.optim import Budget, lr_at
from engine.training.progress import Progress, StepMeter
from engine.training.record import RunRecord, abandon, claim
from engine.training.report import Reporter
from engine.training.run_checkpoints import RunCheckpoints, weights_diverged
from engine.training.rundata import prepare_data
from engine.training.threads import ThreadTuner

EMIT_EVERY_S = 0.25


# -- control -------------------------------------------------------------------------------------
class Control:
    """Where commands come from. ``poll`` never blocks; ``wait`` blocks up to ``timeout``."""

    def poll(self) -> list[M.Command]:
        return []

    def wait(self, timeout: float) -> M.Command | None:
        time.sleep(timeout)
        return None


class QueueControl(Control):
    def __init__(self, q):
        self.q = q

    def poll(self) -> list[M.Command]:
        out = []
        while True:
            try:
                out.append(self.q.get_nowait())
            except (queue.Empty, EOFError, OSError):
                return out

    def wait(self, timeout: float) -> M.Command | None:
        try:
            return self.q.get(timeout=timeout)
        except (queue.Empty, EOFError, OSError):
            return None


class FlagControl(Control):
    """Commands set from another thread or a signal handler (the CLI's Ctrl-C)."""

    def __init__(self):
        self.pending: list[M.Command] = []

    def send(self, name: str, **args) -> None:
        self.pending.append(M.Command(name, args))

    def poll(self) -> list[M.Command]:
        out, self.pending = self.pending, []
        return out

    def wait(self, timeout: float) -> M.Command | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.pending:
                return self.pending.pop(0)
            time.sleep(0.01)
        return None


class StopWatch:
    """``is_set()``: has a stop been asked for? It looks at the session's control (other commands wait
    for the training loop), so long work outside the steps (reading the data, a snapshot, the final
    evaluation) can end within a batch when the user stops."""

    def __init__(self, session: Session):
        self.session = session

    def is_set(self) -> bool:
        return self.session.poll_stop()


def _counter(name: str) -> property:
    """A counter of the session's :class:`Progress` as its attribute (``session.step``, ...)."""
    return property(lambda s: getattr(s.progress, name), lambda s, v: setattr(s.progress, name, v))


# -- the session ---------------------------------------------------------------------------------
class Session:
    """Runs one training run. ``run()`` returns the summary dict and never raises for bad input:
    failures become a :class:`messages.RunFailed` (and a ``failed`` status in the run folder)."""

    step, epoch, batch_in_epoch, samples, train_time = (_counter(n) for n in (
        "step", "epoch", "batch_in_epoch", "samples", "train_time"))

    def __init__(self, config: RunConfig, emit: Callable[[M.Message], None] | None = None,
                 control: Control | None = None, run_dir: str | Path | None = None, resume: bool = False,
                 distributed: bool | None = None):
        self.cfg = config
        self.emit_fn = emit or (lambda m: None)
        self.control = control or Control()
        self.run_dir = Path(run_dir) if run_dir else None
        self.resume = resume
        self.world, self.rank = world_and_rank(distributed)
        self.is_main = self.rank == 0
        self.state = "loading"
        self.progress = Progress()  # shared with the parts below
        self.stop_requested = False
        self.paused = False
        self.learner: Learner | None = None  # the method, its step, optimiser and precision
        self.ckpt: RunCheckpoints | None = None
        self.report: Reporter | None = None
        self.monitor: Monitor | None = None
        self.record: RunRecord | None = None  # the run folder (main process only)
        self.lock = None  # this process's claim to write the run folder (rank 0)
        self.notes: list[str] = []
        self.threads: ThreadTuner | None = None
        self.pending: list[M.Command] = []  # commands read while looking for a stop, for the loop
        self.stop_watch = StopWatch(self)

    @property
    def method(self):
        return self.learner.method if self.learner is not None else None

    @property
    def ckpt_step(self) -> int | None:
        """The step of the checkpoint on disk."""
        return self.ckpt.step if self.ckpt is not None else None

    # -- plumbing --------------------------------------------------------------------------
    def emit(self, msg: M.Message | None) -> None:
        if self.is_main and msg is not None:
            try:
                self.emit_fn(msg)
            except Exception:  # a broken consumer must never kill training
                pass

    def set_state(self, state: str, detail: str = "") -> None:
        self.state = state
        self.emit(M.StateChanged(state, detail))
        self.write_status(force=True)

    def write_status(self, force: bool = False, **extra) -> None:
        if self.report is not None:
            self.report.status(self.state, force, **extra)

    def poll_stop(self) -> bool:
        """Read the control without acting on anything but a stop; True when a stop was asked for."""
        for cmd in self.control.poll():
            if cmd.name == M.STOP:
                self.stop_requested, self.paused = True, False
            else:
                self.pending.append(cmd)
        return self.stop_requested

    def _handle_commands(self) -> None:
        cmds, self.pending = self.pending + self.control.poll(), []
        for cmd in cmds:
            self._apply(cmd)
        while self.paused and not self.stop_requested:
            self.write_status()
            cmd = self.control.wait(0.2)
            if cmd is not None:
                self._apply(cmd)

    def _apply(self, cmd: M.Command) -> None:
        if cmd.name == M.STOP:
            self.stop_requested = True
            self.paused = False
        elif cmd.name == M.PAUSE and not self.paused:
            self.paused = True
            self.save_checkpoint()  # a paused run is safe to close
            self.set_state("paused")
        elif cmd.name == M.RESUME and self.paused:
            self.paused = False
            self.set_state("running")
        elif cmd.name == M.SNAPSHOT:
            self.save_checkpoint()
        elif cmd.name == M.EMBED:
            self.embed_snapshot()

    def save_checkpoint(self, keep_epoch: bool = False) -> Path | None:
        if not self.is_main or self.record is None or self.learner is None or self.state == "loading":
            return None  # nothing trained yet: never overwrite a run's checkpoint with a fresh model
        try:
            path = self.ckpt.save(self.epoch if keep_epoch else None)
        except Diverged:
            if self.ending.defer():  # several processes: they all stop at their next agreement
                return None
            raise
        self.record.flush()
        self.emit(M.CheckpointSaved(str(path), self.step, float(self.epoch)))
        self.write_status(force=True)
        return path

    def embed_snapshot(self) -> None:
        if self.report is not None:
            self.report.embedding(self.method)

    # -- set-up ----------------------------------------------------------------------------
    def setup(self) -> None:
        if not self.cfg.optim.batch_size:  # auto: resolved below into this run's own copy
            self.cfg = copy.deepcopy(self.cfg)
        cfg = self.cfg
        if not cfg.epochs and not cfg.minutes:
            raise ConfigError("epochs", "set a budget: --epochs E or --minutes M (one must be above 0)")
        self.method_cls = get_method_class(cfg.method)
        method_cfg = cfg.method_config()
        self.device = resolve_device(cfg.device)
        init_distributed(self.device, self.world)
        self.threads = ThreadTuner.for_run(self.device, self.world)  # CPU threads: by the load, then by timing
        self.ending = Ending(self.world, self.device)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        if self.is_main and self.resume:
            self._claim(self.run_dir)  # a live run is refused before anything is read or written
        self.set_state("loading", "reading the dataset")
        # the data is read before a new run folder exists: bad data leaves no stub run behind
        def reading(done, total, detail):
            self.emit(M.Progress("data", done, total, detail))
            if self.poll_stop():
                raise Stopped("stopped while reading the dataset")

        rd = prepare_data(cfg, reading)
        rd.ready(cfg, self.method_cls, self.device)
        self.rundata, self.data = rd, rd.data
        self.notes = self.notes + rd.notes
        self.monitor = Monitor(cfg, rd, self.device, None)
        # a resumed run keeps the backbone it trained: ``auto`` on another device (or in a later version) would
        # pick another one, which its checkpoint does not fit
        trained = run_backbone_name(self.run_dir, cfg) if self.resume and self.run_dir is not None else ""
        self.learner = Learner.build(cfg, self.method_cls, method_cfg, self.data, self.device, self.world, trained,
                                     init=not self.resume)
        if self.learner.init_report:
            self.notes.append(f"initial weights: {self.learner.init_report}")
        self.notes.extend(resolve_batch(cfg, self.method_cls, self.learner, self.data, self.device, self.world))
        self.budget, notes = Budget.plan(cfg, len(self.data), self.world)
        self.notes.extend(notes)
        self.report = Reporter(cfg, self.monitor, self.progress, self.budget, self.emit, self.is_main)
        self.ckpt = RunCheckpoints(cfg, self.learner, self.progress, self.run_dir, self.is_main)
        if self.resume:
            self.notes.extend(self.ckpt.resume(self.budget, len(self.data)))
        if self.is_main:
            resumed = {"step": self.step, "epoch": self.epoch, "samples": self.samples, "processes": self.world}
            self.record = self.report.record = RunRecord.start(cfg, self.run_dir, resumed if self.resume else None,
                                                               self._claim)
            self.run_dir = self.monitor.run_dir = self.ckpt.run_dir = self.record.run_dir
            self.write_status(force=True)
            self.record.write_data(self.data, rd.eval_data, self.notes, self.learner.backbone_name,
                                   self.monitor.describe())

    def _claim(self, run_dir: Path) -> None:
        """Take the run folder's writer lock (held until run() ends) and clear what a killed writer left."""
        self.lock, notes = claim(run_dir, lambda text: self.emit(M.Warning(text)))
        self.notes.extend(notes)

    def _fraction(self) -> float:
        return self.budget.fraction(self.step, self.train_time)

    # -- training --------------------------------------------------------------------------
    def _budget_reached(self) -> str | None:
        """Why the run ends now, or None (the same on every process: :class:`Ending`)."""
        return self.ending.reason(self.budget.reached(self.step, self.train_time), self.stop_requested, self.step)

    def _train_step(self, x_u8: torch.Tensor, labels: torch.Tensor | None, meter: StepMeter) -> float:
        """One optimiser step; its learning rate."""
        lr = lr_at(self._fraction(), self.cfg)
        g = step_generator(self.cfg.seed, self.step, self.rank, self.device)
        x = x_u8.to(self.device, non_blocking=True).float().div_(255)
        if labels is not None:
            labels = labels.to(self.device, non_blocking=True)
        loss, metrics = self.learner.step(x, labels, g, lr, self.cfg.optim.grad_clip)
        self.ending.watch(loss)
        self.method.after_step(self._fraction())
        self.step += 1
        self.batch_in_epoch += 1
        self.samples += self.budget.batch_size
        frames = x.shape[0] * x.shape[1] if x.ndim == 5 else x.shape[0]  # clips count their frames
        meter.add(loss, metrics, frames * self.world)
        if self.device.type == "cuda" and meter.steps % 50 == 0:
            torch.cuda.synchronize(self.device)
        return lr

    def train(self) -> str:
        cfg = self.cfg
        self.set_state("running")
        self.ckpt.saved_at = time.monotonic()
        meter = StepMeter(self.train_time)
        reason = self._budget_reached()
        if not self.method_cls.trains:
            return "completed"
        self._keep_last_good()
        self.report.start()
        if reason is None:  # the random-init map and kNN: the first frame of the run
            self.report.maybe_snapshot(self.method, self.stop_watch)
        if self.threads is not None:
            self.threads.start()
            self._announce_threads()
        while reason is None:
            # global batch k of the epoch is the same images for any number of processes
            # (a streamed set reads the epoch's random order grouped by the parts of its cache on disk)
            order = shard_order(self.data.reading_order(epoch_order(len(self.data), cfg.seed, self.epoch)),
                                self.budget.batch_size, self.world, self.rank)
            self.method.train()
            batches = self.data.batches(self.budget.per_process, order, start=self.batch_in_epoch)
            for x_u8, labels, _idx in batches:
                self._handle_commands()
                if self.stop_requested and self.world == 1:
                    return "stopped"
                t0 = time.perf_counter()
                lr = self._train_step(x_u8, labels, meter)
                took = time.perf_counter() - t0
                self.train_time += took
                if self.threads is not None:
                    self.threads.step_done(took)
                    self._announce_threads()
                reason = self._budget_reached()
                if meter.due(EMIT_EVERY_S) or reason is not None:
                    values = meter.read(self.step, self.train_time, lr, check=self.world == 1)
                    if math.isfinite(values["loss"]):  # several processes: they agree on a divergence
                        self.report.step(values)
                    if self.ckpt.last_good.due():
                        self._keep_last_good()
                if reason is None:
                    self.report.maybe_snapshot(self.method, self.stop_watch)
                if self.is_main and self.ckpt.due(cfg.checkpoint_every_minutes):
                    self.save_checkpoint()
                self.write_status()
                if reason is not None:
                    break
            else:
                self.progress.next_epoch()  # the epoch ran to its end
                self._end_of_epoch()
                reason = self._budget_reached()
                continue
            break
        if self.batch_in_epoch >= self.budget.steps_per_epoch:  # the budget ended exactly with an epoch
            self.progress.next_epoch()
            self._end_of_epoch()  # its kNN monitor, reconstructions and embedding snapshot too
        return reason or "completed"

    def _announce_threads(self) -> None:
        """The thread tuner's changes of count since the last call: a log line and a metrics record each."""
        for old, new in self.threads.news():
            if self.record is not None:
                self.record.write({"type": "threads", "step": self.step, "time": round(self.train_time, 3),
                                   "threads": new, "from": old})
            self.emit(M.Warning(self.threads.describe(old, new)))

    def _keep_last_good(self) -> None:
        if self.is_main and not self.ckpt.keep_last_good() and not self.ending.defer():
            raise weights_diverged(self.step)

    def _end_of_epoch(self) -> None:
        self.report.end_of_epoch(self.method)
        if self.cfg.checkpoint_every_epochs and self.epoch % self.cfg.checkpoint_every_epochs == 0:
            self.save_checkpoint(keep_epoch=True)
        self.write_status(force=True)

    # -- entry point -----------------------------------------------------------------------
    def run(self) -> dict:
        try:
            self.setup()
            self.report.started(self.run_dir, self.device, len(self.data), self.resume, self.notes)
            reason = self.train()
            self.save_checkpoint()
            if self.is_main and self.run_dir is not None:
                self.ckpt.export_encoder()
            results = {}
            if reason != "stopped" and self.cfg.eval.final_eval and self.is_main:
                if self.rundata.bank_data is not None and self.rundata.eval_data is not None:
                    self.set_state("evaluating", "kNN and linear probe")
                results = self.report.final(self.method, self.learner.backbone_name, self.stop_watch)
                if results.get("stopped"):  # what was measured is kept; the run ends as a stop does
                    reason = "stopped"
            self.state = "stopped" if reason == "stopped" else "finished"
            self.write_status(force=True, reason=reason)
            return self.report.finished(reason, self.run_dir, self.world, results)
        except Diverged as exc:  # the last good state becomes the checkpoint when it is newer
            message = self.ckpt.diverged(exc, self.save_checkpoint, self.record, self.device) if self.ckpt else str(exc)
            return self._fail(message, "", exc)
        except (KeyboardInterrupt, Interrupted):  # Ctrl-C twice, or a stop before the first step
            return self._stopped()
        except Exception as exc:
            if peer_lost(exc, self.world):  # another process of the run ended: its raw library text says nothing
                try:
                    self.save_checkpoint()  # between two steps: this process's weights are whole
                except Exception:  # noqa: BLE001 - the checkpoint on disk stays as it was
                    pass
                return self._fail(peer_lost_message(self.world, self.rank, self.step, self.run_dir, self.ckpt_step),
                                  "", exc)
            return self._fail(*failure_report(exc, self.run_dir, self.cfg, self.ckpt_step), exc)
        finally:
            if self.record is not None:
                try:
                    self.record.close()
                except OSError:  # a full disk: what could be written was
                    pass
            if self.lock is not None:
                self.lock.release()
            close_distributed(self.world)

    def _stopped(self) -> dict:
        """A stop outside the loop's own: the checkpoint written when something was trained, the state
        ``stopped``; a new run stopped before its first step leaves no folder behind."""
        try:
            self.save_checkpoint()
        except Exception:  # noqa: BLE001 - the checkpoint on disk stays as it was
            pass
        self.state = "stopped"
        if self.report is not None and self.record is not None:
            self.report.status("stopped", True, reason="stopped")
            return {**self.report.finished("stopped", self.run_dir, self.world, {}), "exit_code": EXIT_INTERRUPTED}
        if not self.resume and self.run_dir is not None:
            abandon(self.run_dir, self.lock)
            self.lock = None
        summary = {"reason": "stopped", "run_dir": str(self.run_dir or ""), "step": self.step, "epoch": self.epoch,
                   "samples": self.samples, "processes": self.world, "train_time_s": round(self.train_time, 1),
                   "exit_code": EXIT_INTERRUPTED}
        self.emit(M.RunFinished("stopped", str(self.run_dir or ""), self.step, summary))
        return summary

    def _fail(self, error: str, tb: str, exc: BaseException | None = None) -> dict:
        self.state = "failed"
        if self.report is not None:
            self.report.status("failed", True, error=error, checkpoint_step=self.ckpt_step, in_place=True)
        if isinstance(exc, BadInput) and not self.resume and self.run_dir is not None:
            abandon(self.run_dir, self.lock)  # the window makes the folder before the engine process starts
            self.lock = None
        self.emit(M.RunFailed(error, tb, str(self.run_dir or "")))
        return {"reason": "failed", "error": error, "run_dir": str(self.run_dir or ""),
                "exit_code": exit_code_for(exc) if exc is not None else 1}


def train_run(config: RunConfig, emit=None, control=None, run_dir=None, resume=False) -> dict:
    return Session(config, emit, control, run_dir, resume).run()


resume_config = run_config  # the config of an existing run folder (to resume it)

__all__ = ["Session", "Control", "QueueControl", "FlagControl", "StepMeter", "train_run", "resume_config",
           "resolve_device", "device_name"]
