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
from engine.errors import BadInput
from engine.eval.protocol import run_backbone_name
from engine.params import ConfigError
from engine.runs import atomic_write_bytes, checkpoint_path, encoder_entry, encoder_path, last_checkpoint

FORMAT = 1


def run_config(run_dir: str | Path) -> RunConfig:
    """The config of an existing run folder (to resume or inspect it)."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise ConfigError("resume", f"{run_dir} is not a run folder (config.json is missing)")
    cfg = RunConfig.load(path)
    # an option added since the run was saved, whose default would change how it trains, takes the value that
    # trained it (its ``legacy``): a resumed run goes on as it began
    from engine.methods import get_method_class
    from engine.params import legacy_options

    legacy = legacy_options(get_method_class(cfg.method).Config, cfg.method_options)
    if legacy:
        cfg.method_options = {**cfg.method_options, **legacy}
    return cfg


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


REQUIRED = ("model", "step", "epoch")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def read_checkpoint(path: str | Path) -> dict:
    """The content of a checkpoint file, checked to be a workbench checkpoint (raises a one-line
    ConfigError otherwise: damaged, not a checkpoint, or a pickle that would run code)."""
    from engine.safeload import UnsafeFile, load_weights

    path = Path(path)
    try:
        state = load_weights(path, "checkpoint")
    except UnsafeFile:
        raise ConfigError("run", f"{path} is not a workbench checkpoint (it holds Python objects, which could "
                                 "run code when loaded) and will not be loaded; use a checkpoint this "
                                 "program wrote, or start a new run") from None
    except BadInput as exc:
        raise ConfigError("run", f"{exc}: start a new run, or resume a copy of the run that has a good "
                                 "checkpoint") from None
    if not isinstance(state, dict):
        raise ConfigError("run", f"{path} is not a workbench checkpoint (it holds a {type(state).__name__}, "
                                 "not a checkpoint dict) and will not be loaded; start a new run")
    missing = [k for k in REQUIRED if k not in state]
    if missing or not isinstance(state.get("model"), dict):
        raise ConfigError("run", f"{path} is not a complete workbench checkpoint (it lacks "
                                 f"{', '.join(repr(k) for k in missing) or 'a model state'}); start a new run")
    return state


def load_state(module: torch.nn.Module, state: dict, source: str | Path) -> None:
    """``module.load_state_dict(state)`` with a one-line ConfigError when they do not fit."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} tensor(s) of another shape, e.g. {k} is {list(state[k].shape)} in the file "
                         f"and {list(own[k].shape)} in the model")
        if missing:
            parts.append(f"{len(missing)} missing, e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
        raise ConfigError("run", f"the weights in {source} do not fit this run's model ({'; '.join(parts)}); "
                                 "they come from another method, backbone or image size: use the run "
                                 "folder that wrote them, or start a new run")
    try:
        module.load_state_dict(state)
    except Exception as exc:
        raise ConfigError("run", f"the weights in {source} cannot be loaded ({_first_line(exc)}); "
                                 "start a new run") from None


def load_checkpoint(run_dir: str | Path, method: torch.nn.Module | None = None, optimizer=None) -> dict:
    """The state of the run's last checkpoint (on the CPU); loaded into ``method`` and ``optimizer``
    when given. A ConfigError says what to do when there is none or it cannot be read."""
    path = last_checkpoint(run_dir)
    if path is None:
        raise ConfigError("run", f"{run_dir} has no checkpoint ({checkpoint_path(run_dir).relative_to(run_dir)} "
                                 "is missing): train it first, or start a new run")
    state = read_checkpoint(path)
    if method is not None:
        load_state(method, state["model"], path)
    if optimizer is not None and state.get("optimizer"):
        try:
            optimizer.load_state_dict(state["optimizer"])
        except Exception as exc:
            raise ConfigError("run", f"the optimiser state in {path} does not fit this run ({_first_line(exc)}); "
                                     "start a new run") from None
    return state


def load_run_method(run_dir: str | Path, device="cpu"):
    """(the full method module in eval mode - heads and decoders included -, cfg, backbone name)."""
    from engine.methods import DataInfo, get_method_class
    from engine.models import build_backbone

    cfg = run_config(run_dir)
    if last_checkpoint(run_dir) is None and encoder_entry(run_dir) is not None:
        # an opened encoder: the method that trains nothing, around the encoder
        enc, cfg, bname = load_run_encoder(run_dir, device)
        method = get_method_class(cfg.method)(cfg.method_config(), enc, DataInfo(cfg.data.image_size, 0))
        return method.to(device).eval(), cfg, bname
    full = load_checkpoint(run_dir)
    bname = full.get("backbone") or run_backbone_name(run_dir, cfg)
    backbone = build_backbone(bname, cfg.data.image_size)
    w = full["model"].get("classifier.weight")
    num_classes = int(w.shape[0]) if w is not None else 0
    cls = get_method_class(cfg.method)
    method = cls(cfg.method_config(), backbone, DataInfo(cfg.data.image_size, num_classes))
    load_state(method, full["model"], last_checkpoint(run_dir))
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
        state = read_encoder_file(enc_file)
    else:
        raise ConfigError("run", f"{run_dir} has no checkpoint ({checkpoint_path(run_dir).relative_to(run_dir)}) "
                                 f"or {enc_file.name} yet; train it first")
    if bname == "auto":
        raise ConfigError("run", f"{run_dir} has no checkpoint yet; train it first")
    enc = build_backbone(bname, cfg.data.image_size)
    load_state(enc, state, last_checkpoint(run_dir) or enc_file)
    # the step these weights are from (None: an encoder file of a run whose checkpoint is gone)
    enc.checkpoint_step = int(full["step"]) if last_checkpoint(run_dir) is not None else None
    return enc.to(device).eval(), cfg, bname


def read_encoder_file(path: str | Path) -> dict:
    """The tensors of an ``encoder.safetensors`` file (a one-line ConfigError when it is not one)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:
        raise ConfigError("run", f"{path} is not a readable safetensors file ({_first_line(exc)}); it is "
                                 "damaged: export the encoder again from the run's checkpoint, or retrain") from None


def export_encoder(run_dir: str | Path, encoder: torch.nn.Module, *, backbone: str, method: str,
                   image_size: int) -> Path:
    """Write the encoder's weights to ``encoder.safetensors`` (readable without the method's code)."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    path = encoder_path(run_dir)
    data = save(state, metadata={"backbone": backbone, "method": method, "image_size": str(image_size)})
    atomic_write_bytes(path, data)  # whole or not at all, like the checkpoint
    return path


__all__ = ["run_config", "save_checkpoint", "load_checkpoint", "read_checkpoint", "load_state",
           "read_encoder_file", "load_run_method",
           "load_run_encoder", "export_encoder"]
