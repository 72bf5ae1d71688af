"""Invariance and semantics side by side: how close an image's embedding stays to its transformed
versions (crop, flip, colour jitter, grayscale, blur, rotation by 90 degrees, solarize), next to how
close two different images of one class are, and two images of different classes.

An encoder that learned invariances scores near 1 on the transformations it was trained to ignore;
one that learned semantics puts same-class pairs closer than different-class pairs. A random-init
encoder is the reference: its embeddings are already close for small pixel changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.augment import AugmentConfig, augment
from engine.data.base import Cancelled

TRANSFORMS = ("crop", "flip", "color_jitter", "grayscale", "blur", "rotate90", "solarize")
PAIRS = ("same_class", "different_class")

_OFF = {"crop": False, "flip_p": 0.0, "jitter_p": 0.0, "gray_p": 0.0, "blur_p": 0.0, "solarize_p": 0.0}
_ON = {
    "crop": {"crop": True, "crop_scale_min": 0.2},
    "flip": {"flip_p": 1.0},
    "color_jitter": {"jitter_p": 1.0},
    "grayscale": {"gray_p": 1.0},
    "blur": {"blur_p": 1.0, "blur_sigma_min": 0.5, "blur_sigma_max": 1.5},
    "solarize": {"solarize_p": 1.0},
}


class InvarianceCancelled(Cancelled):
    pass


def transform(x: torch.Tensor, name: str, g: torch.Generator | None = None) -> torch.Tensor:
    """``x`` (float in [0, 1], (B, 3, H, W)) with one named transformation applied to every image."""
    if name == "rotate90":
        return torch.rot90(x, 1, dims=(2, 3)).contiguous()
    if name not in _ON:
        raise ValueError(f"unknown transformation {name!r}; choose from {', '.join(TRANSFORMS)}")
    return augment(x, AugmentConfig(**{**_OFF, **_ON[name]}), g)


@torch.no_grad()
def features(encoder: nn.Module, x: torch.Tensor, batch_size: int = 256, amp_dtype=None) -> torch.Tensor:
    """Raw features of float images, BatchNorm in eval mode (under ``amp_dtype`` autocast when given)."""
    import contextlib

    was = encoder.training
    encoder.eval()
    dev = next(encoder.parameters()).device
    amp = torch.autocast(dev.type, dtype=amp_dtype) if amp_dtype not in (None, torch.float32) \
        else contextlib.nullcontext()
    try:
        with amp:
            return torch.cat([encoder(x[s:s + batch_size].to(dev)).float().cpu()
                              for s in range(0, len(x), batch_size)])
    finally:
        encoder.train(was)


def embed(encoder: nn.Module, x: torch.Tensor, center: torch.Tensor | None = None, amp_dtype=None) -> torch.Tensor:
    """Features minus ``center`` (when given), L2-normalised."""
    f = features(encoder, x, amp_dtype=amp_dtype)
    return F.normalize(f - center if center is not None else f, dim=1)


@dataclass
class InvarianceRow:
    encoder: str
    kind: str  # "transform" or "pair"
    name: str  # a TRANSFORMS or PAIRS name
    mean: float  # mean cosine similarity
    std: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def _pairs(labels: np.ndarray, rng: np.random.Generator, same: bool) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i != j, one per image that has a partner: same class or different class."""
    a, b = [], []
    for i, c in enumerate(labels):
        pool = np.flatnonzero((labels == c) if same else (labels != c))
        pool = pool[pool != i]
        if len(pool):
            a.append(i)
            b.append(int(rng.choice(pool)))
    return np.asarray(a, np.int64), np.asarray(b, np.int64)


def invariance(encoders: list[tuple[str, nn.Module]], data, num_images: int = 256, seed: int = 0,
               transforms=TRANSFORMS, device="cpu", progress: Callable[[int, int, str], None] | None = None,
               on_row: Callable[[InvarianceRow], None] | None = None, cancel=None, amp_dtype=None,
               originals: Callable[[str, nn.Module, np.ndarray], torch.Tensor] | None = None) -> dict:
    """Cosine similarity of each sampled image's embedding with its transformed version, per
    transformation and encoder, and of pairs of different images of one class / of different classes.

    Embeddings are centred first (the mean embedding of the sampled originals subtracted, per
    encoder): raw ReLU features of any two images point in nearly the same direction (cosine ~0.95
    for a random init), which would read as "invariant" to everything; centred, unrelated images
    score near 0 and 1 means "the same as the original".

    The same images, transformations and pairs (all drawn from ``seed``) serve every encoder.
    Returns ``{"rows": [InvarianceRow.to_dict()...], "num_images": n, "notes": [...]}``;
    ``on_row`` gets each row as it is computed. ``amp_dtype``: the forward passes under autocast (the
    training precision); ``originals(name, encoder, indices)``: the raw features of the untransformed
    images from a feature store (computed here when None).
    """
    bad = [t for t in transforms if t not in TRANSFORMS]
    if bad:
        raise ValueError(f"unknown transformation {bad[0]!r}; choose from {', '.join(TRANSFORMS)}")
    rng = np.random.default_rng(seed)
    n = min(int(num_images), len(data))
    if n < 2:
        raise ValueError("the invariance view needs at least 2 images")
    idx = np.sort(rng.choice(len(data), n, replace=False))
    x = data.get(idx).cpu().float().div_(255)
    views = {}
    for t in transforms:  # drawn once, shared by every encoder
        g = torch.Generator().manual_seed(seed * 1000 + TRANSFORMS.index(t))
        views[t] = transform(x, t, g)
    notes, pairs = [], {}
    labels = data.get_labels(idx)
    if labels is None or not data.labelled:
        notes.append("the data has no labels, so same-class and different-class pairs are left out")
    else:
        lab = labels.cpu().numpy()
        for kind in PAIRS:
            pairs[kind] = _pairs(lab, rng, kind == "same_class")
    rows: list[InvarianceRow] = []
    total = len(encoders) * (len(transforms) + len(pairs))
    done = 0

    def add(row):
        nonlocal done
        rows.append(row)
        done += 1
        if on_row is not None:
            on_row(row)
        if progress is not None:
            progress(done, total, f"{row.encoder}: {row.name} {row.mean:.3f}")

    for name, enc in encoders:
        enc = enc.to(device)
        if cancel is not None and cancel.is_set():
            raise InvarianceCancelled("the invariance view was cancelled")
        raw = originals(name, enc, idx) if originals is not None else features(enc, x, amp_dtype=amp_dtype)
        center = raw.mean(0, keepdim=True)  # this encoder's mean direction, shared by every image
        base = F.normalize(raw - center, dim=1)
        for t in transforms:
            if cancel is not None and cancel.is_set():
                raise InvarianceCancelled("the invariance view was cancelled")
            sim = (base * embed(enc, views[t], center, amp_dtype)).sum(1)
            add(InvarianceRow(name, "transform", t, float(sim.mean()), float(sim.std()), len(sim)))
        for kind, (a, b) in pairs.items():
            if len(a) == 0:
                notes.append(f"no {kind.replace('_', '-')} pairs among the sampled images")
                continue
            sim = (base[a] * base[b]).sum(1)
            add(InvarianceRow(name, "pair", kind, float(sim.mean()), float(sim.std()), len(sim)))
    return {"rows": [r.to_dict() for r in rows], "num_images": n, "notes": list(dict.fromkeys(notes))}


def invariance_table(rows: list[dict]) -> str:
    encs = list(dict.fromkeys(r["encoder"] for r in rows))
    names = list(dict.fromkeys(r["name"] for r in rows))
    cell = {(r["encoder"], r["name"]): r for r in rows}
    lines = [f"{'cosine similarity':18s}" + "".join(f"{e[:16]:>18s}" for e in encs)]
    for nm in names:
        line = f"{nm:18s}"
        for e in encs:
            r = cell.get((e, nm))
            line += f"{r['mean']:11.3f}±{r['std']:.3f}" if r else f"{'-':>18s}"
        lines.append(line)
    return "\n".join(lines)
