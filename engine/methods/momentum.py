"""The momentum base: methods whose targets are frozen copies of online modules that follow them by an
exponential moving average (BYOL's target, MoCo's key encoder, DINO's and BoW's teacher).

A method declares its pairs once, in ``__init__`` after building the online modules::

    self.add_momentum_targets(target_backbone="backbone", target_projector="projector")

and the base owns the rest: the frozen copies (registered under the target names, so checkpoints name
them), the schedule (``momentum_at``: the config's ``momentum``, raised to 1 along a cosine over the run
when ``momentum_schedule`` is on or the config has no such field) and the update after every optimiser
step (``after_step``). ``momentum_pairs`` lists the (online, target) modules, as solo-learn's does.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

from engine.methods.base import Method


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` for a momentum/EMA target network."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * online (parameters; buffers copied)."""
    for pt, po in zip(target.parameters(), online.parameters()):
        pt.mul_(momentum).add_(po.detach(), alpha=1 - momentum)
    for bt, bo in zip(target.buffers(), online.buffers()):
        bt.copy_(bo)


def cosine_momentum(base: float, progress: float) -> float:
    """BYOL's schedule: from ``base`` up to 1 along a cosine over the run."""
    return 1 - (1 - base) * (math.cos(math.pi * min(1.0, max(0.0, progress))) + 1) / 2


class MomentumMethod(Method):
    """A method with momentum targets. Its ``Config`` has ``momentum`` (and may have ``momentum_schedule``);
    it calls :meth:`add_momentum_targets` once its online modules exist. A method that needs more after a
    step overrides ``after_step`` and calls ``super().after_step(progress)``."""

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        self._momentum_names: list[tuple[str, str]] = []  # (online, target) attribute names

    def add_momentum_targets(self, **targets: str) -> None:
        """For each ``target_name="online_name"``: ``self.target_name`` becomes a frozen copy of the module
        ``self.online_name`` that follows it after every step."""
        for target, online in targets.items():
            if target in self._modules or any(t == target for _, t in self._momentum_names):
                raise ValueError(f"{type(self).__name__} already has a module named {target}")
            self.add_module(target, momentum_copy(self.get_submodule(online)))
            self._momentum_names.append((online, target))

    @property
    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """The (online, target) modules, in the order they were declared."""
        return [(self.get_submodule(online), self.get_submodule(target)) for online, target in self._momentum_names]

    def momentum_at(self, progress: float) -> float:
        """The momentum of the update after a step at ``progress`` (0..1) of the run."""
        if getattr(self.cfg, "momentum_schedule", True):
            return cosine_momentum(self.cfg.momentum, progress)
        return self.cfg.momentum

    def after_step(self, progress: float) -> None:
        m = self.momentum_at(progress)
        for online, target in self.momentum_pairs:
            ema_update(target, online, m)


__all__ = ["MomentumMethod", "momentum_copy", "ema_update", "cosine_momentum"]
