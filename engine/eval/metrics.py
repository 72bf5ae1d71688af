from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def collapse_std(features: torch.Tensor) -> float:
    """Std of L2-normalised embeddings across the batch, times sqrt(D) (Chen & He, SimSiam).

    About 1 for healthy features spread over the sphere, near 0 when they collapse to a point.
    """
    z = F.normalize(features.float(), dim=1)
    return float(z.std(0).mean() * math.sqrt(z.shape[1]))


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    idx = target.long() * num_classes + pred.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_accuracy(conf: torch.Tensor) -> list[float]:
    totals = conf.sum(1).clamp(min=1)
    return (conf.diag().float() / totals.float()).tolist()
