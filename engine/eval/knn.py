"""Weighted kNN on L2-normalised features (Wu et al. 2018, the InstDisc protocol)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, num_classes: int,
                k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> torch.Tensor:
    """Class scores ``(N_test, C)``: each of the k most cosine-similar training features votes
    for its class with weight exp(similarity / temperature)."""
    train_f = F.normalize(train_f.float(), dim=1)
    test_f = F.normalize(test_f.float(), dim=1)
    k = min(k, train_f.shape[0])
    scores = []
    for s in range(0, test_f.shape[0], chunk):
        sim = test_f[s:s + chunk] @ train_f.t()
        top, idx = sim.topk(k, dim=1)
        w = (top / temperature).exp()
        votes = torch.zeros(sim.shape[0], num_classes, device=sim.device)
        votes.scatter_add_(1, train_y[idx], w)
        scores.append(votes)
    return torch.cat(scores)


def knn_accuracy(train_f, train_y, test_f, test_y, num_classes: int, k: int = 20, temperature: float = 0.07,
                 return_predictions: bool = False):
    scores = knn_predict(train_f, train_y.long(), test_f, num_classes, k, temperature)
    pred = scores.argmax(1)
    top1 = (pred == test_y).float().mean().item()
    top5 = None
    if num_classes > 5:
        top5 = (scores.topk(5, dim=1).indices == test_y.view(-1, 1)).any(1).float().mean().item()
    if return_predictions:
        return top1, top5, pred
    return top1, top5


@torch.no_grad()
def knn_leave_one_out(f: torch.Tensor, y: torch.Tensor, num_classes: int, k: int = 20,
                      temperature: float = 0.07) -> tuple[float, float | None]:
    """Weighted kNN top-1 (and top-5 with more than 5 classes) of labelled features among themselves:
    each point is classified by the votes of its k nearest *other* points (no separate memory bank)."""
    f = F.normalize(f.float(), dim=1)
    y = y.long()
    n = f.shape[0]
    if n < 2:
        return 0.0, None
    sim = f @ f.t()
    sim.fill_diagonal_(-float("inf"))
    top, idx = sim.topk(min(k, n - 1), dim=1)
    votes = torch.zeros(n, num_classes, device=f.device)
    votes.scatter_add_(1, y[idx], (top / temperature).exp())
    top1 = (votes.argmax(1) == y).float().mean().item()
    top5 = None
    if num_classes > 5:
        top5 = (votes.topk(5, dim=1).indices == y.view(-1, 1)).any(1).float().mean().item()
    return top1, top5
