"""The two-view base: methods that compare two augmented views of every image (SimCLR, MoCo, BYOL, SimSiam,
DINO, Barlow Twins, VICReg, Exemplar).

Their options start with :class:`ContrastiveViews` (the recipe of the two views and overrides of its
settings: the Run form lists these fields first, in this order, and saved configs name them), and the
method derives from :class:`TwoViewMethod`, which builds the two augmentation configs as ``self.views``
(the preview's sliders swap them) and draws one view of every image per config in ``make_batch``.
A method with more crops (multi-crop) or copies overrides ``make_batch`` and keeps ``self.views``.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.augment import AugmentConfig, preset
from engine.methods.base import Method
from engine.params import from_dict, param
from engine.pretext.views import multi_view


@dataclass
class ContrastiveViews:
    views: str = param("simclr", "Augmentation recipe of the two views", choices=("simclr", "byol", "light"))
    augment: dict = param({}, "Overrides of the recipe's augmentation settings (crop_scale_min, "
                              "brightness, blur_p, ...)", advanced=True)


def build_views(views: str, overrides: dict, image_size: int) -> tuple[AugmentConfig, AugmentConfig]:
    """The two views' augmentation configs: the recipe ``views`` at ``image_size`` with ``overrides``."""
    v1, v2 = preset(views, image_size)
    if overrides:
        base1, base2 = v1.__dict__ | overrides, v2.__dict__ | overrides
        v1, v2 = from_dict(AugmentConfig, base1, "augment"), from_dict(AugmentConfig, base2, "augment")
    return v1, v2


class TwoViewMethod(Method):
    """A method on two augmented views of every image; its ``Config`` derives from :class:`ContrastiveViews`."""

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        self.views = build_views(cfg.views, cfg.augment, info.image_size)

    def make_batch(self, x, g, preview=False):
        return multi_view(x, self.views, g, with_params=preview)

    def view_pair(self, x, g):
        """The first two views ``make_batch`` draws (multi-crop methods: the two global views)."""
        inputs = self.make_batch(x, g).inputs
        return inputs[0], inputs[1]


__all__ = ["ContrastiveViews", "TwoViewMethod", "build_views"]
