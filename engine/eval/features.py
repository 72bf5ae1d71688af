from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@torch.no_grad()
def extract_features(encoder: nn.Module, data, indices=None, batch_size: int = 512, device=None,
                     normalize: bool = True, progress: Callable[[int, int], None] | None = None,
                     cancel=None) -> torch.Tensor:
    """Features ``(N, D)`` float32 on the CPU for ``indices`` of ``data`` (all when None).

    The encoder is put in eval mode (BatchNorm uses running statistics) and restored after.
    """
    device = device or next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    idx = np.arange(len(data)) if indices is None else np.asarray(indices)
    out = []
    try:
        for s in range(0, len(idx), batch_size):
            if cancel is not None and cancel.is_set():
                from engine.data.base import Cancelled

                raise Cancelled("feature extraction was cancelled")
            x = data.get(idx[s:s + batch_size]).to(device, non_blocking=True).float().div_(255)
            f = encoder(x).float()
            if normalize:
                f = F.normalize(f, dim=1)
            out.append(f.cpu())
            if progress:
                progress(min(s + batch_size, len(idx)), len(idx))
    finally:
        encoder.train(was_training)
    if not out:
        return torch.zeros(0, getattr(encoder, "feature_dim", 1))
    return torch.cat(out)


def raw_pixel_features(data, indices=None, size: int = 16) -> torch.Tensor:
    """Raw pixels (downscaled to ``size``), centred and L2-normalised: the trivial baseline."""
    idx = np.arange(len(data)) if indices is None else np.asarray(indices)
    out = []
    for s in range(0, len(idx), 2048):
        x = data.get(idx[s:s + 2048]).cpu().float().div_(255)
        if x.shape[-1] > size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = x.flatten(1)
        x = x - x.mean(1, keepdim=True)
        out.append(F.normalize(x, dim=1))
    return torch.cat(out)
