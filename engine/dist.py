"""The processes a method's loss spans: this process alone, or every process of a ``torchrun`` job.

Methods whose loss couples the samples of a batch (contrastive negatives, cross-correlation,
variance/covariance, a centre) compute it over the global batch through a :class:`Group`:

- ``group.cat(x)``: the rows of every process, concatenated in rank order, with gradients
  (``torch.distributed.nn.functional.all_gather``: its backward sums the gradients that every
  process's loss sends to this process's rows, so with DDP's average the gradients equal those of
  one process holding the whole batch);
- ``group.cat_nograd(x)``: the same without gradients (MoCo's keys for the queue);
- ``group.mean(x)``: the mean over processes, without gradients (DINO's centre);
- ``group.offset``: where this process's rows start in the concatenation.

With ``gather`` off (the config's ``gather``, for comparison) or one process, the group is this
process alone and every call returns its input. Lower layer: methods import it; it imports no
part of the engine.
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist


def initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if initialized() else 1


def rank() -> int:
    return dist.get_rank() if initialized() else 0


class _ContiguousGrad(torch.autograd.Function):
    """The identity, whose backward hands on a contiguous gradient: on gloo, the backward of
    ``torch.distributed.nn.functional.all_gather`` (torch 2.14) returns wrong gradients when the
    gradient of a gathered part is strided (as an einsum's is), so every part gets this first."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


class Group:
    """The processes a loss is computed over (see the module's doc)."""

    def __init__(self, gather: bool = True):
        self.gather = gather

    @property
    def world(self) -> int:
        return world_size() if self.gather else 1

    @property
    def rank(self) -> int:
        return rank() if self.gather else 0

    def offset(self, rows: int) -> int:
        """Index of this process's first row in ``cat`` of ``rows`` rows a process."""
        return self.rank * rows

    def cat(self, x: torch.Tensor) -> torch.Tensor:
        if self.world <= 1:
            return x
        from torch.distributed.nn.functional import all_gather

        with warnings.catch_warnings():  # deprecated in favour of a private API; still the documented one
            warnings.simplefilter("ignore", FutureWarning)
            parts = all_gather(x.contiguous())
        return torch.cat([_ContiguousGrad.apply(p) for p in parts])

    @torch.no_grad()
    def cat_nograd(self, x: torch.Tensor) -> torch.Tensor:
        if self.world <= 1:
            return x
        out = [torch.empty_like(x) for _ in range(self.world)]
        dist.all_gather(out, x.contiguous())
        return torch.cat(out)

    @torch.no_grad()
    def mean(self, x: torch.Tensor) -> torch.Tensor:
        if self.world <= 1:
            return x
        y = x.detach().clone()
        dist.all_reduce(y)
        return y / self.world


LOCAL = Group(gather=False)

__all__ = ["Group", "LOCAL", "initialized", "world_size", "rank"]
