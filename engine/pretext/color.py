"""Colorization (Zhang, Isola, Efros 2016): the lightness channel in, the colour channels out.

Images are converted to CIE Lab (sRGB, D65 white). The model sees L (replicated to three
channels, scaled to [0, 1], so the same encoder also takes RGB images at evaluation) and
predicts ab: either as a distribution over quantised ab bins (the paper's classification, with
soft-encoded targets over the 5 nearest bins) or by regression.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from engine.pretext.base import PretextBatch

_RGB2XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
_WHITE = (0.950456, 1.0, 1.088754)
AB_RANGE = 110.0  # a and b are clipped to [-110, 110]


def _f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > 0.008856, t.clamp(min=1e-8).pow(1 / 3), 7.787 * t + 16 / 116)


def _finv(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > 0.206893, t.pow(3), (t - 16 / 116) / 7.787)


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) sRGB in [0, 1] -> Lab with L in [0, 100], a and b roughly in [-110, 110]."""
    x = x.float().clamp(0, 1)
    lin = torch.where(x > 0.04045, ((x + 0.055) / 1.055).pow(2.4), x / 12.92)
    m = torch.tensor(_RGB2XYZ, device=x.device)
    xyz = torch.einsum("ij,bjhw->bihw", m, lin)
    xyz = xyz / torch.tensor(_WHITE, device=x.device).view(1, 3, 1, 1)
    fx, fy, fz = _f(xyz).unbind(1)
    lum = torch.where(xyz[:, 1] > 0.008856, 116 * fy - 16, 903.3 * xyz[:, 1])
    return torch.stack([lum, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_lab`, clipped to [0, 1] (out-of-gamut colours are clipped)."""
    lum, a, b = lab.float().unbind(1)
    fy = (lum + 16) / 116
    fx = fy + a / 500
    fz = fy - b / 200
    xyz = torch.stack([_finv(fx), _finv(fy), _finv(fz)], dim=1)
    xyz = xyz * torch.tensor(_WHITE, device=lab.device).view(1, 3, 1, 1)
    m = torch.linalg.inv(torch.tensor(_RGB2XYZ, device=lab.device, dtype=torch.float64)).float()
    lin = torch.einsum("ij,bjhw->bihw", m, xyz).clamp(0, 1)
    return torch.where(lin > 0.0031308, 1.055 * lin.clamp(min=1e-8).pow(1 / 2.4) - 0.055, 12.92 * lin).clamp(0, 1)


def lightness_image(lab: torch.Tensor) -> torch.Tensor:
    """L as a 3-channel grey image in [0, 1] (what the encoder sees)."""
    return (lab[:, :1] / 100).clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


@functools.lru_cache(maxsize=4)
def ab_bins(grid: float = 10.0) -> torch.Tensor:
    """Centres ``(Q, 2)`` of the in-gamut ab bins of a ``grid``-sized quantisation (Q = 313 for
    ``grid=10`` in the paper; found here by converting a dense sample of the RGB cube)."""
    v = torch.linspace(0, 1, 48)
    cube = torch.stack(torch.meshgrid(v, v, v, indexing="ij"), 0).reshape(3, 1, -1)
    ab = rgb_to_lab(cube.unsqueeze(0))[0, 1:].reshape(2, -1).t()
    idx = torch.floor((ab + AB_RANGE) / grid).long()
    n = int(2 * AB_RANGE // grid) + 1
    used = torch.unique(idx[:, 0] * n + idx[:, 1])
    centres = torch.stack([used // n, used % n], 1).float() * grid - AB_RANGE + grid / 2
    return centres


def encode_ab(ab: torch.Tensor, centres: torch.Tensor, neighbours: int = 5, sigma: float = 5.0):
    """Soft-encode ab values ``(B, 2, h, w)`` over the bins: a Gaussian (``sigma``) on the
    ``neighbours`` nearest bin centres. Returns (soft targets ``(B, Q, h, w)``, hard ``(B, h, w)``)."""
    b, _, h, w = ab.shape
    flat = ab.permute(0, 2, 3, 1).reshape(-1, 2)
    d2 = torch.cdist(flat.float(), centres.to(flat.device))  # (N, Q)
    hard = d2.argmin(1)
    k = min(neighbours, centres.shape[0])
    dist, idx = d2.topk(k, dim=1, largest=False)
    wts = torch.softmax(-dist.pow(2) / (2 * sigma**2), dim=1)
    soft = torch.zeros_like(d2).scatter_(1, idx, wts)
    q = centres.shape[0]
    return soft.view(b, h, w, q).permute(0, 3, 1, 2), hard.view(b, h, w)


def decode_ab(logits: torch.Tensor, centres: torch.Tensor, temperature: float = 0.38) -> torch.Tensor:
    """The paper's annealed mean: ab ``(B, 2, h, w)`` from bin logits ``(B, Q, h, w)``."""
    p = torch.softmax(logits.float() / temperature, dim=1)
    return torch.einsum("bqhw,qc->bchw", p, centres.to(logits.device))


def colorization(x: torch.Tensor, target_size: int | None = None, mode: str = "classification",
                 bins: torch.Tensor | None = None) -> PretextBatch:
    """Inputs: L as a grey 3-channel image; targets: ab (``regression``: ``(B, 2, s, s)`` scaled
    to about [-1, 1]; ``classification``: soft bin targets ``(B, Q, s, s)``), at ``target_size``
    (the decoder's output size; default: the image size). Meta holds L, ab and the hard bins."""
    lab = rgb_to_lab(x)
    inputs = lightness_image(lab)
    ab = lab[:, 1:]
    s = target_size or x.shape[-1]
    ab_t = F.adaptive_avg_pool2d(ab, s) if s != x.shape[-1] else ab
    meta = {"lab": lab, "ab": ab_t, "mode": mode}
    if mode == "regression":
        return PretextBatch(inputs, ab_t / AB_RANGE, meta)
    if mode != "classification":
        raise ValueError(f"unknown colorization mode {mode!r}; choose classification or regression")
    centres = ab_bins() if bins is None else bins
    soft, hard = encode_ab(ab_t, centres)
    meta["bins"] = hard
    return PretextBatch(inputs, soft, meta)
