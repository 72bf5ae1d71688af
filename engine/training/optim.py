"""Optimiser and schedule of a run: AdamW, SGD or LARS; the budget in steps or minutes, and the
learning rate along it (linear warm-up, then cosine)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.params import ConfigError


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) over SGD with momentum; groups with ``lars_exclude`` skip adaptation."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust: float = 0.001):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "trust": trust,
                                  "lars_exclude": False})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if group["weight_decay"]:
                    d = d.add(p, alpha=group["weight_decay"])
                if not group["lars_exclude"]:
                    pn, dn = torch.norm(p), torch.norm(d)
                    q = torch.where((pn > 0) & (dn > 0), group["trust"] * pn / dn, torch.ones_like(pn))
                    d = d.mul(q)
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = torch.clone(d).detach()
                else:
                    buf.mul_(group["momentum"]).add_(d)
                p.add_(buf, alpha=-group["lr"])


def build_optimizer(method, cfg) -> torch.optim.Optimizer | None:
    """The optimiser of ``cfg.optim`` over the method's parameter groups (None: nothing to train)."""
    o = cfg.optim
    groups = method.param_groups(o.weight_decay)
    groups = [g for g in groups if g["params"]]
    if not groups:
        return None
    if o.optimizer == "adamw":
        clean = [{k: v for k, v in g.items() if k != "lars_exclude"} for g in groups]
        return torch.optim.AdamW(clean, lr=o.lr, betas=(0.9, 0.999))
    if o.optimizer == "sgd":
        clean = [{k: v for k, v in g.items() if k != "lars_exclude"} for g in groups]
        return torch.optim.SGD(clean, lr=o.lr, momentum=o.momentum, nesterov=False)
    if o.optimizer == "lars":
        return LARS(groups, lr=o.lr, momentum=o.momentum)
    raise ConfigError("optim.optimizer", f"unknown optimiser {o.optimizer!r}; choose adamw, sgd or lars")


def lr_at(progress: float, cfg) -> float:
    """The learning rate at ``progress`` (0..1) of the run: linear warm-up, then cosine or constant."""
    o = cfg.optim
    p = min(max(progress, 0.0), 1.0)
    if o.warmup_fraction > 0 and p < o.warmup_fraction:
        return o.lr * (0.1 + 0.9 * p / o.warmup_fraction)
    if o.schedule == "constant":
        return o.lr
    q = (p - o.warmup_fraction) / max(1e-8, 1 - o.warmup_fraction)
    return o.lr * (0.002 + 0.998 * 0.5 * (1 + math.cos(math.pi * q)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


@dataclass
class Budget:
    """How long a run trains: ``total_steps`` (0: no step limit) and/or ``budget_s`` of training time."""

    batch_size: int  # images per step over all processes (the global batch)
    steps_per_epoch: int
    total_steps: int
    budget_s: float
    world: int = 1

    @property
    def per_process(self) -> int:
        """Images per step on each process."""
        return self.batch_size // self.world

    @classmethod
    def plan(cls, cfg, num_images: int, world: int = 1) -> tuple[Budget, list[str]]:
        """The budget of ``cfg`` over ``num_images`` training images, each global batch split across
        ``world`` processes, and notes (a batch larger than the data is shrunk to fit; one that does not
        split evenly is rounded down). Steps per epoch do not depend on ``world``."""
        notes = []
        bs = cfg.optim.batch_size
        if bs > num_images:
            notes.append(f"batch size {bs} is larger than the dataset ({num_images} images); using {num_images}")
            bs = num_images
        if bs % world:
            notes.append(f"batch size {bs} does not split over {world} processes; using {bs - bs % world}")
            bs -= bs % world
        bs = max(2 * world, bs)
        if bs > num_images:
            from engine.data import DataError

            raise DataError(f"{num_images} training images are too few for {world} processes "
                            f"(each needs at least 2 a step); use fewer processes or more images")
        steps_per_epoch = max(1, num_images // bs)
        return cls(bs, steps_per_epoch, cfg.epochs * steps_per_epoch if cfg.epochs else 0, cfg.minutes * 60.0,
                   world), notes

    def fraction(self, step: int, train_time: float) -> float:
        """The run's progress (0..1, may pass 1): the further of steps and time."""
        if self.total_steps:
            p = step / self.total_steps
            if self.budget_s:
                p = max(p, train_time / self.budget_s)
            return p
        return train_time / self.budget_s if self.budget_s else 0.0

    def reached(self, step: int, train_time: float) -> str | None:
        """Why the run ends now ("completed" or "time budget"), or None."""
        if self.total_steps and step >= self.total_steps:
            return "completed"
        if self.budget_s and train_time >= self.budget_s:
            return "time budget"
        return None


__all__ = ["LARS", "Budget", "build_optimizer", "lr_at", "set_lr"]
