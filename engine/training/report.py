"""What a session tells the outside while it trains: step metrics, evaluation results, the time-based
snapshots (embedding + kNN monitor + reconstruction), the per-epoch read-outs and the final evaluation,
as messages (``emit``) and records in the run folder (``metrics.jsonl``). Only the main process reports;
the snapshot clock runs on every process.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine import messages as M
from engine.eval.collapse import CollapseWatch
from engine.training.device import device_name
from engine.training.monitor import Monitor, SnapshotClock
from engine.training.optim import Budget
from engine.training.progress import Progress
from engine.training.record import RunRecord


class Reporter:
    def __init__(self, cfg, monitor: Monitor, progress: Progress, budget: Budget,
                 emit: Callable[[M.Message | None], None], is_main: bool):
        self.cfg, self.monitor, self.progress, self.budget = cfg, monitor, progress, budget
        self.emit, self.is_main = emit, is_main
        self.clock = SnapshotClock(cfg.eval.snapshot_every_s)
        self.collapse = CollapseWatch()
        self.record: RunRecord | None = None  # set once the run folder is open (main process)

    def started(self, run_dir, device, num_images: int, resumed: bool, notes: list[str]) -> None:
        """The notes (one warning each), then RunStarted."""
        for note in notes:
            self.emit(M.Warning(note))
        self.emit(M.RunStarted(
            run_dir=str(run_dir), config=self.cfg.to_dict(), device=device.type, device_name=device_name(device),
            num_images=num_images, steps_per_epoch=self.budget.steps_per_epoch,
            total_steps=self.budget.total_steps, start_step=self.progress.step, resumed=resumed, notes=tuple(notes)))

    def status(self, state: str, force: bool = False, **extra) -> None:
        """status.json (at most every few seconds unless ``force``)."""
        if self.record is not None:
            at, mon = self.progress, self.monitor
            self.record.status(force, state=state, step=at.step, epoch=at.epoch,
                               epoch_f=at.epoch_f(self.budget.steps_per_epoch), samples=at.samples,
                               elapsed_s=round(at.train_time, 2), last_knn=mon.last_knn,
                               random_init_knn=mon.random_init_knn, **extra)

    def finished(self, reason: str, run_dir, world: int, results: dict) -> dict:
        """The run's summary (reported with RunFinished)."""
        at = self.progress
        summary = {"reason": reason, "run_dir": str(run_dir), "step": at.step, "epoch": at.epoch,
                   "samples": at.samples, "processes": world, "train_time_s": round(at.train_time, 1),
                   **{k: v for k, v in results.items() if isinstance(v, (int, float, str))}}
        self.emit(M.RunFinished(reason, str(run_dir), at.step, summary))
        return summary

    def step(self, values: dict) -> None:
        """The mean loss and metrics since the last report (a few times a second)."""
        at = self.progress
        p = self.budget.fraction(at.step, at.train_time)
        eta = at.train_time * (1 - p) / p if p > 0.01 else None
        epoch_f = round(at.epoch + at.batch_in_epoch / self.budget.steps_per_epoch, 4)
        if self.record is not None:
            self.record.write({"type": "step", "step": at.step, "epoch": epoch_f, "samples": at.samples,
                               "time": round(at.train_time, 3), **{k: round(v, 6) for k, v in values.items()}})
        self.emit(M.StepMetrics(at.step, epoch_f, values, at.train_time, eta, min(1.0, p)))
        self.alarm("outputs", self.collapse.step(values))

    def alarm(self, where: str, text: str | None) -> None:
        """A new sign of collapse: a message, and a record so an opened run shows it too."""
        if text is None or not self.is_main:
            return
        self.emit(M.Collapse(self.progress.step, where, text))
        if self.record is not None:
            self.record.write({"type": "collapse", "step": self.progress.step, "where": where, "text": text})

    def eval(self, kind: str, epoch, values: dict) -> None:
        self.emit(M.EvalResult(kind, self.progress.step, float(epoch), values))
        if self.record is not None:
            self.record.write({"type": "eval", "kind": kind, "step": self.progress.step, "epoch": epoch, **values})

    def start(self) -> None:
        """Before the first step of a resumed run: its step-0 snapshot was taken before."""
        if self.clock.on and self.progress.step > 0:
            self.clock.done(self.progress.train_time, 0.0, step=self.progress.step)

    def maybe_snapshot(self, method, cancel=None) -> None:
        """The time-based snapshot (``eval.snapshot_every_s``) when due: an embedding snapshot, the kNN
        monitor on its images (:meth:`Monitor.snapshot`) and a reconstruction preview. The one at step 0
        also gives ``random_init_knn`` (in its eval record)."""
        at = self.progress
        if not self.clock.due(at.train_time, at.step):
            return
        t0, first = time.perf_counter(), at.step == 0
        if self.is_main:
            from engine.data.base import Cancelled

            epoch_f = at.epoch_f(self.budget.steps_per_epoch)
            try:
                values, embedding = self.monitor.snapshot(method, at.step, epoch_f, cancel=cancel)
            except Cancelled:  # a stop asked for meanwhile: the run ends at its next step, without this one
                method.train()
                return
            if at.step == 0 and "knn_top1" in values:
                self.monitor.random_init_knn = values["random_init_knn"] = values["knn_top1"]
            self.eval("knn_monitor", epoch_f, values)
            self.alarm("encoder", self.collapse.features(values["effective_rank"], values["collapse_std"],
                                                         first=at.step == 0))
            self.emit(embedding)
            self.emit(self.monitor.reconstruction(method, at.step, epoch_f))
            method.train()  # feature extraction switched the encoder to eval mode
        self.clock.done(at.train_time, time.perf_counter() - t0, first=first, step=at.step)

    def end_of_epoch(self, method) -> None:
        """The kNN monitor and reconstructions, and the embedding snapshot, of the epochs they are due."""
        e, ep = self.cfg.eval, self.progress.epoch
        if e.knn_every_epochs and ep % e.knn_every_epochs == 0 and self.is_main:
            self.eval("knn_monitor", ep, self.monitor.knn(method))
            self.emit(self.monitor.reconstruction(method, self.progress.step, ep))
        if e.embed_every_epochs and ep % e.embed_every_epochs == 0:
            self.embedding(method)

    def embedding(self, method) -> None:
        if self.is_main:
            self.emit(self.monitor.embedding(method, self.progress.step, self.progress.epoch))

    def final(self, method, backbone: str, cancel=None) -> dict:
        """The final kNN and linear probe (:meth:`Monitor.final`), written and reported; a stop asked for
        meanwhile (``cancel``) keeps what was measured, with ``stopped`` saying what was left out."""
        at = self.progress
        results = {"method": self.cfg.method, "backbone": backbone, "step": at.step, "epoch": at.epoch,
                   "train_time_s": round(at.train_time, 1)}
        results = self.monitor.final(method, results, cancel=cancel)
        self.record.write_results(results)
        self.eval("final", at.epoch, {k: v for k, v in results.items() if isinstance(v, (int, float))})
        return results


__all__ = ["Reporter"]
