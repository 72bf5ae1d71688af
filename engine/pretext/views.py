"""Multi-view pairs for contrastive and distillation methods (SimCLR, BYOL, MoCo, ...)."""

from __future__ import annotations

import torch

from engine.augment import AugmentConfig, augment
from engine.pretext.base import PretextBatch


def multi_view(x: torch.Tensor, views: tuple[AugmentConfig, ...], g: torch.Generator | None = None,
               out_size: int | None = None, with_params: bool = False) -> PretextBatch:
    """One augmented view of every image per config in ``views``. Targets: none (the pairing is
    the label: view ``v`` of image ``i`` matches every other view of ``i``)."""
    outs, params = [], []
    for cfg in views:
        if with_params:
            y, p = augment(x, cfg, g, out_size=out_size, return_params=True)
            params.append(p)
        else:
            y = augment(x, cfg, g, out_size=out_size)
        outs.append(y)
    meta = {"num_views": len(views)}
    if with_params:
        meta["params"] = params
    return PretextBatch(tuple(outs), None, meta)
