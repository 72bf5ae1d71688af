"""Losses shared by methods (each in a few lines, with the paper it comes from).

A loss that couples the samples of a batch (negatives from other images, a cross-correlation, a
variance over the batch) is registered with :func:`coupled`: it takes the processes its batch spans
as a keyword-only ``group`` with no default, so a call that forgets it fails at once. Methods reach
these losses through ``self.losses`` (a :class:`CoupledLosses` that the method's ``set_group`` binds
to its group): ``self.losses.nt_xent(z1, z2, temperature)``. Under several processes each then sees
the global batch; on one process (or with the config's ``gather`` off) the group is this process.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import torch
import torch.nn.functional as F

from engine.dist import Group

# name -> loss: the losses that couple the samples of a batch (every one takes ``group=``)
COUPLED: dict[str, Callable] = {}


def coupled(fn: Callable) -> Callable:
    """Register ``fn`` as a loss that couples samples. It must take ``group`` as a keyword-only argument
    without default (the processes whose rows it gathers)."""
    param = inspect.signature(fn).parameters.get("group")
    if param is None or param.kind is not param.KEYWORD_ONLY or param.default is not param.empty:
        raise TypeError(f"{fn.__name__} couples samples: it must take group as a keyword-only argument "
                        "without default (def loss(..., *, group))")
    COUPLED[fn.__name__] = fn
    return fn


class CoupledLosses:
    """The coupled losses bound to ``group``: ``losses.nt_xent(z1, z2, t)`` is ``nt_xent(z1, z2, t, group=group)``.
    A method's ``self.losses`` is one of these; ``set_group`` binds a new one."""

    def __init__(self, group: Group):
        self.group = group
        for name, fn in COUPLED.items():
            setattr(self, name, functools.partial(fn, group=group))

    def __getattr__(self, name: str):  # only for names that are not bound: say which are
        raise AttributeError(f"{name!r} is not a loss that couples samples; those are: {', '.join(COUPLED)} "
                             "(a per-sample loss is called directly from engine.methods.losses)")


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


@torch.no_grad()
def pair_cosines(a: torch.Tensor, b: torch.Tensor) -> dict:
    """How alike two views' outputs are (a method's metrics, not a loss): ``pos_cos`` the mean cosine of an
    image's two views, ``neg_cos`` that of different images (each row against the next one's view). When
    both come near 1 the outputs collapsed (:mod:`engine.eval.collapse` watches them)."""
    a, b = F.normalize(a.detach().float(), dim=1), F.normalize(b.detach().float(), dim=1)
    return {"pos_cos": (a * b).sum(1).mean(), "neg_cos": (a * b.roll(1, dims=0)).sum(1).mean()}


@coupled
@full_precision
def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2, *,
            group: Group) -> tuple[torch.Tensor, torch.Tensor]:
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


@coupled
@full_precision
def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor | None, temperature: float, *, group: Group):
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


@coupled
@full_precision
def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.0051, *,
                      group: Group) -> tuple[torch.Tensor, dict]:
    """Drive the cross-correlation matrix of the two views' standardised embeddings to the
    identity (Barlow Twins, Zbontar et al. 2021): invariance on the diagonal, redundancy
    reduction off it. Returns (loss, parts). Over a ``group`` of processes it is computed on the
    gathered global batch: every process computes the same global loss (lightly #1977)."""
    z1, z2 = group.cat(z1), group.cat(z2)
    b = z1.shape[0]
    z1, z2 = z1.float(), z2.float()
    z1 = (z1 - z1.mean(0)) / z1.std(0).clamp(min=1e-5)
    z2 = (z2 - z2.mean(0)) / z2.std(0).clamp(min=1e-5)
    c = z1.t() @ z2 / b
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = _off_diagonal(c).pow(2).sum()
    return on + lambd * off, {"on_diag": on.detach(), "off_diag": off.detach()}


@coupled
@full_precision
def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0, *, group: Group) -> tuple[torch.Tensor, dict]:
    """Variance-Invariance-Covariance regularisation (VICReg, Bardes et al. 2022): MSE between the
    views, a hinge keeping every dimension's std above 1, and decorrelated dimensions. Over a
    ``group`` of processes on the gathered global batch (every process computes the same loss)."""
    z1, z2 = group.cat(z1).float(), group.cat(z2).float()
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


# -- coupled losses computed in the step's precision (as their methods always did) --------------------
@coupled
def predictive_nce(preds: list[torch.Tensor], z: torch.Tensor, targets: list[torch.Tensor], temperature: float, *,
                   group: Group) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE of predicted features against every feature of the global batch (CPC, van den Oord et al.
    2018): ``preds[k]`` ``(N_k, D)`` is to pick the row ``targets[k]`` (indices into this process's ``z``)
    among all rows of ``z`` gathered over ``group``. Returns (the mean loss over the predictions, the mean
    top-1 accuracy)."""
    keys = group.cat(F.normalize(z.float(), dim=1))
    off = group.offset(z.shape[0])
    losses, accs = [], []
    for pred, target in zip(preds, targets):
        logits = F.normalize(pred.float(), dim=1) @ keys.t() / temperature
        target = target + off
        losses.append(F.cross_entropy(logits, target))
        accs.append((logits.argmax(1) == target).float().mean())
    return torch.stack(losses).mean(), torch.stack(accs).mean()


def surrogate_logits(z: torch.Tensor, temperature: float, group: Group) -> torch.Tensor:
    """Cosine logits ``(K, B, B * world)`` of every copy ``z[k, i]`` of this process against the class
    prototypes of the global batch: the mean normalised embedding of each image's copies, leaving the copy
    itself out of its own class (Exemplar CNN)."""
    k, b, _ = z.shape
    z = F.normalize(z.float(), dim=-1)
    total = z.sum(0)  # (B, D)
    protos = group.cat(F.normalize(total, dim=-1))
    logits = torch.einsum("kbd,cd->kbc", z, protos)
    own = F.normalize(total.unsqueeze(0) - z, dim=-1)  # the other copies of the same image
    diag = (z * own).sum(-1)  # (K, B)
    logits = torch.where(own_columns(b, protos.shape[0], group, z.device).unsqueeze(0),
                         diag.unsqueeze(-1).expand_as(logits), logits)
    return logits / temperature


def own_columns(rows: int, columns: int, group: Group, device) -> torch.Tensor:
    """``(rows, columns)`` bool: row i of this process against column i of the gathered batch (its own)."""
    cols = torch.arange(columns, device=device)
    return cols.unsqueeze(0) == (torch.arange(rows, device=device) + group.offset(rows)).unsqueeze(1)


@coupled
def surrogate_loss(z: torch.Tensor, temperature: float, *, group: Group) -> tuple[torch.Tensor, torch.Tensor]:
    """Exemplar CNN's classification of every copy ``z[k, i]`` ``(K, B, D)`` among the surrogate classes (the
    images) of the global batch (Dosovitskiy et al. 2014). Returns (loss, top-1 accuracy)."""
    k, b = z.shape[:2]
    flat = surrogate_logits(z, temperature, group).reshape(k * b, -1)
    target = (torch.arange(b, device=z.device) + group.offset(b)).repeat(k)
    return F.cross_entropy(flat, target), (flat.argmax(1) == target).float().mean()


@coupled
def triplet_loss(zq: torch.Tensor, zt: torch.Tensor, margin: float, hardest: bool = True, *,
                 group: Group) -> tuple[torch.Tensor, dict]:
    """Triplet loss on cosine distances (Wang and Gupta 2015): every query ``zq[i]`` (L2-normalised) is
    nearer its tracked patch ``zt[i]`` than a negative by ``margin``: the most similar tracked patch of
    another clip of the global batch (``hardest``), else the previous clip's. Returns (loss, parts)."""
    keys = group.cat(zt)
    b = zq.shape[0]
    sim = zq @ keys.t()  # (B, B * world): query i against every clip's tracked patch
    rows = torch.arange(b, device=sim.device)
    own = own_columns(b, keys.shape[0], group, sim.device)
    pos = sim.diagonal() if group.world <= 1 else sim[rows, rows + group.offset(b)]
    hard = sim.masked_fill(own, -2.0).max(1).values
    if hardest == "all":  # every other clip at once: a softmax over the batch (InfoNCE, temperature 0.1)
        loss = F.cross_entropy(sim / 0.1, rows + group.offset(b) if group.world > 1 else rows)
        neg = sim.masked_fill(own, float("nan")).nanmean(1)
    else:
        neg = hard if hardest else sim[rows, (rows + group.offset(b) - 1) % keys.shape[0]]
        loss = F.relu((1 - pos) - (1 - neg) + margin).mean()
    return loss, {"pretext_acc": (hard < pos).float().mean(), "pos_cos": pos.mean().detach(),
                  "neg_cos": neg.mean().detach()}
