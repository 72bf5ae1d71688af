"""Corruptions for reconstruction pretexts: a masked block (context encoders / inpainting,
Pathak et al. 2016), noise (denoising autoencoders, Vincent et al. 2008) and down-scaling
(super-resolution as a pretext). Each returns the corrupted image as input and the clean image
as target, with the mask or low-resolution copy in meta for previews."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.pretext.base import PretextBatch

# the fill of a masked block: the per-channel mean the backbones normalise with (it becomes 0)
FILL = (0.485, 0.456, 0.406)
NOISE_KINDS = ("gaussian", "salt_pepper", "masking")


def block_mask(x: torch.Tensor, g: torch.Generator | None = None, size: float = 0.5,
               mode: str = "center") -> PretextBatch:
    """Hide a square block of ``size`` x the image side: in the ``center`` or at a ``random``
    place per image. Inputs: the image with the block filled with the mean colour; targets:
    the original; meta: ``mask`` ``(B, 1, H, W)`` (1 inside the hole) and ``boxes`` ``(B, 4)``
    as ``x0, y0, x1, y1``."""
    b, _, h, w = x.shape
    dev = x.device
    bh, bw = max(1, int(round(h * size))), max(1, int(round(w * size)))
    if mode == "center":
        y0 = torch.full((b,), (h - bh) // 2, device=dev)
        x0 = torch.full((b,), (w - bw) // 2, device=dev)
    elif mode == "random":
        y0 = torch.randint(0, h - bh + 1, (b,), generator=g, device=dev)
        x0 = torch.randint(0, w - bw + 1, (b,), generator=g, device=dev)
    else:
        raise ValueError(f"unknown mask mode {mode!r}; choose center or random")
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside = (ys >= y0.view(b, 1, 1)) & (ys < (y0 + bh).view(b, 1, 1)) & \
             (xs >= x0.view(b, 1, 1)) & (xs < (x0 + bw).view(b, 1, 1))
    mask = inside.unsqueeze(1).to(x.dtype)
    fill = torch.tensor(FILL, device=dev, dtype=x.dtype).view(1, 3, 1, 1)
    inputs = x * (1 - mask) + fill * mask
    boxes = torch.stack([x0, y0, x0 + bw, y0 + bh], 1)  # on the device: no host sync in a training step
    return PretextBatch(inputs, x, {"mask": mask, "boxes": boxes, "box_size": (bh, bw), "mode": mode, "size": size})


def add_noise(x: torch.Tensor, g: torch.Generator | None = None, kind: str = "gaussian",
              strength: float = 0.2, grid: int = 0) -> PretextBatch:
    """Corrupt ``x``: ``gaussian`` (additive, sigma = strength), ``salt_pepper`` (a fraction
    ``strength`` of the pixels set to black or white) or ``masking`` (a fraction ``strength`` of
    the pixels set to 0, Vincent et al.'s masking noise). ``grid`` > 0 (Gaussian noise only) draws
    the noise on a ``grid`` x ``grid`` lattice of each channel and spreads it bilinearly over the
    image: smooth blotches of colour (sigma at the lattice points, less between them) that no pixel's
    neighbours can undo; 0 draws it anew for every pixel. Inputs: noisy; targets: clean; meta
    ``mask``: where pixels were replaced (all ones for Gaussian noise)."""
    b, c, h, w = x.shape
    dev = x.device
    if kind == "gaussian":
        if grid > 0:
            coarse = torch.randn(b, c, grid, grid, generator=g, device=dev, dtype=x.dtype)
            noise = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
        else:
            noise = torch.randn(x.shape, generator=g, device=dev, dtype=x.dtype)
        noisy = (x + strength * noise).clamp(0, 1)
        mask = torch.ones(b, 1, h, w, device=dev, dtype=x.dtype)
    elif kind in ("salt_pepper", "masking"):
        u = torch.rand(b, 1, h, w, generator=g, device=dev)
        hit = u < strength
        mask = hit.to(x.dtype)
        if kind == "salt_pepper":
            value = (torch.rand(b, 1, h, w, generator=g, device=dev) < 0.5).to(x.dtype)
        else:
            value = torch.zeros(b, 1, h, w, device=dev, dtype=x.dtype)
        noisy = torch.where(hit, value.expand(b, c, h, w), x)
    else:
        raise ValueError(f"unknown noise {kind!r}; choose one of: {', '.join(NOISE_KINDS)}")
    return PretextBatch(noisy, x, {"mask": mask, "kind": kind, "strength": strength, "grid": grid})


def downscale(x: torch.Tensor, factor: int = 2, upsample: str = "bicubic") -> PretextBatch:
    """Down-scale by ``factor`` (area average, so no aliasing), then up-scale back with
    ``upsample`` interpolation. Inputs: the blurry full-size image; targets: the original;
    meta ``low``: the low-resolution copy."""
    h, w = x.shape[-2:]
    lh, lw = max(1, h // factor), max(1, w // factor)
    low = F.interpolate(x, size=(lh, lw), mode="area")
    kw = {"align_corners": False} if upsample in ("bilinear", "bicubic") else {}
    up = F.interpolate(low, size=(h, w), mode=upsample, **kw).clamp(0, 1)
    return PretextBatch(up, x, {"low": low, "factor": factor, "upsample": upsample})
