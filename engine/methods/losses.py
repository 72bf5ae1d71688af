"""Losses shared by methods (each in a few lines, with the paper it comes from)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """NT-Xent / InfoNCE over the batch (SimCLR, Chen et al. 2020). Returns (loss, top-1 accuracy of
    picking the positive among the 2B-1 candidates)."""
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    loss = F.cross_entropy(sim, targets)
    acc = (sim.argmax(1) == targets).float().mean()
    return loss, acc


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor | None, temperature: float):
    """InfoNCE with one positive key per query and a queue of negatives (MoCo, He et al. 2020)."""
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.float(), dim=1)
    pos = (q * k).sum(1, keepdim=True)
    if queue is not None and queue.numel():
        neg = q @ queue.t()
    else:  # in-batch negatives
        neg = q @ k.t()
        neg.fill_diagonal_(float("-inf"))
    logits = torch.cat([pos, neg], dim=1) / temperature
    targets = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, targets), (logits.argmax(1) == 0).float().mean()


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z) with z a detached target (BYOL, Grill et al. 2020)."""
    return 2 - 2 * F.cosine_similarity(p.float(), z.detach().float(), dim=-1).mean()
