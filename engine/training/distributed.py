"""Several processes (``torchrun``, one node or several): process group, DDP, synchronised BatchNorm,
each process's shard of an epoch, and agreeing on when to stop.

- :func:`wrap_step`: the step of the trained modules under DistributedDataParallel (bucketed
  all-reduce overlapped with the backward pass; DDP averages the gradients over the processes).
  The momentum/EMA targets, MoCo's queue and DINO's centre stay outside it: DDP neither
  broadcasts nor all-reduces them (they follow the online weights, which DDP keeps equal).
- :func:`sync_batchnorm`: BatchNorm statistics over the global batch: torch's ``SyncBatchNorm`` on
  GPUs, :class:`GlobalBatchNorm` elsewhere (torch's runs on GPUs only; this one all-reduces the
  statistics with autograd-aware collectives, so gradients are exact on gloo too).
- :func:`shard_order`: step k of an epoch trains on the same ``batch_size`` images for any number
  of processes (process r takes the r-th slice of it), so a run resumed with another number of
  processes continues at the same global sample.
"""

from __future__ import annotations

import inspect
import os
import warnings

import torch
import torch.distributed as dist
import torch.nn as nn

from engine.errors import Diverged

SYNC_BN = ("auto", "on", "off")


def world_and_rank(distributed: bool | None) -> tuple[int, int]:
    """(number of processes, this one's rank) from torchrun's environment; (1, 0) when not distributed."""
    world = int(os.environ.get("WORLD_SIZE", 1)) if distributed is not False else 1
    return world, int(os.environ.get("RANK", 0)) if world > 1 else 0


def init_distributed(device: torch.device, world: int) -> None:
    """Join the process group torchrun describes (MASTER_ADDR/PORT, RANK, WORLD_SIZE): NCCL on CUDA,
    gloo on the CPU."""
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def close_distributed(world: int) -> None:
    if world > 1 and dist.is_initialized():
        dist.destroy_process_group()


# -- BatchNorm over the global batch ------------------------------------------------------------------
def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    from torch.distributed.nn.functional import all_reduce

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(t)


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch (every process's rows), on
    any backend. Two all-reduces a layer (sum, then the centred sum of squares): exact, and
    differentiable through the statistics like one process holding the whole batch. The same
    parameters and buffers as ``BatchNorm1d/2d``, so checkpoints load into either."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {x.dim()}-D)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        local_n = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float32, device=x.device)
        tot = _all_reduce_sum(torch.cat([xf.sum(dims), local_n]))
        n = tot[-1].detach()
        mean = tot[:-1] / n
        xc = xf - mean.view(shape)
        var = _all_reduce_sum((xc * xc).sum(dims)) / n
        y = xc * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp(min=1), alpha=m)
        return y.to(x.dtype)


def _convert(module: nn.Module, cls) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, cls):
        new = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, _convert(child, cls))
    return module


def sync_batchnorm(model: nn.Module, device: torch.device, world: int, mode: str = "auto") -> nn.Module:
    """BatchNorm over the global batch when ``mode`` says so ("auto": on GPUs; "on"; "off")."""
    if mode not in SYNC_BN:
        from engine.params import ConfigError

        raise ConfigError("sync_bn", f"unknown value {mode!r}; choose auto, on or off")
    if world <= 1 or mode == "off" or (mode == "auto" and device.type != "cuda"):
        return model
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert(model, GlobalBatchNorm)


# -- the step under DDP -------------------------------------------------------------------------------
class StepModule(nn.Module):
    """``forward`` is the method's training step, so that DDP (and ``torch.compile``) see the whole step."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, x, labels, g):
        out = self.method.training_step(x, labels, g)
        return out.loss, out.metrics


def _outside_ddp(step: StepModule) -> list[str]:
    """Names of the states DDP leaves alone: frozen parameters (momentum targets) and every buffer
    except the running statistics of BatchNorm layers that train."""
    frozen_prefixes = [name + "." for name, m in step.named_modules()
                       if name and any(True for _ in m.parameters())
                       and not any(p.requires_grad for p in m.parameters())]
    names = [n for n, p in step.named_parameters() if not p.requires_grad]
    for mod_name, m in step.named_modules():
        for b_name, _ in m.named_buffers(recurse=False):
            full = f"{mod_name}.{b_name}" if mod_name else b_name
            trained_norm = isinstance(m, nn.modules.batchnorm._BatchNorm) and \
                not any(full.startswith(p) for p in frozen_prefixes)
            if not trained_norm:
                names.append(full)
    return names


def _buffer_sync(every_forward: bool) -> dict:
    """DDP's switch for sending rank 0's buffers (BatchNorm statistics) at every forward: named
    ``forward_sync_buffers`` since torch 2.14 (``broadcast_buffers``, which now warns, before). Both
    also send them once at the start, when every process holds the same ones anyway."""
    params = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers": every_forward}


def wrap_step(method: nn.Module, device: torch.device, world: int, *, synced_bn: bool = False,
              compile: bool = False):
    """The callable ``step(x, labels, g) -> (loss, metrics)`` of a training step: the method's own
    step on one process, under DDP on several (gradients averaged during backward), compiled with
    ``torch.compile`` when asked: with static shapes, one graph for each input shape a run has (views,
    local crops), as inductor (torch 2.14) failed to generate the backward of DDP's step once automatic
    dynamic shapes set in."""
    step = StepModule(method)
    if world > 1 and any(p.requires_grad for p in method.parameters()):
        ignored = _outside_ddp(step)
        state = dict(step.named_parameters()) | dict(step.named_buffers())
        for name in ignored:  # the targets start equal on every process (DDP broadcasts only the rest)
            dist.broadcast(state[name].data, 0)
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(step, ignored)
        step = nn.parallel.DistributedDataParallel(
            step, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=False, gradient_as_bucket_view=True, **_buffer_sync(not synced_bn))
    if compile:
        step = torch.compile(step, dynamic=False)
    return step


# -- data and agreement -------------------------------------------------------------------------------
def shard_order(order: torch.Tensor, batch_size: int, world: int, rank: int) -> torch.Tensor:
    """This process's part of an epoch's order: of global batch k (``order[k*B:(k+1)*B]``) the
    ``rank``-th of ``world`` equal slices. The tail that fills no batch is dropped."""
    steps = len(order) // batch_size
    per = batch_size // world
    return order[:steps * batch_size].view(steps, world, per)[:, rank].reshape(-1)


def agree(flags: list[bool], device: torch.device) -> list[bool]:
    """Each flag true on any process (one small all-reduce; every process must call it)."""
    if not dist.is_initialized() or dist.get_world_size() <= 1:
        return flags
    dev = device if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([1.0 if f else 0.0 for f in flags], device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


AGREE_EVERY = 10  # several processes agree on a time budget or a stop every this many steps


class Ending:
    """Why a run ends now, the same on every process. One process: the budget or a stop request. Several:
    a step budget is the same on each; a time budget, a stop request or a divergence counts when they
    agree: every ``every`` steps and at the last step (one small all-reduce, at the same steps on every
    process), so that a NaN loss on one process stops them all together, with the same message, instead
    of leaving the others waiting in a collective.

    Several processes: :meth:`watch` sums each step's loss on the device (no sync), and
    ``weights_bad`` is set when the main process finds NaN weights (keeping the last good state, or a
    checkpoint); a divergence raises :class:`Diverged` with ``agreed = True`` on every process."""

    def __init__(self, world: int, device: torch.device, every: int = AGREE_EVERY):
        self.world, self.device, self.every = world, device, every
        self.loss_sum: torch.Tensor | float = 0.0  # the losses since the last agreement
        self.weights_bad = False
        self.closed = False  # the processes agreed that the run ends: no further agreement

    def defer(self) -> bool:
        """The main process found NaN weights: True when several processes are still to agree (every
        process then stops at the next agreement); False: raise now."""
        if self.world > 1 and not self.closed:
            self.weights_bad = True
            return True
        return False

    def watch(self, loss: torch.Tensor) -> None:
        if self.world > 1:
            self.loss_sum = self.loss_sum + loss.detach().float()

    def reason(self, budget_reason: str | None, stop_requested: bool, step: int) -> str | None:
        if self.world == 1:
            return "stopped" if stop_requested else budget_reason
        if budget_reason != "completed" and step % self.every:
            return None
        timed_out, stop, bad_weights, bad_loss = self._agree(budget_reason is not None, stop_requested)
        if bad_loss != 0 or bad_weights:  # the sum of the non-finite losses: NaN or infinite
            what = f"the loss became {bad_loss}" if bad_loss != 0 else "the weights became NaN or infinite"
            exc = Diverged(f"{what} by step {step}: training diverged", step, bad_loss if bad_loss else float("nan"))
            exc.agreed = True
            raise exc
        reason = "completed" if budget_reason == "completed" else "stopped" if stop else \
            "time budget" if timed_out else None
        self.closed = reason is not None
        return reason

    def _agree(self, timed_out: bool, stop: bool) -> tuple[bool, bool, bool, float]:
        """One all-reduce (sum) of the flags and of each process's non-finite loss sum (0 when finite)."""
        dev = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
        loss = torch.as_tensor(self.loss_sum, dtype=torch.float32).to(dev).reshape(1)
        flags = torch.tensor([float(timed_out), float(stop), float(self.weights_bad)], device=dev)
        t = torch.cat([flags, torch.where(torch.isfinite(loss), torch.zeros_like(loss), loss)])
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        self.loss_sum, self.weights_bad = 0.0, False
        v = t.tolist()
        return v[0] > 0, v[1] > 0, v[2] > 0, v[3]


def from_main(values: list, device: torch.device) -> list:
    """The main process's ``values`` (picklable) on every process (every process must call it)."""
    if not dist.is_initialized() or dist.get_world_size() <= 1:
        return values
    out = list(values)
    dist.broadcast_object_list(out, src=0, device=device if dist.get_backend() == "nccl" else None)
    return out




_PEER_LOST = ("connection reset by peer", "connection closed by peer", "broken pipe", "socket timeout",
              "nccl", "processgroup", "gloo", "timed out", "remote worker", "end of file")


def peer_lost(exc: BaseException, world: int) -> bool:
    """Did ``exc`` come from the process group because another process of the run ended (killed, out of
    memory, a node gone)? Only meaningful with several processes."""
    if world <= 1:
        return False
    names = {c.__name__ for c in type(exc).__mro__}
    if names & {"DistBackendError", "DistNetworkError", "DistStoreError", "DistError"}:
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(k in text for k in _PEER_LOST)


def peer_lost_message(world: int, rank: int, step: int, run_dir, ckpt_step: int | None) -> str:
    """One line for a surviving process: which one ended, where the run stopped, how to go on."""
    who = f"process {1 - rank} of 2" if world == 2 else f"another of the {world} processes"
    kept = (f"; its checkpoint is at step {ckpt_step}" if ckpt_step is not None
            else "; it continues from its last checkpoint" if rank else "; it has no checkpoint yet")
    return (f"{who} ended unexpectedly; the run stopped at step {step}{kept}. Continue with: python main.py "
            f"train --resume {run_dir} (or your torchrun command with --resume {run_dir})")


__all__ = ["SYNC_BN", "AGREE_EVERY", "Ending", "from_main", "world_and_rank", "init_distributed", "close_distributed",
           "GlobalBatchNorm", "sync_batchnorm", "StepModule", "wrap_step", "shard_order", "agree", "peer_lost",
           "peer_lost_message"]
