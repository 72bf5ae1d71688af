"""Where a run is (step, epoch, position in the epoch, samples, seconds of training) and the running
sums of the steps' loss and metrics between two read-outs.

:class:`Progress` is shared by reference between the session and its parts (checkpoints, reports),
so each reads the same counters; a checkpoint stores it as its ``progress`` dict.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from engine.errors import Diverged


@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    samples: int = 0  # images trained on, over all processes
    train_time: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    def restore(self, state: dict, batch_size: int) -> None:
        """Take the counters of a checkpoint's (or a kept state's) progress."""
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state.get("batch_in_epoch", 0))
        self.samples = int(state.get("samples", self.step * batch_size))
        self.train_time = float(state.get("train_time", 0.0))

    def epoch_f(self, steps_per_epoch: int) -> float:
        """The epoch as a fraction (4 decimals)."""
        return round(self.epoch + self.batch_in_epoch / max(1, steps_per_epoch), 4)

    def next_epoch(self) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0


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

    def read(self, step: int, train_time: float, lr: float, check: bool = True) -> dict:
        """The mean loss and metrics since the last read, the learning rate and images/s; then reset.
        ``check``: raise :class:`Diverged` when the loss is NaN or infinite."""
        values = {k: _to_float(v) / self.steps for k, v in self.sums.items()}
        if check and not math.isfinite(values["loss"]):
            raise Diverged(f"the loss became {values['loss']} by step {step}: training diverged", step,
                           values["loss"])
        values["lr"] = lr
        values["images_per_s"] = self.images / max(1e-6, train_time - self.since_train_time)
        self.reset(train_time)
        return values


__all__ = ["Progress", "StepMeter"]
