"""Where an encoder looks: attention maps of ViTs, spatial maps of CNNs, and their pictures.

* ViTs (the workbench's, timm's, torchvision's): the last block's attention of the class token to every
  patch, one map per head (DINO's figure), renormalised over the patches.
* CNNs: one map, the norm of the last feature map over its channels.
* Any encoder with a spatial map: the cosine similarity of every location to a reference feature
  (e.g. a chosen neighbour's), its negative part cut off.

Every map sums to 1. :func:`top_mass_mask` keeps the smallest set of cells that holds a given share of
a map's mass (DINO's threshold).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import EncoderError


def attention_kind(encoder) -> str:
    """``"attention"`` (ViT heads) or ``"feature norm"`` (one CNN map)."""
    if hasattr(encoder, "cls_attention"):
        return "attention"
    if hasattr(encoder, "forward_map"):
        return "feature norm"
    raise EncoderError(f"{type(encoder).__name__} gives neither attention nor a spatial feature map")


def _normalise(a: torch.Tensor) -> torch.Tensor:
    a = a.float().clamp_min(0)
    total = a.sum(dim=(-2, -1), keepdim=True)
    uniform = torch.full_like(a, 1.0 / (a.shape[-1] * a.shape[-2]))
    return torch.where(total > 0, a / total.clamp_min(1e-30), uniform)


def spatial_map(encoder, x: torch.Tensor) -> torch.Tensor:
    """The encoder's spatial features ``(B, C, h, w)`` (a workbench ViT's patch tokens on their grid)."""
    if hasattr(encoder, "forward_map"):
        return encoder.forward_map(x)
    if getattr(encoder, "kind", "") == "vit" and hasattr(encoder, "forward_tokens"):
        t = encoder.forward_tokens(x)[:, 1:]
        return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], x.shape[-2] // encoder.patch, -1)
    raise EncoderError(f"{type(encoder).__name__} gives no spatial feature map")


@torch.no_grad()
def attention_maps(encoder, x: torch.Tensor) -> torch.Tensor:
    """``(B, heads, gh, gw)`` maps for a float batch ``x`` in [0, 1], each summing to 1 (CNNs: one head)."""
    was = encoder.training
    encoder.eval()
    try:
        if attention_kind(encoder) == "attention":
            a = encoder.cls_attention(x)
        else:
            a = encoder.forward_map(x).float().norm(dim=1, keepdim=True)
    finally:
        encoder.train(was)
    return _normalise(a)


@torch.no_grad()
def similarity_maps(encoder, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``(B, 1, h, w)``: the cosine similarity of each location's features to ``reference`` (a feature vector
    of the encoder's space, e.g. a neighbour's pooled features), negatives cut, each summing to 1."""
    was = encoder.training
    encoder.eval()
    try:
        m = spatial_map(encoder, x).float()
    finally:
        encoder.train(was)
    ref = reference.float().reshape(1, -1, 1, 1).to(m.device)
    if ref.shape[1] != m.shape[1]:
        raise EncoderError(f"the reference has {ref.shape[1]} features, the encoder's map {m.shape[1]} channels")
    sim = F.cosine_similarity(m, ref, dim=1).unsqueeze(1)
    return _normalise(sim)


def mean_map(maps) -> np.ndarray:
    """The mean over heads ``(B, gh, gw)``, summing to 1."""
    a = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    return _normalise(a.mean(dim=1)).numpy()


def top_mass_mask(maps, keep: float = 0.6) -> np.ndarray:
    """A boolean mask of each map's smallest set of cells that holds ``keep`` of its mass (DINO's threshold:
    the cells over it are the object). ``maps``: (..., gh, gw)."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"the kept share of the mass must be above 0 and at most 1, got {keep}")
    a = np.asarray(maps, dtype=np.float64)
    flat = a.reshape(-1, a.shape[-2] * a.shape[-1])
    flat = flat / np.maximum(flat.sum(1, keepdims=True), 1e-30)
    order = np.argsort(-flat, axis=1, kind="stable")
    cum = np.cumsum(np.take_along_axis(flat, order, axis=1), axis=1)
    # a cell is kept while the mass before it is below ``keep`` (the first cell always)
    before = cum - np.take_along_axis(flat, order, axis=1)
    kept_sorted = before < keep - 1e-6
    mask = np.zeros_like(kept_sorted)
    np.put_along_axis(mask, order, kept_sorted, axis=1)
    return mask.reshape(a.shape)


# -- pictures -------------------------------------------------------------------------------------------------
_STOPS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)  # inferno


def colormap(v: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB (an inferno-like ramp)."""
    v = np.clip(np.asarray(v, np.float32), 0, 1) * (len(_STOPS) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_STOPS) - 2)
    t = (v - lo)[..., None]
    return ((1 - t) * _STOPS[lo] + t * _STOPS[lo + 1]).round().astype(np.uint8)


def _upsample(m: np.ndarray, size: int) -> np.ndarray:
    t = torch.as_tensor(m, dtype=torch.float32)[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()


def overlay(image: np.ndarray, m: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """``image`` (S x S x 3 uint8) with the map ``m`` (gh x gw) drawn over it, scaled to its maximum."""
    up = _upsample(m / max(float(m.max()), 1e-12), image.shape[0])
    return ((1 - alpha) * image.astype(np.float32) + alpha * colormap(up)).round().clip(0, 255).astype(np.uint8)


def masked(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with the cells outside ``mask`` darkened."""
    up = _upsample(mask.astype(np.float32), image.shape[0])[..., None]
    return (image.astype(np.float32) * (0.2 + 0.8 * up)).round().clip(0, 255).astype(np.uint8)


def attention_figure(image: np.ndarray, maps: np.ndarray, keep: float = 0.6, tile: int = 0) -> np.ndarray:
    """One picture of an image's maps: the image, the mean map over it, the image kept at ``keep`` of the
    mean's mass, then one tile per head (when there are several). uint8 (tile, n * tile, 3)."""
    size = tile or max(int(image.shape[0]), 96)
    if image.shape[0] != size:
        t = torch.as_tensor(image).permute(2, 0, 1)[None].float()
        image = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0] \
            .permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
    mean = mean_map(maps[None])[0]
    tiles = [image, overlay(image, mean), masked(image, top_mass_mask(mean, keep))]
    if len(maps) > 1:
        tiles += [overlay(image, h) for h in maps]
    gap = np.full((size, 2, 3), 255, np.uint8)
    row = []
    for t in tiles:
        row += [t, gap]
    return np.concatenate(row[:-1], axis=1)


def save_png(array: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path)
    return path


__all__ = ["attention_maps", "similarity_maps", "spatial_map", "mean_map", "top_mass_mask", "attention_kind",
           "attention_figure", "overlay", "colormap", "save_png"]
