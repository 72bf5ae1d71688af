"""What a training session does when something goes wrong while it runs: the last good state it
keeps for a divergence, and the one-line message (with what to do) for each kind of failure.

A divergence (the loss becomes NaN or infinite) is noticed a few times a second, when the steps'
summed loss is read; by then the weights may already be NaN. :class:`LastGood` therefore keeps a
copy of the last state known to be finite (in memory, refreshed at most every
``LAST_GOOD_EVERY_S``), and a diverged run writes it as ``checkpoints/last.pt`` when it is newer
than the checkpoint on disk (or there is none), so ``--resume`` always has somewhere to start.
"""

from __future__ import annotations

import errno
import time
import traceback

import torch

from engine.errors import BadInput, Diverged, Interrupted, exit_code_for

LAST_GOOD_EVERY_S = 30.0


def cpu_copy(obj):
    """A deep copy of a (nested) state dict with every tensor cloned to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_copy(v) for v in obj)
    return obj


def all_finite(state) -> bool:
    """True when every floating-point tensor in ``state`` (a nested dict, or a module) is finite."""
    if isinstance(state, torch.nn.Module):
        return all(bool(torch.isfinite(p).all()) for p in state.parameters())
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(torch.isfinite(state).all())
    if isinstance(state, dict):
        return all(all_finite(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return all(all_finite(v) for v in state)
    return True


class LastGood:
    """The last state of a run known to be finite: model, optimiser, scaler and progress (CPU)."""

    def __init__(self, every_s: float = LAST_GOOD_EVERY_S):
        self.every_s = every_s
        self.state: dict | None = None
        self.step = -1
        self._taken = 0.0

    def due(self) -> bool:
        return self.state is None or time.monotonic() - self._taken >= self.every_s

    def take(self, method, optimizer, scaler: dict, progress: dict) -> bool:
        """Keep a copy of the current state if it is finite; False when it is not (diverged)."""
        model = cpu_copy(method.state_dict())
        if not all_finite(model):
            return False
        self.state = {"model": model, "optimizer": cpu_copy(optimizer.state_dict()) if optimizer else {},
                      "scaler": cpu_copy(scaler or {}), "progress": dict(progress)}
        self.step = int(progress["step"])
        self._taken = time.monotonic()
        return True

    def restore_into(self, method, optimizer) -> dict | None:
        """Load the kept state into ``method`` and ``optimizer``; its progress (None if none kept)."""
        if self.state is None:
            return None
        method.load_state_dict(self.state["model"])
        if optimizer is not None and self.state["optimizer"]:
            optimizer.load_state_dict(self.state["optimizer"])
        return self.state["progress"]


def _fmt_lr(lr: float) -> str:
    return f"{lr:.2g}"


def divergence_message(exc: Diverged, run_dir, cfg, good_step: int | None, device_type: str) -> str:
    """One line: where it diverged, where the last good state is, and what to change to go on."""
    lower = _fmt_lr(cfg.optim.lr / 10)
    where = (f"the last good state (step {good_step}) is in {run_dir}/checkpoints/last.pt"
             if good_step is not None else "no good state was kept")
    fp = " (or --set precision=fp32)" if device_type != "cpu" and cfg.precision != "fp32" else ""
    clip = "" if cfg.optim.grad_clip else " (clipping the gradients can help too: --set optim.grad_clip=1.0)"
    return (f"training diverged: the loss became {exc.loss} at step {exc.step}; {where}. Continue with a lower "
            f"learning rate: python main.py train --resume {run_dir} --lr {lower}{fp}{clip}")


def failure_message(exc: BaseException, run_dir, cfg, ckpt_step: int | None) -> str:
    """The one-line message for a failure that is not a divergence, a bad input or out of memory."""
    if isinstance(exc, BadInput):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f" writing {exc.filename}" if exc.filename else ""
        kept = (f"; the run's last checkpoint (step {ckpt_step}) is intact" if ckpt_step is not None
                else "; no checkpoint had been written yet")
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return (f"the disk is full: no space left on device{where}{kept}. Free some space (or move the run "
                    f"folder to a larger disk) and continue with: python main.py train --resume {run_dir}")
        return (f"{exc.strerror or 'an I/O error'}{where}{kept}. Fix the folder's permissions or disk, then "
                f"continue with: python main.py train --resume {run_dir}")
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}".rstrip(": ")


def failure_report(exc: BaseException, run_dir, cfg, ckpt_step: int | None) -> tuple[str, str]:
    """(the one-line message, the traceback worth showing or "") of a failure that is neither a divergence
    nor Ctrl-C: bad input and cancelling say it all, out of GPU memory says what to lower, a failed write
    where and that the checkpoint is intact; anything else is a bug and keeps its traceback."""
    if isinstance(exc, (BadInput, Interrupted)):
        return str(exc), ""
    tb = "".join(traceback.format_exception(exc))
    if isinstance(exc, torch.OutOfMemoryError):
        bs = cfg.optim.batch_size
        return (f"out of GPU memory at batch size {bs}; lower the batch size (e.g. {max(2, bs // 2)}) or choose a "
                "smaller backbone, then resume", tb)
    return failure_message(exc, run_dir, cfg, ckpt_step), "" if isinstance(exc, OSError) else tb


__all__ = ["LastGood", "LAST_GOOD_EVERY_S", "all_finite", "cpu_copy", "divergence_message", "failure_message",
           "failure_report", "exit_code_for"]
