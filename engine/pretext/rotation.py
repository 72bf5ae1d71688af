"""Rotation prediction (RotNet, Gidaris et al. 2018): 0, 90, 180, 270 degrees, 4-way classification."""

from __future__ import annotations

import torch

from engine.pretext.base import PretextBatch

ROTATION_LABELS = ("0°", "90°", "180°", "270°")


def rotation(x: torch.Tensor, g: torch.Generator | None = None, all_four: bool = True) -> PretextBatch:
    """Rotate each image. ``all_four``: every image in all four rotations (the RotNet recipe, 4B
    inputs ordered image by image); otherwise one random rotation per image.

    Rotations are counter-clockwise by ``90 * target`` degrees (``torch.rot90`` on H, W).
    """
    b = x.shape[0]
    if all_four:
        rots = torch.stack([torch.rot90(x, k, dims=(2, 3)) for k in range(4)], dim=1)  # (B, 4, C, H, W)
        inputs = rots.reshape(b * 4, *x.shape[1:])
        targets = torch.arange(4, device=x.device).repeat(b)
        source = torch.arange(b).repeat_interleave(4)
    else:
        targets = torch.randint(0, 4, (b,), generator=g, device=x.device)
        inputs = torch.empty_like(x)
        for k in range(4):
            sel = targets == k
            if sel.any():
                inputs[sel] = torch.rot90(x[sel], k, dims=(2, 3))
        source = torch.arange(b)
    labels = [ROTATION_LABELS[int(t)] for t in targets.tolist()]
    return PretextBatch(inputs, targets, {"labels": labels, "source": source, "classes": ROTATION_LABELS})
