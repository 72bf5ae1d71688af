"""Random patch masking (MAE, He et al. 2022): hide a ratio of the ViT patches, keep the rest."""

from __future__ import annotations

import torch

from engine.pretext.base import PretextBatch


def patch_mask(batch: int, num_patches: int, ratio: float, g: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> PretextBatch:
    """Per-sample random masks. Returns inputs ``ids_keep (B, K)``, targets ``mask (B, L)``
    (1 = masked, 0 = visible) and ``ids_restore`` in meta (the inverse of the shuffle)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    keep = max(1, int(round(num_patches * (1 - ratio))))
    noise = torch.rand(batch, num_patches, generator=g, device=device)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    mask = torch.ones(batch, num_patches, device=device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return PretextBatch(ids_keep, mask, {"ids_restore": ids_restore, "num_keep": keep, "ratio": ratio})


def apply_patch_mask(x: torch.Tensor, mask: torch.Tensor, patch: int, fill: float = 0.5) -> torch.Tensor:
    """The image with masked patches painted ``fill`` (for previews and the inspector)."""
    b, c, h, w = x.shape
    gh, gw = h // patch, w // patch
    m = mask.view(b, 1, gh, gw).to(x.dtype)
    m = torch.nn.functional.interpolate(m, scale_factor=patch, mode="nearest")
    if m.shape[-2:] != (h, w):
        m = torch.nn.functional.pad(m, (0, w - m.shape[-1], 0, h - m.shape[-2]))
    return x * (1 - m) + fill * m
