"""Split-brain channel splits (Zhang, Isola, Efros 2017): L predicts ab, ab predicts L.

The image is converted to CIE Lab (:mod:`engine.pretext.color`). One split is the lightness L (a
grey 3-channel image, as colorization's input); the other is the colour ab alone, drawn as an RGB
image at a fixed lightness (``AB_VIEW_L``) so that the same encoder takes it. Each split's
target is the other split, at the decoder's ``target_size``: ab (soft bins or values, as in
colorization) for the L split, and L (hard bins of ``100 / l_bins`` or values in [0, 1]) for
the ab split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.pretext.base import PretextBatch
from engine.pretext.color import AB_RANGE, ab_bins, encode_ab, lab_to_rgb, lightness_image, rgb_to_lab

AB_VIEW_L = 65.0  # the lightness the ab split is drawn at


def ab_image(lab: torch.Tensor) -> torch.Tensor:
    """The colour channels alone as an RGB image in [0, 1] (L fixed at ``AB_VIEW_L``)."""
    flat = torch.full_like(lab[:, :1], AB_VIEW_L)
    return lab_to_rgb(torch.cat([flat, lab[:, 1:]], 1))


def l_bin_of(lum: torch.Tensor, l_bins: int) -> torch.Tensor:
    """Hard lightness bins 0..l_bins-1 of L in [0, 100]."""
    return (lum / (100.0 / l_bins)).floor().clamp(0, l_bins - 1).long()


def split_inputs(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two splits of a Lab image, as the two halves see them: ``(L split, ab split)``, RGB in [0, 1]."""
    return lightness_image(lab), ab_image(lab)


def split_brain(x: torch.Tensor, target_size: int | None = None, mode: str = "classification",
                bins: torch.Tensor | None = None, l_bins: int = 50) -> PretextBatch:
    """Inputs ``(L split, ab split)`` (both ``(B, 3, H, W)`` in [0, 1]); targets ``(ab target, L target)``:
    for the L split the ab channels (``regression``: ``(B, 2, s, s)`` / AB_RANGE; ``classification``:
    soft bins ``(B, Q, s, s)``), for the ab split the L channel (``regression``: ``(B, 1, s, s)`` in
    [0, 1]; ``classification``: hard bins ``(B, s, s)``). Meta: lab, the pooled ab and L, the hard ab bins."""
    if mode not in ("classification", "regression"):
        raise ValueError(f"unknown split-brain mode {mode!r}; choose classification or regression")
    lab = rgb_to_lab(x)
    s = target_size or x.shape[-1]
    pooled = F.adaptive_avg_pool2d(lab, s) if s != x.shape[-1] else lab
    ab_t, l_t = pooled[:, 1:], pooled[:, :1]
    meta = {"lab": lab, "ab": ab_t, "L": l_t, "mode": mode, "l_bins": l_bins}
    inputs = split_inputs(lab)
    if mode == "regression":
        return PretextBatch(inputs, (ab_t / AB_RANGE, l_t / 100.0), meta)
    centres = ab_bins() if bins is None else bins
    soft, hard = encode_ab(ab_t, centres)
    meta["bins"] = hard
    return PretextBatch(inputs, (soft, l_bin_of(l_t[:, 0], l_bins)), meta)
