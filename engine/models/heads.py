"""Heads as data: ``mlp([(in, out, batchnorm, activation), ...])`` (the lightly way)."""

from __future__ import annotations

import torch.nn as nn


def mlp(blocks: list[tuple[int, int, bool, bool]], last_bias: bool = True) -> nn.Sequential:
    """A head from a block list. Each block: (in_features, out_features, batch_norm, relu)."""
    layers: list[nn.Module] = []
    for i, (din, dout, bn, act) in enumerate(blocks):
        last = i == len(blocks) - 1
        layers.append(nn.Linear(din, dout, bias=(not bn) and (last_bias or not last)))
        if bn:
            layers.append(nn.BatchNorm1d(dout))
        if act:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def projection_head(in_dim: int, hidden: int, out: int, layers: int = 2, last_bn: bool = False) -> nn.Sequential:
    blocks = []
    d = in_dim
    for _ in range(layers - 1):
        blocks.append((d, hidden, True, True))
        d = hidden
    blocks.append((d, out, last_bn, False))
    return mlp(blocks)
