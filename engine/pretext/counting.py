"""Counting visual primitives (Noroozi, Pirsiavash, Favaro 2017): the four tiles of an image and
the image down-scaled to a tile's size, plus another image for the contrastive term.

The counts of the tiles must add up to the counts of the whole (``phi(D x) = sum_i phi(T_i x)``);
the other image ``y`` (the next image of the batch) keeps the all-zero solution out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.pretext.base import PretextBatch, resize_square


def counting_tiles(x: torch.Tensor, out_size: int | None = None) -> PretextBatch:
    """Inputs ``(tiles (B, 4, 3, s, s), down (B, 3, s, s), other (B, 3, s, s))``: the 2x2 tiles of
    every image in reading order, the image down-scaled by 2 (area average) and the down-scaled
    image of the next image in the batch (``other[i]`` comes from ``x[(i + 1) % B]``). ``s`` is
    half the image side, or ``out_size`` (everything resized to it: ``resize_square``). Targets: none (the
    sum constraint is the label). Meta: the tile ``boxes`` ``(4, 4)`` as ``x0, y0, x1, y1`` and the
    ``other_index`` of every image."""
    b, c, h, w = x.shape
    if b < 2:
        raise ValueError("counting needs at least 2 images per batch (another image for the contrastive term)")
    th, tw = h // 2, w // 2
    x = x[:, :, :2 * th, :2 * tw]
    tiles = x.unfold(2, th, th).unfold(3, tw, tw)  # (B, C, 2, 2, th, tw)
    tiles = tiles.permute(0, 2, 3, 1, 4, 5).reshape(b, 4, c, th, tw)
    down = F.interpolate(x, size=(th, tw), mode="area")
    if out_size:
        tiles = resize_square(tiles.reshape(b * 4, c, th, tw), out_size).view(b, 4, c, out_size, out_size)
        down = resize_square(down, out_size)
    other_index = torch.roll(torch.arange(b, device=x.device), -1)
    other = down[other_index]
    boxes = torch.tensor([[0, 0, tw, th], [tw, 0, 2 * tw, th], [0, th, tw, 2 * th], [tw, th, 2 * tw, 2 * th]])
    return PretextBatch((tiles, down, other), None, {"image": x, "boxes": boxes, "other_index": other_index.cpu()})
