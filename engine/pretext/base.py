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
