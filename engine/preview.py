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
from dataclasses import dataclass

import numpy as np
import torch

from engine.augment import AugmentConfig
from engine.pretext.base import generator_for
from engine.pretext.tiles import PreviewRow, PreviewTile, from_uint8, to_uint8


@dataclass
class PreviewResult:
    method: str
    kind: str
    seed: int
    rows: list[PreviewRow]
    info: str = ""  # one paragraph: what the model is asked to do


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
    """Rows of tiles showing ``method``'s pretext batch for ``images`` ((N, H, W, 3) uint8), or for
    clips ((N, T, H, W, C) uint8, C = 3 or 4: what clip methods train on).

    ``augment`` overrides the augmentation of view-based methods (the preview panel's sliders);
    ``options`` are method options (e.g. ``mask_ratio``). The same seed gives the same tiles.
    """
    x = from_uint8(images) if np.ndim(images) != 5 else \
        torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 1, 4, 2, 3).float().div(255)
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


__all__ = ["preview", "PreviewResult", "PreviewRow", "PreviewTile", "to_uint8", "from_uint8", "build_preview_method"]
