"""Losses shared by methods (each in a few lines, with the paper it comes from)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from engine.dist import LOCAL, Group


def _device_type(args) -> str:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device.type
        if isinstance(a, (list, tuple)) and a and isinstance(a[0], torch.Tensor):
            return a[0].device.type
    return "cpu"


def full_precision(fn):
    """Compute a loss in float32 even inside a bf16/fp16 autocast step: its matrix products (similarities,
    cross-correlations, covariances) sum over the batch, and low precision would blur them."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.autocast(_device_type(args), enabled=False):
            return fn(*args, **kwargs)
    return wrapper


@full_precision
def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2,
            group: Group = LOCAL) -> tuple[torch.Tensor, torch.Tensor]:
    """NT-Xent / InfoNCE over the batch (SimCLR, Chen et al. 2020). Returns (loss, top-1 accuracy of
    picking the positive among the 2B-1 candidates).

    Over a ``group`` of processes the candidates are the views of the global batch (gathered with
    gradients) and each process scores its own rows: the mean of the processes' losses is the loss
    of one process holding the global batch (lightly #1176: without gathering the labels are wrong)."""
    b = z1.shape[0]
    z1n, z2n = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
    z = torch.cat([z1n, z2n])
    big, off = b * group.world, group.offset(b)
    cand = torch.cat([group.cat(z1n), group.cat(z2n)]) if group.world > 1 else z
    sim = z @ cand.t() / temperature
    rows = torch.arange(2 * b, device=z.device)
    own = torch.cat([torch.arange(b), torch.arange(b) + big]).to(z.device) + off  # each row's own column
    sim[rows, own] = float("-inf")
    targets = torch.cat([torch.arange(b) + big, torch.arange(b)]).to(z.device) + off
    loss = F.cross_entropy(sim, targets)
    acc = (sim.argmax(1) == targets).float().mean()
    return loss, acc


@full_precision
def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor | None, temperature: float,
             group: Group = LOCAL):
    """InfoNCE with one positive key per query and a queue of negatives (MoCo, He et al. 2020).
    Without a queue the negatives are the other keys of the (global, over ``group``) batch."""
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.float(), dim=1)
    pos = (q * k).sum(1, keepdim=True)
    if queue is not None and queue.numel():
        neg = q @ queue.t()
    else:  # in-batch negatives
        keys = group.cat(k) if k.requires_grad else group.cat_nograd(k)
        neg = q @ keys.t()
        rows = torch.arange(q.shape[0], device=q.device)
        neg[rows, rows + group.offset(q.shape[0])] = float("-inf")
    logits = torch.cat([pos, neg], dim=1) / temperature
    targets = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, targets), (logits.argmax(1) == 0).float().mean()


@full_precision
def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z) with z a detached target (BYOL, Grill et al. 2020)."""
    return 2 - 2 * F.cosine_similarity(p.float(), z.detach().float(), dim=-1).mean()


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


@full_precision
def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.0051) -> tuple[torch.Tensor, dict]:
    """Drive the cross-correlation matrix of the two views' standardised embeddings to the
    identity (Barlow Twins, Zbontar et al. 2021): invariance on the diagonal, redundancy
    reduction off it. Returns (loss, parts). Over several processes pass the gathered global batch
    (``group.cat``): every process then computes the same global loss (lightly #1977)."""
    b = z1.shape[0]
    z1, z2 = z1.float(), z2.float()
    z1 = (z1 - z1.mean(0)) / z1.std(0).clamp(min=1e-5)
    z2 = (z2 - z2.mean(0)) / z2.std(0).clamp(min=1e-5)
    c = z1.t() @ z2 / b
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = _off_diagonal(c).pow(2).sum()
    return on + lambd * off, {"on_diag": on.detach(), "off_diag": off.detach()}


@full_precision
def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0) -> tuple[torch.Tensor, dict]:
    """Variance-Invariance-Covariance regularisation (VICReg, Bardes et al. 2022): MSE between the
    views, a hinge keeping every dimension's std above 1, and decorrelated dimensions."""
    z1, z2 = z1.float(), z2.float()
    b, d = z1.shape
    inv = F.mse_loss(z1, z2)
    z1 = z1 - z1.mean(0)
    z2 = z2 - z2.mean(0)
    std1 = torch.sqrt(z1.var(0) + 1e-4)
    std2 = torch.sqrt(z2.var(0) + 1e-4)
    var = (F.relu(1 - std1).mean() + F.relu(1 - std2).mean()) / 2
    cov1 = z1.t() @ z1 / (b - 1)
    cov2 = z2.t() @ z2 / (b - 1)
    cov = (_off_diagonal(cov1).pow(2).sum() + _off_diagonal(cov2).pow(2).sum()) / d
    loss = sim_coeff * inv + std_coeff * var + cov_coeff * cov
    return loss, {"invariance": inv.detach(), "variance": var.detach(), "covariance": cov.detach()}


@full_precision
def dino_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], center: torch.Tensor,
              student_temp: float = 0.1, teacher_temp: float = 0.04) -> torch.Tensor:
    """Cross-entropy between the centred, sharpened teacher distribution of each global view and
    the student's distribution of every other view (DINO, Caron et al. 2021)."""
    targets = [F.softmax((t.float() - center) / teacher_temp, dim=-1).detach() for t in teacher]
    logps = [F.log_softmax(s.float() / student_temp, dim=-1) for s in student]
    total, n = 0.0, 0
    for ti, t in enumerate(targets):
        for si, lp in enumerate(logps):
            if si == ti:  # a view is never its own target
                continue
            total = total + (-(t * lp).sum(-1)).mean()
            n += 1
    return total / max(1, n)
