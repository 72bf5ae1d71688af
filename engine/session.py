"""The training session: the loop and its controls (pause, resume, stop, snapshot, embed).

One code path for the GUI's engine process, the headless CLI and ``torchrun``. The session talks
to the outside only through ``emit(message)`` and a ``control`` object that yields commands, and
through the run folder it writes. Its parts live in :mod:`engine.training`: device and precision,
optimiser and schedule, the run's data (``prepare_data``), checkpoints, online evaluation and
snapshots.

Reproducibility: the order of every epoch comes from a generator seeded by (seed, epoch) and
the random draws of every step (augmentations, masks, permutations) from one seeded by
(seed, step, rank) (:mod:`engine.seeds`). A resumed run therefore continues exactly where it
stopped: on the CPU, stop + resume gives the same weights as an uninterrupted run.

Several processes (``torchrun``, :mod:`engine.training.distributed`): the batch size is the global
batch, each process trains on its slice of every global batch under DDP, losses that couple samples
see the global batch (``gather``), and the step and sample counts do not depend on the number of
processes (a run resumes with any number).
"""

from __future__ import annotations

import math
import queue
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from engine import messages as M
from engine.config import RunConfig
from engine.data import DataError
from engine.data.base import Cancelled
from engine.dist import Group
from engine.errors import BadInput, Diverged, UsageError, exit_code_for
from engine.methods import DataInfo, get_method_class
from engine.models import build_backbone, default_backbone
from engine.params import ConfigError
from engine.runs import (
    acquire_writer,
    last_checkpoint,
    new_run_dir,
    remove_if_empty,
    remove_stale_temporaries,
)
from engine.seeds import epoch_order, step_generator
from engine.training import checkpoints
from engine.training.checkpoints import run_config
from engine.training.device import Precision, device_name, place_model, resolve_device
from engine.training.distributed import (
    agree,
    close_distributed,
    init_distributed,
    shard_order,
    sync_batchnorm,
    world_and_rank,
    wrap_step,
)
from engine.training.faults import LastGood, all_finite, divergence_message, failure_message
from engine.training.monitor import Monitor, SnapshotClock
from engine.training.optim import Budget, build_optimizer, lr_at, set_lr
from engine.training.record import RunRecord
from engine.training.resume import resume_notes
from engine.training.rundata import prepare_data

EMIT_EVERY_S = 0.25
AGREE_EVERY = 10  # several processes: they agree on a time budget or a stop every this many steps


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


def _to_float(v) -> float:
    return float(v.detach().float().item()) if isinstance(v, torch.Tensor) else float(v)


class StepMeter:
    """Sums the steps' loss and metrics on the device (no sync per step) until they are read out, a few
    times a second."""

    def __init__(self, train_time: float):
        self.reset(train_time)

    def reset(self, train_time: float) -> None:
        self.sums: dict = {}
        self.steps = 0
        self.images = 0
        self.since, self.since_train_time = time.monotonic(), train_time

    def due(self, every_s: float) -> bool:
        return time.monotonic() - self.since >= every_s

    def add(self, loss: torch.Tensor, metrics: dict, images: int) -> None:
        self.sums["loss"] = self.sums.get("loss", 0.0) + loss.detach().float()
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + (v.detach().float() if isinstance(v, torch.Tensor) else float(v))
        self.steps += 1
        self.images += images

    def read(self, step: int, train_time: float, lr: float) -> dict:
        """The mean loss and metrics since the last read, the learning rate and images/s; then reset."""
        values = {k: _to_float(v) / self.steps for k, v in self.sums.items()}
        if not math.isfinite(values["loss"]):
            raise Diverged(f"the loss became {values['loss']} by step {step}: training diverged", step,
                           values["loss"])
        values["lr"] = lr
        values["images_per_s"] = self.images / max(1e-6, train_time - self.since_train_time)
        self.reset(train_time)
        return values


# -- the session ---------------------------------------------------------------------------------
class Session:
    """Runs one training run. ``run()`` returns the summary dict and never raises for bad input:
    failures become a :class:`messages.RunFailed` (and a ``failed`` status in the run folder)."""

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
        self.record: RunRecord | None = None  # the run folder (main process only)
        self.step = self.epoch = self.batch_in_epoch = 0
        self.samples = 0  # images trained on, over all processes
        self.train_time = 0.0
        self.stop_requested = False
        self.paused = False
        self.method = None
        self.monitor: Monitor | None = None
        self.lock = None  # this process's claim to write the run folder (rank 0)
        self.ckpt_step: int | None = None  # the step of the checkpoint on disk
        self.last_good = LastGood()
        self.notes: list[str] = []
        self._resumed_from: dict | None = None

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
        if self.record is not None:
            self.record.status(force, state=self.state, step=self.step, epoch=self.epoch, samples=self.samples,
                               elapsed_s=round(self.train_time, 2),
                               last_knn=self.monitor.last_knn if self.monitor else None,
                               random_init_knn=self.monitor.random_init_knn if self.monitor else None, **extra)

    def _handle_commands(self) -> None:
        for cmd in self.control.poll():
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

    # -- set-up ----------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        if not cfg.epochs and not cfg.minutes:
            raise ConfigError("epochs", "set a budget: --epochs E or --minutes M (one must be above 0)")
        self.method_cls = get_method_class(cfg.method)
        method_cfg = cfg.method_config()
        self.device = resolve_device(cfg.device)
        init_distributed(self.device, self.world)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        if self.is_main and self.resume:
            self._claim()  # a live run is refused before anything is read or written
        self.set_state("loading", "reading the dataset")
        # the data is read before a new run folder exists: bad data leaves no stub run behind
        rd = prepare_data(cfg, lambda done, total, detail: self.emit(M.Progress("data", done, total, detail)))
        if self.method_cls.needs_labels and not rd.data.labelled:
            raise ConfigError("method", f"{cfg.method} needs labels, and {cfg.data.spec} is unlabeled; "
                                        "choose a dataset with class folders or another method")
        rd.place(self.device, cfg.data.in_memory_limit_mb)
        self.rundata, self.data, self.eval_data = rd, rd.data, rd.eval_data
        self.notes = self.notes + rd.notes
        self.monitor = Monitor(cfg, rd, self.device, None)
        self.clock = SnapshotClock(cfg.eval.snapshot_every_s)

        self._build_model(method_cfg)
        self.budget, notes = Budget.plan(cfg, len(self.data), self.world)
        self.notes.extend(notes)
        if self.resume:
            self.load_checkpoint()
        if self.is_main:
            self._open_record()
            self.monitor.run_dir = self.run_dir
            self.record.write_data(self.data, self.eval_data, self.notes, self.backbone_name)

    def _claim(self) -> None:
        """Take the run folder's writer lock (held until run() ends) and clear what a killed writer left."""
        self.lock = acquire_writer(self.run_dir)
        if self.lock.took_over:
            self.emit(M.Warning(f"took over {self.run_dir} from process {self.lock.took_over}, which ended "
                                "without releasing it"))
        removed = remove_stale_temporaries(self.run_dir)
        if removed:
            self.notes.append(f"removed {len(removed)} unfinished temporary file(s) left by a writer that was "
                              f"killed mid-write: {', '.join(p.name for p in removed[:3])}")

    def _open_record(self) -> None:
        """Create (a new run) or reopen (a resumed one) the run folder, claimed by this process."""
        cfg = self.cfg
        if self.resume:
            stored = run_config(self.run_dir).to_dict()
            changed = cfg.to_dict() | {"device": stored.get("device", "auto")}  # the device: this session only
            if changed != stored:
                type(cfg).from_dict(changed).save(self.run_dir / "config.json")
        else:
            if self.run_dir is None:
                self.run_dir = new_run_dir(cfg.runs_root, cfg.method, cfg.data.spec, cfg.name)
            self._claim()
            if (self.run_dir / "config.json").exists():
                raise UsageError(f"{self.run_dir} already holds a run; continue it with --resume {self.run_dir} "
                                 "or choose another run folder")
        self.record = RunRecord.open(cfg, self.run_dir, self.resume)
        if self.resume:
            self.record.write({"type": "resume", "step": self.step, "epoch": self.epoch, "samples": self.samples,
                               "processes": self.world, "time": time.time()})
        self.write_status(force=True)

    def _build_model(self, method_cfg) -> None:
        cfg, data = self.cfg, self.data
        bname = cfg.backbone
        if bname == "auto":
            bname = default_backbone(self.device.type, "vit" if self.method_cls.backbone_kind == "vit" else "cnn")
        self.backbone_name = bname
        backbone = build_backbone(bname, cfg.data.image_size)
        info = DataInfo(image_size=cfg.data.image_size, num_classes=data.num_classes if data.labelled else 0)
        method = self.method_cls(method_cfg, backbone, info)
        method = sync_batchnorm(method, self.device, self.world, cfg.sync_bn)
        self.method = place_model(method, self.device)
        self.method.set_group(Group(gather=cfg.gather))
        synced = any(type(m).__name__ in ("SyncBatchNorm", "GlobalBatchNorm") for m in self.method.modules())
        self.step_fn = wrap_step(self.method, self.device, self.world, synced_bn=synced, compile=cfg.compile)
        self.optimizer = build_optimizer(self.method, cfg) if self.method_cls.trains else None
        self.precision = Precision(self.device, cfg.precision)

    def _progress_fraction(self) -> float:
        return self.budget.fraction(self.step, self.train_time)

    # -- checkpoints and snapshots ----------------------------------------------------------
    def save_checkpoint(self, keep_epoch: bool = False) -> Path | None:
        if not self.is_main or self.record is None or self.method is None or self.state == "loading":
            return None  # nothing trained yet: never overwrite a run's checkpoint with a fresh model
        progress = self._progress()
        if self.method_cls.trains and not all_finite(self.method):  # never overwrite a good checkpoint
            raise Diverged(f"the weights became NaN or infinite by step {self.step}: training diverged",
                           self.step, float("nan"))
        path = checkpoints.save_checkpoint(self.run_dir, self.method, optimizer=self.optimizer,
                                           scaler=self.precision.state_dict(), progress=progress, cfg=self.cfg,
                                           backbone=self.backbone_name,
                                           keep_epoch=self.epoch if keep_epoch else None)
        self._last_ckpt = time.monotonic()
        self.ckpt_step = self.step
        if self.record is not None:
            self.record.flush()
        self.emit(M.CheckpointSaved(str(path), self.step, float(self.epoch)))
        self.write_status(force=True)
        return path

    def _progress(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "samples": self.samples, "train_time": self.train_time}

    def load_checkpoint(self) -> None:
        """Continue from the run's checkpoint (reads only: the run folder is written after it loaded)."""
        if self.run_dir is None or last_checkpoint(self.run_dir) is None:
            raise ConfigError("resume", f"no checkpoint to resume from in {self.run_dir} "
                                        "(checkpoints/last.pt is missing)")
        state = checkpoints.load_checkpoint(self.run_dir, self.method, self.optimizer)
        self.precision.load_state_dict(state.get("scaler"))
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state.get("batch_in_epoch", 0))
        self.samples = int(state.get("samples", self.step * self.budget.batch_size))
        self.train_time = float(state.get("train_time", 0.0))
        self.ckpt_step = self.step
        old = state.get("config") or None
        lr_then = None
        if old:
            try:
                old_cfg = type(self.cfg).from_dict(old)
                old_budget, _ = Budget.plan(old_cfg, len(self.data), self.world)
                lr_then = lr_at(old_budget.fraction(self.step, self.train_time), old_cfg)
            except (ConfigError, ValueError, TypeError):
                old = None
        self.notes.extend(resume_notes(old, self.cfg, lr_then, lr_at(self._progress_fraction(), self.cfg)))

    def export_encoder(self) -> Path | None:
        if not self.is_main or self.run_dir is None:
            return None
        return checkpoints.export_encoder(self.run_dir, self.method.encoder, backbone=self.backbone_name,
                                          method=self.cfg.method, image_size=self.cfg.data.image_size)

    def final_eval(self) -> dict:
        results = {"method": self.cfg.method, "backbone": self.backbone_name, "step": self.step,
                   "epoch": self.epoch, "train_time_s": round(self.train_time, 1)}
        if self.rundata.bank_data is not None and self.eval_data is not None:
            self.set_state("evaluating", "kNN and linear probe")
        return self.monitor.final(self.method, results)

    def embed_snapshot(self) -> None:
        if self.is_main:
            self.emit(self.monitor.embedding(self.method, self.step, self.epoch))

    # -- training --------------------------------------------------------------------------
    def _budget_reached(self) -> str | None:
        """Why the run ends now, or None. Several processes end together: a step budget is the same on
        each, a time budget or a stop request counts when they agree (every AGREE_EVERY steps)."""
        reason = self.budget.reached(self.step, self.train_time)
        if self.world == 1:
            return "stopped" if self.stop_requested else reason
        if reason == "completed" or self.step % AGREE_EVERY:
            return reason if reason == "completed" else None
        timed_out, stop = agree([reason is not None, self.stop_requested], self.device)
        return "stopped" if stop else "time budget" if timed_out else None

    def _train_step(self, x_u8: torch.Tensor, labels: torch.Tensor | None, meter: StepMeter) -> float:
        """One optimiser step; its learning rate."""
        cfg = self.cfg
        lr = lr_at(self._progress_fraction(), cfg)
        set_lr(self.optimizer, lr)
        g = step_generator(cfg.seed, self.step, self.rank, self.device)
        x = x_u8.to(self.device, non_blocking=True).float().div_(255)
        if labels is not None:
            labels = labels.to(self.device, non_blocking=True)
        with self.precision.autocast():
            loss, metrics = self.step_fn(x, labels, g)  # under DDP: gradients averaged during backward
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.backward(loss, self.optimizer)
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.method.parameters(), cfg.optim.grad_clip)
        self.precision.step(self.optimizer)
        self.method.after_step(self._progress_fraction())
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
        self._last_ckpt = time.monotonic()
        meter = StepMeter(self.train_time)
        reason = self._budget_reached()
        if not self.method_cls.trains:
            return "completed"
        self._keep_last_good()
        if self.clock.on and self.step > 0:  # a resumed run: its step-0 snapshot was taken before
            self.clock.done(self.train_time, 0.0)
        if reason is None and self.clock.due(self.train_time):
            self._timed_snapshot()  # the random-init map and kNN: the first frame of the run
        while reason is None:
            # global batch k of the epoch is the same images for any number of processes
            order = shard_order(epoch_order(len(self.data), cfg.seed, self.epoch), self.budget.batch_size,
                                self.world, self.rank)
            self.method.train()
            batches = self.data.batches(self.budget.per_process, order, start=self.batch_in_epoch)
            for x_u8, labels, _idx in batches:
                self._handle_commands()
                if self.stop_requested and self.world == 1:
                    return "stopped"
                t0 = time.perf_counter()
                lr = self._train_step(x_u8, labels, meter)
                self.train_time += time.perf_counter() - t0
                reason = self._budget_reached()
                if meter.due(EMIT_EVERY_S) or reason is not None:
                    self._log_step(meter.read(self.step, self.train_time, lr))
                    if self.last_good.due():
                        self._keep_last_good()
                if reason is None and self.clock.due(self.train_time):
                    self._timed_snapshot()
                if self.is_main and cfg.checkpoint_every_minutes and \
                        time.monotonic() - self._last_ckpt >= cfg.checkpoint_every_minutes * 60:
                    self.save_checkpoint()
                self.write_status()
                if reason is not None:
                    break
            else:
                # the epoch ran to its end
                self.epoch += 1
                self.batch_in_epoch = 0
                self._end_of_epoch()
                reason = self._budget_reached()
                continue
            break
        if self.batch_in_epoch >= self.budget.steps_per_epoch:  # the budget ended exactly with an epoch
            self.epoch += 1
            self.batch_in_epoch = 0
            self._end_of_epoch()  # its kNN monitor, reconstructions and embedding snapshot too
        return reason or "completed"

    def _keep_last_good(self) -> None:
        if self.is_main and not self.last_good.take(self.method, self.optimizer, self.precision.state_dict(),
                                                    self._progress()):
            raise Diverged(f"the weights became NaN or infinite by step {self.step}: training diverged",
                           self.step, float("nan"))

    def _write_last_good(self) -> int | None:
        """After a divergence: put the last good state in checkpoints/last.pt when it is newer than the
        checkpoint there (or there is none); the step the run can be resumed from."""
        if not self.is_main or self.run_dir is None or self.method is None:
            return None
        if self.last_good.step >= 0 and (self.ckpt_step is None or self.last_good.step > self.ckpt_step):
            progress = self.last_good.restore_into(self.method, self.optimizer)
            self.precision.load_state_dict(self.last_good.state["scaler"])
            self.step, self.epoch = progress["step"], progress["epoch"]
            self.batch_in_epoch, self.train_time = progress["batch_in_epoch"], progress["train_time"]
            self.save_checkpoint()
        return self.ckpt_step

    def _log_step(self, values: dict) -> None:
        p = self._progress_fraction()
        eta = self.train_time * (1 - p) / p if p > 0.01 else None
        epoch_f = self.epoch + self.batch_in_epoch / self.budget.steps_per_epoch
        msg = M.StepMetrics(self.step, round(epoch_f, 4), values, self.train_time, eta, min(1.0, p))
        if self.record is not None:
            self.record.write({"type": "step", "step": self.step, "epoch": round(epoch_f, 4), "samples": self.samples,
                            "time": round(self.train_time, 3), **{k: round(v, 6) for k, v in values.items()}})
        self.emit(msg)

    def _log_eval(self, kind: str, epoch, values: dict) -> None:
        self.emit(M.EvalResult(kind, self.step, float(epoch), values))
        if self.record is not None:
            self.record.write({"type": "eval", "kind": kind, "step": self.step, "epoch": epoch, **values})

    def _timed_snapshot(self) -> None:
        """The time-based snapshot (``eval.snapshot_every_s``): an embedding snapshot, the kNN monitor on its
        images (:meth:`Monitor.snapshot`) and a reconstruction preview. The one at step 0 also gives
        ``random_init_knn`` (in its eval record)."""
        t0, first = time.perf_counter(), self.step == 0
        if self.is_main:
            epoch_f = round(self.epoch + self.batch_in_epoch / max(1, self.budget.steps_per_epoch), 4)
            values, embedding = self.monitor.snapshot(self.method, self.step, epoch_f)
            if self.step == 0 and "knn_top1" in values:
                self.monitor.random_init_knn = values["random_init_knn"] = values["knn_top1"]
            self._log_eval("knn_monitor", epoch_f, values)
            self.emit(embedding)
            self.emit(self.monitor.reconstruction(self.method, self.step, epoch_f))
            self.method.train()  # feature extraction switched the encoder to eval mode
        self.clock.done(self.train_time, time.perf_counter() - t0, first=first)

    def _end_of_epoch(self) -> None:
        e = self.cfg.eval
        ep = self.epoch
        if e.knn_every_epochs and ep % e.knn_every_epochs == 0 and self.is_main:
            self._log_eval("knn_monitor", ep, self.monitor.knn(self.method))
            self.emit(self.monitor.reconstruction(self.method, self.step, self.epoch))
        if e.embed_every_epochs and ep % e.embed_every_epochs == 0:
            self.embed_snapshot()
        if self.cfg.checkpoint_every_epochs and ep % self.cfg.checkpoint_every_epochs == 0:
            self.save_checkpoint(keep_epoch=True)
        self.write_status(force=True)

    # -- entry point -----------------------------------------------------------------------
    def run(self) -> dict:
        try:
            self.setup()
            for note in self.notes:
                self.emit(M.Warning(note))
            self.emit(M.RunStarted(
                run_dir=str(self.run_dir), config=self.cfg.to_dict(), device=self.device.type,
                device_name=device_name(self.device), num_images=len(self.data),
                steps_per_epoch=self.budget.steps_per_epoch, total_steps=self.budget.total_steps,
                start_step=self.step, resumed=self.resume, notes=tuple(self.notes)))
            reason = self.train()
            self.save_checkpoint()
            self.export_encoder()
            results = {}
            if reason != "stopped" and self.cfg.eval.final_eval and self.is_main:
                results = self.final_eval()
                self.record.write_results(results)
                self._log_eval("final", self.epoch, {k: v for k, v in results.items() if isinstance(v, (int, float))})
            self.state = "stopped" if reason == "stopped" else "finished"
            self.write_status(force=True, reason=reason)
            summary = {"reason": reason, "run_dir": str(self.run_dir), "step": self.step, "epoch": self.epoch,
                       "samples": self.samples, "processes": self.world, "train_time_s": round(self.train_time, 1), **{k: v for k, v in results.items()
                                                                      if isinstance(v, (int, float, str))}}
            self.emit(M.RunFinished(reason, str(self.run_dir), self.step, summary))
            return summary
        except Diverged as exc:
            return self._fail_with(exc, self._diverged)
        except (ConfigError, DataError, Cancelled, BadInput) as exc:
            return self._fail(str(exc), "", exc)
        except torch.OutOfMemoryError as exc:
            bs = self.cfg.optim.batch_size
            return self._fail(f"out of GPU memory at batch size {bs}; lower the batch size (e.g. {max(2, bs // 2)}) "
                              "or choose a smaller backbone, then resume", traceback.format_exc(), exc)
        except KeyboardInterrupt as exc:
            try:
                self.save_checkpoint()
            except Exception:  # noqa: BLE001 - the checkpoint on disk stays as it was
                pass
            return self._fail("interrupted", "", exc)
        except OSError as exc:
            return self._fail(failure_message(exc, self.run_dir, self.cfg, self.ckpt_step), "", exc)
        except Exception as exc:
            return self._fail(failure_message(exc, self.run_dir, self.cfg, self.ckpt_step),
                              traceback.format_exc(), exc)
        finally:
            if self.record is not None:
                try:
                    self.record.close()
                except OSError:  # a full disk: what could be written was
                    pass
            if self.lock is not None:
                self.lock.release()
            close_distributed(self.world)

    def _diverged(self, exc: Diverged) -> str:
        good = self._write_last_good()
        if self.record is not None:
            self.record.write({"type": "diverged", "step": exc.step, "loss": exc.loss, "last_good_step": good,
                               "time": time.time()})
        return divergence_message(exc, self.run_dir, self.cfg, good, self.device.type)

    def _fail_with(self, exc: BaseException, make_message) -> dict:
        try:
            message = make_message(exc)
        except Exception as inner:  # noqa: BLE001 - e.g. the disk is full as well: say what happened first
            message = (f"{exc}; and then {failure_message(inner, self.run_dir, self.cfg, self.ckpt_step)}")
        return self._fail(message, "", exc)

    def _fail(self, error: str, tb: str, exc: BaseException | None = None) -> dict:
        self.state = "failed"
        if self.record is not None:
            self.record.status(True, state="failed", step=self.step, epoch=self.epoch,
                               elapsed_s=round(self.train_time, 2), error=error,
                               checkpoint_step=self.ckpt_step, in_place=True)
        exit_code = exit_code_for(exc) if exc is not None else 1
        if isinstance(exc, BadInput) and not self.resume and self.run_dir is not None and \
                (self.lock is not None or not (self.run_dir / ".writer.lock").exists()):
            if self.lock is not None:
                self.lock.release()
                self.lock = None
            remove_if_empty(self.run_dir)  # the window makes the folder before the engine process starts
        self.emit(M.RunFailed(error, tb, str(self.run_dir or "")))
        return {"reason": "failed", "error": error, "run_dir": str(self.run_dir or ""), "exit_code": exit_code}


def train_run(config: RunConfig, emit=None, control=None, run_dir=None, resume=False) -> dict:
    return Session(config, emit, control, run_dir, resume).run()


resume_config = run_config  # the config of an existing run folder (to resume it)

__all__ = ["Session", "Control", "QueueControl", "FlagControl", "StepMeter", "train_run", "resume_config",
           "resolve_device", "device_name"]
