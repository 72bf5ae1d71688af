"""Linear probe: a linear classifier on frozen features (the seeds' standard readout)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def linear_probe(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, test_y: torch.Tensor,
                 num_classes: int, epochs: int = 100, lr: float = 0.05, weight_decay: float = 1e-4,
                 batch_size: int = 1024, seed: int = 0, return_predictions: bool = False, cancel=None):
    """Train a linear layer on standardised features with Adam; return test top-1 (and predictions).

    Features are standardised with the training set's statistics; the schedule is cosine. ``cancel``
    (anything with ``is_set()``) is looked at every epoch: set, it ends the probe with
    :class:`engine.data.base.Cancelled`.
    """
    g = torch.Generator().manual_seed(seed)
    train_f, test_f = train_f.float(), test_f.float()
    mean, std = train_f.mean(0, keepdim=True), train_f.std(0, keepdim=True).clamp(min=1e-6)
    xtr, xte = (train_f - mean) / std, (test_f - mean) / std
    ytr = train_y.long()
    with torch.random.fork_rng(devices=[]):  # the layer's initial weights come from ``seed`` too, not from
        torch.manual_seed(seed)  # whatever the caller's global generator holds: one probe, one number
        layer = torch.nn.Linear(xtr.shape[1], num_classes)
    opt = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    n = xtr.shape[0]
    steps = max(1, epochs * ((n + batch_size - 1) // batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        if cancel is not None and cancel.is_set():
            from engine.data.base import Cancelled

            raise Cancelled("the linear probe was cancelled")
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, batch_size):
            i = perm[s:s + batch_size]
            loss = F.cross_entropy(layer(xtr[i]), ytr[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        pred = layer(xte).argmax(1)
    top1 = (pred == test_y).float().mean().item()
    if return_predictions:
        return top1, pred
    return top1
