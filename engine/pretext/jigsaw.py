"""Jigsaw puzzles (Noroozi & Favaro 2016): shuffle 3x3 tiles, predict the permutation's index.

The permutation set is chosen greedily for maximal minimum Hamming distance, so the classes are
as distinguishable as possible. Each tile is cut with a random gap and jitter inside its cell,
so the network cannot solve the puzzle from matching edges.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import torch

from engine.pretext.base import PretextBatch, resize_square


@functools.lru_cache(maxsize=16)
def jigsaw_permutations(count: int = 100, grid: int = 3, seed: int = 0) -> np.ndarray:
    """``count`` permutations of ``grid*grid`` tiles with maximal minimum Hamming distance.

    Greedy: start from a random permutation, then repeatedly add the permutation whose minimum
    Hamming distance to those already chosen is largest. Deterministic for a seed.
    """
    n = grid * grid
    if grid > 3:
        raise ValueError("jigsaw grids larger than 3x3 are not supported")
    all_perms = np.array(list(itertools.permutations(range(n))), dtype=np.uint8)
    if not 2 <= count <= min(len(all_perms), 2000):
        raise ValueError(f"the permutation set size must be 2..{min(len(all_perms), 2000)}, got {count}")
    rng = np.random.default_rng(seed)
    first = int(rng.integers(len(all_perms)))
    chosen = [first]
    min_dist = (all_perms != all_perms[first]).sum(1)
    for _ in range(count - 1):
        best = np.flatnonzero(min_dist == min_dist.max())
        pick = int(best[rng.integers(len(best))])
        chosen.append(pick)
        min_dist = np.minimum(min_dist, (all_perms != all_perms[pick]).sum(1))
    return all_perms[chosen].astype(np.int64)


def jigsaw(x: torch.Tensor, perms: np.ndarray | torch.Tensor, g: torch.Generator | None = None,
           grid: int = 3, cell: int = 0, gap_fraction: float = 0.15) -> PretextBatch:
    """Cut every image into ``grid x grid`` tiles and shuffle them by a random permutation.

    Returns inputs ``(B, grid*grid, 3, t, t)`` where input tile ``k`` is original tile
    ``perm[k]``, and targets = the permutation's index in ``perms``.
    """
    b, c, h, w = x.shape
    dev = x.device
    # a tensor (the method's buffer, on the training device) is used as it is; numpy arrays are copied over
    perms_t = perms.to(dev, torch.long) if isinstance(perms, torch.Tensor) else \
        torch.as_tensor(np.asarray(perms), dtype=torch.long, device=dev)
    n = grid * grid
    cell = cell or max(4, h // grid)
    side = cell * grid
    x = resize_square(x, side)
    tile = max(2, int(round(cell * (1 - gap_fraction))))
    slack = cell - tile
    # random jitter of each tile inside its cell
    off = torch.randint(0, slack + 1, (b, n, 2), generator=g, device=dev)
    targets = torch.randint(0, len(perms_t), (b,), generator=g, device=dev)
    rows = torch.arange(n, device=dev) // grid
    cols = torch.arange(n, device=dev) % grid
    top = rows.view(1, n) * cell + off[..., 0]
    left = cols.view(1, n) * cell + off[..., 1]
    ar = torch.arange(tile, device=dev)
    yy = (top.unsqueeze(-1) + ar).view(b, n, tile, 1).expand(b, n, tile, tile)
    xx = (left.unsqueeze(-1) + ar).view(b, n, 1, tile).expand(b, n, tile, tile)
    flat = (yy * side + xx).reshape(b, 1, n * tile * tile).expand(b, c, -1)
    tiles = torch.gather(x.reshape(b, c, side * side), 2, flat).view(b, c, n, tile, tile)
    tiles = tiles.permute(0, 2, 1, 3, 4)  # (B, n, C, t, t) in original order
    order = perms_t[targets]  # (B, n): input position k shows original tile order[k]
    shuffled = torch.gather(tiles, 1, order.view(b, n, 1, 1, 1).expand_as(tiles))
    meta = {"permutation": order.cpu(), "grid": grid, "tile": tile, "cell": cell,
            "labels": [f"#{int(t)}" for t in targets.tolist()]}
    return PretextBatch(shuffled, targets, meta)
