"""Checkpoints: one function each to save one, load one, and build a run's method or encoder from it.

The file format (``checkpoints/last.pt``, loaded with ``weights_only=True``)::

    {"format": 1, "model": state_dict, "optimizer": ..., "scaler": ..., "step", "epoch",
     "batch_in_epoch", "train_time", "method", "backbone", "config"}

Paths come from :mod:`engine.runs` (``checkpoint_path``, ``last_checkpoint``, ``encoder_path``).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from engine.config import RunConfig
from engine.eval.protocol import run_backbone_name
from engine.params import ConfigError
from engine.runs import atomic_write_bytes, checkpoint_path, encoder_path, last_checkpoint

FORMAT = 1


def run_config(run_dir: str | Path) -> RunConfig:
    """The config of an existing run folder (to resume or inspect it)."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise ConfigError("resume", f"{run_dir} is not a run folder (config.json is missing)")
    return RunConfig.load(path)


def save_checkpoint(run_dir: str | Path, method: torch.nn.Module, *, optimizer=None, scaler: dict | None = None,
                    progress: dict | None = None, cfg=None, backbone: str = "",
                    keep_epoch: int | None = None) -> Path:
    """Write ``checkpoints/last.pt`` atomically (and a kept copy for ``keep_epoch``); its path.

    ``progress``: step, epoch, batch_in_epoch and train_time; ``scaler``: the gradient scaler's state.
    """
    state = {
        "format": FORMAT,
        "model": {k: v.detach().cpu() for k, v in method.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "scaler": scaler or {},
        **(progress or {}),
        "method": cfg.method if cfg is not None else getattr(method, "name", ""),
        "backbone": backbone, "config": cfg.to_dict() if cfg is not None else {},
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    path = checkpoint_path(run_dir)
    atomic_write_bytes(path, data)
    if keep_epoch is not None:
        atomic_write_bytes(checkpoint_path(run_dir, keep_epoch), data)
    return path


def load_checkpoint(run_dir: str | Path, method: torch.nn.Module | None = None, optimizer=None) -> dict:
    """The state of the run's last checkpoint (on the CPU); loaded into ``method`` and ``optimizer``
    when given. A ConfigError says what to do when there is none or it cannot be read."""
    path = last_checkpoint(run_dir)
    if path is None:
        raise ConfigError("run", f"{run_dir} has no checkpoint ({checkpoint_path(run_dir).relative_to(run_dir)} "
                                 "is missing): train it first, or start a new run")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError("run", f"the checkpoint {path} cannot be read ({exc}); "
                                 "it may be damaged: start a new run") from None
    if method is not None:
        method.load_state_dict(state["model"])
    if optimizer is not None and state.get("optimizer"):
        optimizer.load_state_dict(state["optimizer"])
    return state


def load_run_method(run_dir: str | Path, device="cpu"):
    """(the full method module in eval mode - heads and decoders included -, cfg, backbone name)."""
    from engine.methods import DataInfo, get_method_class
    from engine.models import build_backbone

    cfg = run_config(run_dir)
    full = load_checkpoint(run_dir)
    bname = full.get("backbone") or run_backbone_name(run_dir, cfg)
    backbone = build_backbone(bname, cfg.data.image_size)
    w = full["model"].get("classifier.weight")
    num_classes = int(w.shape[0]) if w is not None else 0
    cls = get_method_class(cfg.method)
    method = cls(cfg.method_config(), backbone, DataInfo(cfg.data.image_size, num_classes))
    method.load_state_dict(full["model"])
    return method.to(device).eval(), cfg, bname


def load_run_encoder(run_dir: str | Path, device="cpu"):
    """(encoder module in eval mode, cfg, backbone name) from the run's checkpoint, or from its
    ``encoder.safetensors`` when the checkpoint is gone."""
    from engine.models import build_backbone

    cfg = run_config(run_dir)
    bname = run_backbone_name(run_dir, cfg)
    enc_file = encoder_path(run_dir)
    if last_checkpoint(run_dir) is not None:
        full = load_checkpoint(run_dir)
        bname = full.get("backbone", bname)
        state = {k[len("backbone."):]: v for k, v in full["model"].items() if k.startswith("backbone.")}
    elif enc_file.exists():
        from safetensors.torch import load_file

        state = load_file(str(enc_file))
    else:
        raise ConfigError("run", f"{run_dir} has no checkpoint ({checkpoint_path(run_dir).relative_to(run_dir)}) "
                                 f"or {enc_file.name} yet; train it first")
    if bname == "auto":
        raise ConfigError("run", f"{run_dir} has no checkpoint yet; train it first")
    enc = build_backbone(bname, cfg.data.image_size)
    enc.load_state_dict(state)
    return enc.to(device).eval(), cfg, bname


def export_encoder(run_dir: str | Path, encoder: torch.nn.Module, *, backbone: str, method: str,
                   image_size: int) -> Path:
    """Write the encoder's weights to ``encoder.safetensors`` (readable without the method's code)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    path = encoder_path(run_dir)
    save_file(state, str(path), metadata={"backbone": backbone, "method": method, "image_size": str(image_size)})
    return path


__all__ = ["run_config", "save_checkpoint", "load_checkpoint", "load_run_method",
           "load_run_encoder", "export_encoder"]
