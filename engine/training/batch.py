"""The batch size ``auto`` (``optim.batch_size`` 0) takes: the method's batch for the device.

- On a CPU: the batch the method's recipe was measured at (its ``run_defaults``' batch size).
- On a GPU: the method's ``gpu_batch`` (512 unless it says otherwise), halved until the training step
  fits in the device's free memory. The step's memory is measured, not guessed: two small probe steps
  (8 and 16 images a process, which fit on any GPU) give the memory it takes per image and the memory
  it takes whatever the batch; the optimiser's state is added. The probe leaves the weights, buffers
  and gradients as it found them. On several processes every one probes and they take the smallest.
- Apple MPS shares the computer's memory and tells no peak: its batch is the ``gpu_batch``, unsized.

The learning rate in the config is the one for the method's CPU batch; a larger auto batch scales it,
by the square root of the ratio for AdamW and linearly for SGD and LARS (Malladi et al. 2022; Goyal et
al. 2017). A batch the user sets is taken as it is, with the learning rate as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MEMORY_SHARE = 0.85  # of the GPU's free memory that the step may take at its peak
PROBE_PER_PROCESS = (8, 16)  # images a process in the two probe steps


@dataclass
class StepMemory:
    """What a training step takes on the device, in bytes: ``fixed`` whatever the batch, ``per_image``
    for each image of the process's batch; ``free`` is what the device has free before training."""

    fixed: float
    per_image: float
    free: float


def cpu_batch(method_cls) -> int:
    """The batch the method's recipe was measured at on a CPU."""
    return method_cls.cpu_batch()


def scaled_lr(lr: float, optimizer: str, batch: int, reference: int) -> float:
    """``lr`` (right for ``reference`` images a step) for ``batch`` images a step."""
    ratio = batch / reference
    return lr * (math.sqrt(ratio) if optimizer == "adamw" else ratio)


def fit_batch(target: int, world: int, memory: StepMemory) -> int:
    """The largest global batch, ``target`` halved as often as needed (at least 2 a process), whose step
    fits in ``MEMORY_SHARE`` of the free memory of each process's device."""
    batch = target
    while batch // world > 2:
        if memory.fixed + memory.per_image * (batch // world) <= MEMORY_SHARE * memory.free:
            break
        batch //= 2
    return max(batch - batch % world, 2 * world)


def probe_step_memory(learner, sample: torch.Tensor, labels: torch.Tensor | None, device: torch.device,
                      peak=None) -> StepMemory:
    """Measure the training step of ``learner`` on ``device`` at the probe batches, from ``sample`` (a few
    of the dataset's images as uint8, repeated to size). ``peak(fn)`` runs ``fn`` and returns the bytes it
    took at its peak (default: CUDA's peak-memory counter). The method's state (weights, buffers such as
    BatchNorm statistics and queues) and its gradients are restored; its group is set to this process
    alone for the probe, so no process waits for another inside it."""
    from engine.dist import Group

    method = learner.method
    peak = peak or (lambda fn: _cuda_peak(fn, device))
    saved = {k: v.detach().clone() for k, v in method.state_dict().items()}
    group = method.group
    method.set_group(Group(gather=False))
    peaks = []
    try:
        for n in PROBE_PER_PROCESS:
            reps = -(-n // sample.shape[0])
            x = sample.repeat(reps, *([1] * (sample.ndim - 1)))[:n].to(device).float().div_(255)
            y = None if labels is None else labels.repeat(reps)[:n].to(device)
            g = torch.Generator(device=device)
            g.manual_seed(0)

            def step(x=x, y=y, g=g):
                with learner.precision.autocast():
                    out = method.training_step(x, y, g)
                out.loss.backward()

            peaks.append(peak(step))
            method.zero_grad(set_to_none=True)
    finally:
        method.zero_grad(set_to_none=True)
        method.load_state_dict(saved)
        method.set_group(group)
    (n0, n1), (p0, p1) = PROBE_PER_PROCESS, peaks
    per_image = max(0.0, (p1 - p0) / (n1 - n0))
    params = sum(p.numel() * p.element_size() for p in method.parameters() if p.requires_grad)
    optimizer_state = 2 * params if learner.optimizer is not None else 0  # AdamW's moments; SGD's is smaller
    fixed = max(0.0, p0 - per_image * n0) + optimizer_state
    return StepMemory(fixed, per_image, _free_bytes(device))


def _cuda_peak(fn, device: torch.device) -> float:
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return float(torch.cuda.max_memory_allocated(device) - start)


def _free_bytes(device: torch.device) -> float:
    if device.type != "cuda":
        return float("inf")
    torch.cuda.empty_cache()
    return float(torch.cuda.mem_get_info(device)[0])


def _agree_min(value: int, world: int, device: torch.device) -> int:
    if world <= 1:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def resolve_batch(cfg, method_cls, learner, data, device: torch.device, world: int, peak=None) -> list[str]:
    """Set ``cfg.optim.batch_size`` (and the learning rate with it) when it is 0 (auto); notes that say
    what was chosen. A batch the user set is left alone."""
    o = cfg.optim
    if o.batch_size:
        return []
    ref = cpu_batch(method_cls)
    if device.type == "cpu":
        o.batch_size = ref
        return [f"batch size auto: {ref}, the method's batch on a CPU"]
    target = max(ref, int(method_cls.gpu_batch))
    where = "Apple MPS (not sized to its memory: set --batch-size if it runs short)"
    if device.type == "cuda":
        n = min(8, len(data))
        sample, labels, _ = next(iter(data.batches(n, torch.arange(n))))
        memory = probe_step_memory(learner, sample, labels, device, peak)
        target = _agree_min(fit_batch(target, world, memory), world, device)
        where = (f"the GPU (a step takes {memory.fixed / 2**30:.2f} GiB + {memory.per_image / 2**20:.1f} MiB "
                 f"an image a process; {memory.free / 2**30:.1f} GiB free)")
    lr = scaled_lr(o.lr, o.optimizer, target, ref)
    note = f"batch size auto: {target} on {where}"
    if target != ref:
        note += f"; learning rate {o.lr:g} (for batch {ref}) scaled to {lr:.3g}"
    o.batch_size, o.lr = target, lr
    return [note]


__all__ = ["StepMemory", "cpu_batch", "scaled_lr", "fit_batch", "probe_step_memory", "resolve_batch",
           "MEMORY_SHARE", "PROBE_PER_PROCESS"]
