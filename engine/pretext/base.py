from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class PretextBatch:
    """What a pretext generator gives: model ``inputs``, ``targets`` and preview ``meta``.

    ``inputs`` is a tensor or a tuple of tensors (two views, tiles, ...). ``meta`` holds plain
    values and CPU tensors: the labels a preview prints under each image, boxes, masks.
    """

    inputs: torch.Tensor | tuple
    targets: torch.Tensor | tuple | None = None
    meta: dict = field(default_factory=dict)


def generator_for(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed) & 0x7FFF_FFFF_FFFF_FFFF)
    return g


def resize_square(x: torch.Tensor, side: int) -> torch.Tensor:
    """``x`` ``(B, C, H, W)`` resized to ``side x side`` (bilinear, antialiased when shrinking); unchanged when
    it is that size already. The one resize the tile and patch pretexts cut their pieces from."""
    h, w = x.shape[-2:]
    if h == side and w == side:
        return x
    return torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False,
                                           antialias=side < h)
