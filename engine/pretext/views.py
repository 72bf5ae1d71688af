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


class MultiCrop:
    """Small local crops besides two global views (multi-crop, Caron et al. 2020): ``count`` crops of at
    most ``crop_max`` of the image, ``size`` (a fraction of the image side) on a side, so each costs about
    ``size**2`` of a global view. They take the second global view's colour recipe without solarize and
    with at most half its blur; ``patch``: a ViT's patch size (its crops must tile into whole patches)."""

    def __init__(self, views: tuple[AugmentConfig, AugmentConfig], count: int, size: float, crop_max: float,
                 image_size: int, patch: int = 0):
        from dataclasses import replace

        self.count = int(count)
        self.local_view = replace(views[1], crop_scale_min=min(0.05, crop_max), crop_scale_max=crop_max,
                                  blur_p=min(views[1].blur_p, 0.5), solarize_p=0.0)
        self.local_size = max(8, int(round(image_size * size)))
        if patch:
            self.local_size = max(patch, self.local_size // patch * patch)

    def __call__(self, x: torch.Tensor, views: tuple[AugmentConfig, AugmentConfig], g: torch.Generator | None = None,
                 with_params: bool = False) -> PretextBatch:
        """The global ``views`` (the method's, which the preview's sliders may swap) then the local crops."""
        glob = multi_view(x, views, g, with_params=with_params)
        if not self.count:
            return glob
        loc = multi_view(x, (self.local_view,) * self.count, g, out_size=self.local_size, with_params=with_params)
        meta = {"num_views": 2 + self.count, "num_global": 2}
        if with_params:
            meta["params"] = glob.meta["params"] + loc.meta["params"]
        return PretextBatch(glob.inputs + loc.inputs, None, meta)

    def titles(self, global_name: str = "global", global_note: str = "", local_note: str = "") -> tuple[str, ...]:
        """Preview captions: ``global 1``, ``global 2``, ``local 1``, ... with the notes appended."""
        return (f"{global_name} 1{global_note}", f"{global_name} 2{global_note}") + tuple(
            f"local {i + 1}{local_note}" for i in range(self.count))
