"""Pretext previews: what a method's training step really sees, as captioned image tiles.

``preview(method, images, seed, ...)`` builds the method (cached), calls its ``make_batch`` (the
very function its ``training_step`` calls) on the given images with a generator seeded by
``seed``, and turns the result into rows of :class:`PreviewTile` (uint8 images, captions and
simple overlays) that any front end can draw without knowing torch or the method.

Methods draw their own preview by overriding ``Method.preview_rows``; the kinds shared by
several methods (views, rotation, jigsaw, mask) are drawn here.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.augment import AugmentConfig
from engine.pretext.base import generator_for


@dataclass
class PreviewTile:
    image: np.ndarray  # (H, W, 3) uint8
    caption: str = ""
    grid: int = 0  # draw an n x n grid over the tile
    boxes: list = field(default_factory=list)  # [(x0, y0, x1, y1, "#rrggbb", label)] in pixels
    highlight: bool = False


@dataclass
class PreviewRow:
    title: str
    tiles: list[PreviewTile]


@dataclass
class PreviewResult:
    method: str
    kind: str
    seed: int
    rows: list[PreviewRow]
    info: str = ""  # one paragraph: what the model is asked to do


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) uint8."""
    return (x.detach().float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1]."""
    arr = np.ascontiguousarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(255)


@functools.lru_cache(maxsize=8)
def _cached_method(name: str, options_json: str, image_size: int, backbone: str):
    from engine.methods import DataInfo, get_method_class
    from engine.models import build_backbone, default_backbone
    from engine.params import from_dict

    cls = get_method_class(name)
    cfg = from_dict(cls.Config, json.loads(options_json), "method_options")
    if backbone == "auto":
        backbone = default_backbone("cpu", "vit" if cls.backbone_kind == "vit" else "cnn")
    torch.manual_seed(0)
    bb = build_backbone(backbone, image_size)
    info = DataInfo(image_size=image_size, num_classes=10 if cls.needs_labels else 0)
    return cls(cfg, bb, info).eval()


def build_preview_method(name: str, options: dict | None, image_size: int, backbone: str = "auto"):
    return _cached_method(name, json.dumps(options or {}, sort_keys=True), int(image_size), backbone)


def preview(method: str, images: np.ndarray, seed: int = 0, options: dict | None = None,
            augment: dict | None = None, backbone: str = "auto") -> PreviewResult:
    """Rows of tiles showing ``method``'s pretext batch for ``images`` ((N, H, W, 3) uint8).

    ``augment`` overrides the augmentation of view-based methods (the preview panel's sliders);
    ``options`` are method options (e.g. ``mask_ratio``). The same seed gives the same tiles.
    """
    x = from_uint8(images)
    m = build_preview_method(method, options, x.shape[-1], backbone)
    if augment is not None and hasattr(m, "views"):
        from engine.params import from_dict

        v1 = from_dict(AugmentConfig, {**m.views[0].__dict__, **augment}, "augment")
        v2 = from_dict(AugmentConfig, {**m.views[1].__dict__, **augment}, "augment")
        saved = m.views
        m.views = (v1, v2)
        try:
            rows = m.preview_rows(x, generator_for(seed))
        finally:
            m.views = saved
    else:
        rows = m.preview_rows(x, generator_for(seed))
    return PreviewResult(method=method, kind=m.preview_kind, seed=seed, rows=rows, info=m.summary)


# -- shared drawings ------------------------------------------------------------------------------
def describe_view(params: dict, i: int) -> str:
    box = params["box"][i]
    area = float((box[2] - box[0]) * (box[3] - box[1]) / 4)
    parts = [f"crop {area:.0%}"]
    if bool(params["flip"][i]):
        parts.append("flip")
    if bool(params["jitter"][i]):
        parts.append("jitter")
    if bool(params["gray"][i]):
        parts.append("gray")
    if float(params["blur_sigma"][i]) > 0:
        parts.append(f"blur {float(params['blur_sigma'][i]):.1f}")
    if bool(params["solarize"][i]):
        parts.append("solarize")
    return " ".join(parts)


def crop_box_pixels(box, size: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = ((float(v) + 1) / 2 * size for v in box)
    return max(0.0, x0), max(0.0, y0), min(float(size), x1), min(float(size), y1)


def views_rows(x: torch.Tensor, batch, titles=("view 1", "view 2")) -> list[PreviewRow]:
    """Original (with the crop boxes drawn) next to each view, one row per image."""
    orig = to_uint8(x)
    views = [to_uint8(v) for v in batch.inputs]
    params = batch.meta.get("params")
    colors = ("#ff4040", "#40a0ff", "#40ff80", "#ffd040")
    rows = []
    size = x.shape[-1]
    for i in range(x.shape[0]):
        boxes = []
        tiles_v = []
        for v, view in enumerate(views):
            cap = titles[v] if v < len(titles) else f"view {v + 1}"
            if params is not None:
                cap = f"{cap}: {describe_view(params[v], i)}"
                boxes.append((*crop_box_pixels(params[v]['box'][i], size), colors[v % 4], str(v + 1)))
            tiles_v.append(PreviewTile(view[i], cap))
        rows.append(PreviewRow(f"image {i + 1}", [PreviewTile(orig[i], "original", boxes=boxes)] + tiles_v))
    return rows


def assemble_tiles(tiles: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, grid*grid, C, t, t) tiles -> (B, C, grid*t, grid*t) images, row by row."""
    b, n, c, t, _ = tiles.shape
    x = tiles.view(b, grid, grid, c, t, t).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, grid * t, grid * t)
