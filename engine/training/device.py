"""Device and precision of a training run: which device, mixed precision (several processes:
:mod:`engine.training.distributed`).

``Precision`` owns autocast and the fp16 gradient scaler, so the training loop reads the same on
every device: ``with precision.autocast(): ...; precision.backward(loss, opt); precision.step(opt)``.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch
import torch.distributed as dist

from engine.params import ConfigError


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``mps`` as a torch device; a ConfigError for one this machine lacks."""
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device", "CUDA is not available on this machine; use --device cpu (or auto)")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if name == "mps":
        if not _mps_available():
            raise ConfigError("device", "Apple MPS is not available on this machine; use --device cpu (or auto)")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError("device", f"unknown device {name!r}; choose auto, cpu, cuda or mps")


def device_name(device: torch.device) -> str:
    """What a run trains on, in words; with several processes, how many (each on such a device)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        name = "Apple GPU (MPS)"
    else:
        threads = torch.get_num_threads()
        name = f"CPU ({threads} thread{'s' if threads != 1 else ''})"
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    return f"{world} processes, each on {name}" if world > 1 else name


@functools.lru_cache(maxsize=1)
def cpu_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (Intel AMX or AVX512-BF16): there a bf16-autocast step of
    the CPU default model runs about twice as fast as fp32 and learns as much per step. Elsewhere bf16 is
    emulated and slower, so ``auto`` stays fp32. ``SSLWB_CPU_BF16=0`` / ``1`` overrides the detection."""
    forced = os.environ.get("SSLWB_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"}) and torch.backends.mkldnn.is_available()
    except OSError:
        pass
    return False


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    if precision == "fp32":
        return None
    if device.type == "cpu" and precision == "auto":
        return torch.bfloat16 if cpu_native_bf16() else None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    # auto on a GPU
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return None


def place_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model to the training device, convolution weights in channels-last layout (about 30%
    faster convolutions on CPUs and tensor cores; other weights are unaffected)."""
    model = model.to(device)
    if device.type in ("cpu", "cuda"):
        model = model.to(memory_format=torch.channels_last)
    return model


# -- mixed precision --------------------------------------------------------------------------------
class Precision:
    """Autocast dtype and (fp16 on CUDA only) the gradient scaler of a run."""

    def __init__(self, device: torch.device, precision: str):
        self.device = device
        self.amp_dtype = autocast_dtype(device, precision)
        self.scaler = torch.amp.GradScaler(device.type) if self.amp_dtype == torch.float16 \
            and device.type == "cuda" else None

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def backward(self, loss: torch.Tensor, optimizer) -> None:
        """Gradients of ``loss``, unscaled (so that clipping sees their true size)."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(optimizer)
        else:
            loss.backward()

    def step(self, optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


__all__ = ["cpu_native_bf16", "resolve_device", "device_name", "autocast_dtype", "place_model", "Precision"]
