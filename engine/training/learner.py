"""What a session trains: the method (backbone, heads, extra modules) placed on the device, its step
(under DDP and ``torch.compile`` when asked), the optimiser and mixed precision; and one optimiser step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.dist import Group
from engine.methods import DataInfo
from engine.models import build_backbone, default_backbone
from engine.training.device import Precision, place_model
from engine.training.distributed import sync_batchnorm, wrap_step
from engine.training.optim import build_optimizer, set_lr


@dataclass
class Learner:
    method: torch.nn.Module
    step_fn: object  # step(x, labels, g) -> (loss, metrics)
    optimizer: torch.optim.Optimizer | None
    precision: Precision
    backbone_name: str

    init_report: str = ""  # what the initial weights (cfg.init) loaded

    @classmethod
    def build(cls, cfg, method_cls, method_cfg, data, device: torch.device, world: int,
              trained: str = "", init: bool = True) -> Learner:
        """The method (``method_cls`` with options ``method_cfg``) of ``cfg`` for ``data`` on ``device`` (its BatchNorm over the global batch when
        asked), with its optimiser (none when the method does not train) and precision. ``trained``: the
        backbone a resumed run trained, which its ``auto`` keeps on any device. ``init``: load ``cfg.init``'s
        weights into the backbone before the method copies it (momentum and teacher networks); a resumed run
        passes False (its checkpoint has the weights)."""
        bname = cfg.backbone
        if bname == "auto" and trained not in ("", "auto"):
            bname = trained
        if bname == "auto" and getattr(cfg, "init", ""):  # the initial weights' architecture
            from engine.encoders import resolve

            bname = resolve(cfg.init, cfg.init_arch, cfg.data.image_size).arch
        if bname == "auto":
            bname = default_backbone(device.type, "vit" if method_cls.backbone_kind == "vit" else "cnn")
        backbone = build_backbone(bname, cfg.data.image_size)
        report = ""
        if init and getattr(cfg, "init", ""):
            from engine.encoders import load_init

            report = load_init(backbone, cfg)
        info = DataInfo(image_size=cfg.data.image_size, num_classes=data.num_classes if data.labelled else 0)
        method = method_cls(method_cfg, backbone, info)
        method = place_model(sync_batchnorm(method, device, world, cfg.sync_bn), device)
        method.set_group(Group(gather=cfg.gather))
        synced = any(type(m).__name__ in ("SyncBatchNorm", "GlobalBatchNorm") for m in method.modules())
        step_fn = wrap_step(method, device, world, synced_bn=synced, compile=cfg.compile)
        optimizer = build_optimizer(method, cfg) if method_cls.trains else None
        return cls(method, step_fn, optimizer, Precision(device, cfg.precision), bname, report)

    def step(self, x: torch.Tensor, labels, g: torch.Generator, lr: float, grad_clip: float):
        """One optimiser step at learning rate ``lr`` (under DDP: gradients averaged during backward);
        the loss and metrics as tensors (nothing is read back to the host)."""
        set_lr(self.optimizer, lr)
        with self.precision.autocast():
            loss, metrics = self.step_fn(x, labels, g)
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.backward(loss, self.optimizer)
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.method.parameters(), grad_clip)
        self.precision.step(self.optimizer)
        return loss, metrics


__all__ = ["Learner"]
