"""Context prediction (relative patch location, Doersch, Gupta, Efros 2015).

The image is resized to a 3x3 grid of ``cell``-pixel cells. A patch is cut from the centre cell
and one from a random neighbouring cell; the label is the neighbour's position (8 classes, in
reading order, the centre skipped). Each patch is smaller than its cell (the *gap*) and shifted
at random inside it (the *jitter*), so that matching edges or continuing lines cannot solve the
task: the network has to recognise parts and know where they sit relative to each other.
"""

from __future__ import annotations

import torch

from engine.pretext.base import PretextBatch, resize_square

# (row offset, column offset) of the 8 neighbours, in reading order; label k is NEIGHBOURS[k]
NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
NEIGHBOUR_NAMES = ("top-left", "top", "top-right", "left", "right", "bottom-left", "bottom", "bottom-right")


def context_geometry(cell: int, gap: float, jitter: float) -> tuple[int, int, int]:
    """(patch size, centred offset of a patch in its cell, largest random shift) in pixels.
    The shift is capped so that a gap of at least one pixel always remains (when ``gap > 0``)."""
    patch = max(2, int(round(cell * (1 - gap))))
    slack = cell - patch
    centre = slack // 2
    shift = max(0, min(int(round(jitter * cell)), (slack - 1) // 2))
    return patch, centre, shift


def context_pairs(x: torch.Tensor, g: torch.Generator | None = None, cell: int = 16, gap: float = 0.25,
                  jitter: float = 0.1) -> PretextBatch:
    """Centre patch + one random neighbour patch per image.

    Returns inputs ``(centre, neighbour)`` each ``(B, 3, p, p)``, targets ``(B,)`` in 0..7
    (the index into :data:`NEIGHBOURS`), and meta with the pixel boxes ``(B, 4)`` as
    ``x0, y0, x1, y1`` of both patches in the resized ``3*cell`` image (``meta['image']``).
    """
    b, c, h, w = x.shape
    dev = x.device
    side = 3 * cell
    x = resize_square(x, side)
    patch, centre, shift = context_geometry(cell, gap, jitter)
    targets = torch.randint(0, 8, (b,), generator=g, device=dev)
    offs = torch.randint(-shift, shift + 1, (b, 2, 2), generator=g, device=dev) + centre  # (B, patch, yx)
    nb = torch.as_tensor(NEIGHBOURS, device=dev)[targets]  # (B, 2) row, col offsets
    cell_rc = torch.stack([torch.ones_like(nb), 1 + nb], dim=1)  # (B, 2 patches, row/col of the cell)
    top_left = cell_rc * cell + offs  # (B, 2, 2) as (y, x)
    ar = torch.arange(patch, device=dev)
    yy = (top_left[..., 0:1] + ar).view(b, 2, patch, 1).expand(b, 2, patch, patch)
    xx = (top_left[..., 1:2] + ar).view(b, 2, 1, patch).expand(b, 2, patch, patch)
    flat = (yy * side + xx).reshape(b, 1, 2 * patch * patch).expand(b, c, -1)
    patches = torch.gather(x.reshape(b, c, side * side), 2, flat).view(b, c, 2, patch, patch)
    centre_p, neigh_p = patches[:, :, 0], patches[:, :, 1]
    boxes = torch.stack([top_left[..., 1], top_left[..., 0], top_left[..., 1] + patch,
                         top_left[..., 0] + patch], dim=-1).cpu()  # (B, 2, 4)
    meta = {"image": x, "centre_box": boxes[:, 0], "neighbour_box": boxes[:, 1], "cell": cell, "patch": patch,
            "labels": [NEIGHBOUR_NAMES[int(t)] for t in targets.tolist()], "classes": NEIGHBOUR_NAMES}
    return PretextBatch((centre_p, neigh_p), targets, meta)
