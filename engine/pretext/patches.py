"""A grid of overlapping patches (CPC, van den Oord et al. 2018; Henaff et al. 2019).

The image is resized so that ``grid`` patches of ``patch`` pixels with a ``stride`` cover it
exactly; every patch is encoded on its own and the patch features form a ``grid x grid`` map
on which CPC predicts rows below from the rows above.
"""

from __future__ import annotations

import torch

from engine.pretext.base import PretextBatch, resize_square


def patch_grid(x: torch.Tensor, grid: int = 4, patch: int = 16, stride: int = 8) -> PretextBatch:
    """Inputs ``(B, grid*grid, 3, patch, patch)`` in reading order; meta ``boxes``
    ``(grid*grid, 4)`` (``x0, y0, x1, y1`` in the resized image ``meta['image']``)."""
    b, c, h, w = x.shape
    side = stride * (grid - 1) + patch
    x = resize_square(x, side)
    tiles = x.unfold(2, patch, stride).unfold(3, patch, stride)  # (B, C, G, G, p, p)
    tiles = tiles.permute(0, 2, 3, 1, 4, 5).reshape(b, grid * grid, c, patch, patch)
    rc = torch.arange(grid * grid)
    top, left = rc // grid * stride, rc % grid * stride
    boxes = torch.stack([left, top, left + patch, top + patch], 1)
    return PretextBatch(tiles, None, {"image": x, "boxes": boxes, "grid": grid, "patch": patch, "stride": stride})
