"""Fine-tuning on a few labels: the whole encoder plus a linear head, short and capped.

The recipe a practitioner would use on a small labelled set: random resized crops (scale 0.35-1)
and horizontal flips, AdamW with a cosine schedule, the head at ``lr`` and a pre-trained backbone
at ``lr * backbone_lr_scale`` (a random-init backbone - training from scratch - at ``lr``: it has
nothing to keep). Capped by ``steps`` (and ``minutes`` when set), so the largest budgets see part
of an epoch: the point of the curve is the few-label end.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.augment import AugmentConfig, augment
from engine.data.base import Cancelled


@dataclass
class FinetuneConfig:
    steps: int = 100  # optimiser steps per fit
    batch_size: int = 32  # images per step (fewer when the subset is smaller)
    lr: float = 3e-3  # the head's peak learning rate (AdamW, cosine to 0)
    backbone_lr_scale: float = 0.1  # a pre-trained backbone learns at lr * this
    weight_decay: float = 5e-4
    crop_scale_min: float = 0.35  # random resized crop (0 disables crops)
    flip: bool = True
    minutes: float = 0.0  # stop a fit after this many minutes (0: steps only)
    eval_batch_size: int = 512

    def check(self) -> None:
        if self.steps < 1:
            raise ValueError(f"finetune steps must be at least 1, got {self.steps}")
        if self.batch_size < 2:
            raise ValueError(f"finetune batch size must be at least 2, got {self.batch_size}")
        if self.lr <= 0 or self.backbone_lr_scale < 0:
            raise ValueError("finetune learning rates must be positive")
        if self.minutes < 0:
            raise ValueError(f"minutes per fit must not be negative, got {self.minutes}")

    def augment_config(self) -> AugmentConfig:
        crop = self.crop_scale_min > 0
        return AugmentConfig(crop=crop, crop_scale_min=self.crop_scale_min if crop else 1.0,
                             flip_p=0.5 if self.flip else 0.0, jitter_p=0.0, gray_p=0.0)


@torch.no_grad()
def classify(encoder: nn.Module, head: nn.Module, data, indices=None, batch_size: int = 512,
             device="cpu") -> torch.Tensor:
    """Predicted classes of ``data`` (BatchNorm in eval mode)."""
    encoder.eval()
    head.eval()
    idx = np.arange(len(data)) if indices is None else np.asarray(indices)
    out = []
    for s in range(0, len(idx), batch_size):
        x = data.get(idx[s:s + batch_size]).to(device).float().div_(255)
        out.append(head(encoder(x)).argmax(1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def finetune_fit(encoder: nn.Module, train, indices, test, num_classes: int, cfg: FinetuneConfig | None = None,
                 seed: int = 0, pretrained: bool = True, device="cpu", cancel=None,
                 return_head: bool = False):
    """Train ``encoder`` (in place) with a new linear head on ``train[indices]``; (test top-1, steps).

    Deterministic from ``seed`` on the CPU (head init, batch order, augmentations).
    """
    cfg = cfg or FinetuneConfig()
    device = torch.device(device)
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
    n = len(idx)
    if n < 1:
        raise ValueError("fine-tuning needs at least one labelled image")
    g = torch.Generator().manual_seed(int(seed))
    ag = g if device.type == "cpu" else torch.Generator(device=device).manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        head = nn.Linear(encoder.feature_dim, num_classes)
    encoder.to(device).train()
    head.to(device).train()
    scale = cfg.backbone_lr_scale if pretrained else 1.0
    opt = torch.optim.AdamW([{"params": list(encoder.parameters()), "lr": cfg.lr * scale},
                             {"params": list(head.parameters()), "lr": cfg.lr}], weight_decay=cfg.weight_decay)
    base_lrs = [grp["lr"] for grp in opt.param_groups]
    aug = cfg.augment_config()
    bs = max(2, min(cfg.batch_size, n)) if n > 1 else 1
    labels = train.get_labels(idx).cpu()
    deadline = time.monotonic() + cfg.minutes * 60 if cfg.minutes > 0 else None
    order = torch.zeros(0, dtype=torch.long)
    step = 0
    for step in range(1, cfg.steps + 1):
        if cancel is not None and cancel.is_set():
            raise Cancelled("fine-tuning was cancelled")
        if len(order) < bs:
            order = torch.cat([order, torch.randperm(n, generator=g)])
        pick, order = order[:bs], order[bs:]
        x = train.get(idx[pick]).to(device).float().div_(255)
        y = labels[pick].to(device)
        x = augment(x, aug, ag)
        if bs == 1:  # BatchNorm cannot train on one image: use two views of it
            x, y = torch.cat([x, augment(train.get(idx[pick]).to(device).float().div_(255), aug, ag)]), y.repeat(2)
        loss = F.cross_entropy(head(encoder(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        frac = step / cfg.steps
        for grp, lr in zip(opt.param_groups, base_lrs):
            grp["lr"] = lr * 0.5 * (1 + math.cos(math.pi * frac))
        if deadline is not None and time.monotonic() > deadline:
            break
    pred = classify(encoder, head, test, batch_size=cfg.eval_batch_size, device=device)
    top1 = float((pred == test.labels.cpu().long()).float().mean())
    if return_head:
        return top1, step, head
    return top1, step
