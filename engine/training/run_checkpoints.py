"""A session's checkpoints: writing ``checkpoints/last.pt`` (never with NaN weights), continuing from it
(``--resume``), and the last good state kept in memory so that a diverged run still leaves one to resume
from (:class:`engine.training.faults.LastGood`). The file format is :mod:`engine.training.checkpoints`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from engine.errors import Diverged
from engine.params import ConfigError
from engine.runs import last_checkpoint
from engine.training import checkpoints
from engine.training.distributed import from_main
from engine.training.faults import LastGood, all_finite, divergence_message, failure_message
from engine.training.learner import Learner
from engine.training.optim import Budget, lr_at
from engine.training.progress import Progress
from engine.training.resume import resume_notes


def weights_diverged(step: int) -> Diverged:
    return Diverged(f"the weights became NaN or infinite by step {step}: training diverged", step, float("nan"))


class RunCheckpoints:
    """The checkpoints of one run folder for a session (main process). ``step``: the step of the
    checkpoint on disk (None: none yet)."""

    def __init__(self, cfg, learner: Learner, progress: Progress, run_dir: Path | None, is_main: bool = True):
        self.cfg, self.learner, self.progress, self.run_dir, self.is_main = cfg, learner, progress, run_dir, is_main
        self.step: int | None = None
        self.saved_at = time.monotonic()
        self.last_good = LastGood()

    def save(self, keep_epoch: int | None = None) -> Path:
        """Write the current state (and a copy kept for ``keep_epoch``); Diverged when the weights are
        not finite (a good checkpoint on disk is never overwritten)."""
        ln = self.learner
        if ln.optimizer is not None and not all_finite(ln.method):
            raise weights_diverged(self.progress.step)
        path = checkpoints.save_checkpoint(self.run_dir, ln.method, optimizer=ln.optimizer,
                                           scaler=ln.precision.state_dict(), progress=self.progress.as_dict(),
                                           cfg=self.cfg, backbone=ln.backbone_name, keep_epoch=keep_epoch)
        self.saved_at = time.monotonic()
        self.step = self.progress.step
        return path

    FIRST_S = 60.0

    def due(self, every_minutes: float) -> bool:
        """A checkpoint is due: the first one after the first minute of training or the first epoch,
        whichever comes first (a run killed at minute 4 can be resumed), then every
        ``checkpoint_every_minutes``."""
        if not every_minutes:
            return False
        if self.step is None:
            p = self.progress
            return p.epoch >= 1 or p.train_time >= min(self.FIRST_S, every_minutes * 60)
        return time.monotonic() - self.saved_at >= every_minutes * 60

    def resume(self, budget: Budget, num_images: int) -> list[str]:
        """Continue from the run's checkpoint (reads only); notes on what changed since it was written."""
        if self.run_dir is None or last_checkpoint(self.run_dir) is None:
            raise ConfigError("resume", f"no checkpoint to resume from in {self.run_dir} "
                                        "(checkpoints/last.pt is missing)")
        ln, cfg = self.learner, self.cfg
        state = checkpoints.load_checkpoint(self.run_dir, ln.method, ln.optimizer)
        ln.precision.load_state_dict(state.get("scaler"))
        self.progress.restore(state, budget.batch_size)
        self.step = self.progress.step
        old = state.get("config") or None
        lr_then = None
        if old:
            try:
                old_cfg = type(cfg).from_dict(old)
                old_budget, _ = Budget.plan(old_cfg, num_images, budget.world)
                lr_then = lr_at(old_budget.fraction(self.progress.step, self.progress.train_time), old_cfg)
            except (ConfigError, ValueError, TypeError):
                old = None
        lr_now = lr_at(budget.fraction(self.progress.step, self.progress.train_time), cfg)
        return resume_notes(old, cfg, lr_then, lr_now)

    # -- divergence ------------------------------------------------------------------------------------
    def keep_last_good(self) -> bool:
        """Keep a copy of the current state when it is finite; False when the weights are not."""
        ln = self.learner
        return self.last_good.take(ln.method, ln.optimizer, ln.precision.state_dict(), self.progress.as_dict())

    def restore_last_good(self) -> bool:
        """After a divergence: put the last good state back into the learner and the progress when it is
        newer than the checkpoint on disk (or there is none); True when it did (save it then)."""
        good = self.last_good
        if good.step < 0 or (self.step is not None and good.step <= self.step):
            return False
        progress = good.restore_into(self.learner.method, self.learner.optimizer)
        self.learner.precision.load_state_dict(good.state["scaler"])
        self.progress.restore(progress, 0)
        return True

    def diverged(self, exc: Diverged, save: Callable[[], object], record, device) -> str:
        """After a divergence: the last good state becomes the run's checkpoint when it is newer than the one
        on disk (``save``: the session's, which reports it) and the run's metrics say so; the one-line
        message, the same on every process when they agreed on the divergence (``exc.agreed``)."""
        error = None
        try:
            if self.is_main and self.run_dir is not None and self.restore_last_good():
                save()
        except Exception as inner:  # noqa: BLE001 - e.g. the disk is full as well: say what happened first
            error = inner
        good, run_dir = (self.step if self.is_main and self.run_dir is not None else None), self.run_dir
        if getattr(exc, "agreed", False):  # every process is here: each says what the main process knows
            good, run_dir = from_main([good, run_dir], device)
        if record is not None and error is None:
            try:
                record.write({"type": "diverged", "step": exc.step, "loss": exc.loss, "last_good_step": good,
                              "time": time.time()})
            except Exception as inner:  # noqa: BLE001
                error = inner
        if error is not None:
            return f"{exc}; and then {failure_message(error, self.run_dir, self.cfg, self.step)}"
        return divergence_message(exc, run_dir, self.cfg, good, device.type)

    def export_encoder(self) -> Path:
        ln = self.learner
        return checkpoints.export_encoder(self.run_dir, ln.method.encoder, backbone=ln.backbone_name,
                                          method=self.cfg.method, image_size=self.cfg.data.image_size)


__all__ = ["RunCheckpoints", "weights_diverged"]
