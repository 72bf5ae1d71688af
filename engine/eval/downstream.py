"""Label efficiency: how well an encoder does downstream with 1, 2, 5, ... labels per class.

Given encoders (a run's, a random-init one, a supervised one), a labelled training set, a test set
(the same dataset or another one: transfer) and label budgets, every (encoder, mode, budget) point
is fitted once per seed on a class-balanced subset drawn from that seed and scored on the test set:

- ``linear``: L2-regularised logistic regression (full-batch L-BFGS) on frozen features;
- ``finetune``: the whole encoder plus a linear head trained on the subset (random crops and flips,
  the backbone at a lower learning rate), capped by steps and optionally by minutes
  (:mod:`engine.eval.finetune`). Fine-tuning a random-init encoder is training from scratch;
- ``knn``: weighted kNN with the subset as the memory bank.

Frozen features are extracted once per encoder and dataset (:class:`FeatureCache`, a view of the feature
store an analysis process shares between its ops). A caller gets
``progress(done, total, text)`` calls, ``on_fit(FitResult)`` as each fit finishes and
``on_point(PointResult)`` as each point has all its seeds; ``cancel`` (anything with ``is_set()``)
stops at the next fit or training step with :class:`DownstreamCancelled`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.data.base import Cancelled, DataError
from engine.eval.finetune import FinetuneConfig, finetune_fit

MODES = ("linear", "finetune", "knn")
ALL = "all"
DEFAULT_BUDGETS = (1, 2, 5, 10, 25, 100, ALL)

ProgressFn = Callable[[int, int, str], None]


class DownstreamCancelled(Cancelled):
    """The user cancelled a downstream evaluation (a :class:`engine.data.Cancelled`)."""


# -- arguments ----------------------------------------------------------------------------------------
def parse_budgets(text: str) -> list:
    """``"1,5,10,all"`` -> ``[1, 5, 10, "all"]`` (sorted, unique). Raises ValueError with a usable message."""
    out: list = []
    for part in str(text).split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part == ALL:
            value = ALL
        else:
            try:
                value = int(part)
            except ValueError:
                raise ValueError(f"labels per class must be whole numbers or 'all', got {part!r}") from None
            if value < 1:
                raise ValueError(f"labels per class must be at least 1, got {value}")
        if value not in out:
            out.append(value)
    if not out:
        raise ValueError("no label budget given; use e.g. 1,5,10,all")
    return sorted(out, key=lambda v: float("inf") if v == ALL else v)


def parse_modes(text: str) -> list[str]:
    modes = [m.strip().lower() for m in str(text).split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"unknown mode {bad[0] if bad else text!r}; choose from {', '.join(MODES)}")
    return list(dict.fromkeys(modes))


# -- subsets ----------------------------------------------------------------------------------------------
def class_counts(labels, num_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)


def max_balanced_budget(labels, num_classes: int) -> int:
    """The largest labels-per-class budget every class can fill (the smallest class's size)."""
    counts = class_counts(labels, num_classes)
    counts = counts[counts > 0]
    return int(counts.min()) if len(counts) else 0


def balanced_subset(labels, per_class, seed: int) -> np.ndarray:
    """Sorted indices of ``per_class`` images of every class present, deterministic from ``seed``.

    Each class's images are shuffled once by ``seed`` and the first ``per_class`` taken, so the
    subsets of one seed are nested (the 5-label subset holds the 1-label one). A class with fewer
    images gives all it has. ``per_class="all"`` (or None) gives every index.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if per_class in (ALL, None):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        out.append(members[rng.permutation(len(members))[:int(per_class)]])
    return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)


# -- configuration and results --------------------------------------------------------------------------
@dataclass
class LinearConfig:
    # L2 on the weights of standardised features: the penalty is l2 / sqrt(n) * |W|^2 / 2 next to the
    # mean cross-entropy of n labelled images (weaker as labels grow; matched on cifar10-small, 1 to 1000
    # labels per class)
    l2: float = 0.6
    max_iter: int = 100  # L-BFGS iterations (full batch)


@dataclass
class DownstreamConfig:
    labels_per_class: list = field(default_factory=lambda: list(DEFAULT_BUDGETS))
    modes: list = field(default_factory=lambda: list(MODES))
    seeds: int = 3
    seed: int = 0  # the first seed; the fits use seed, seed + 1, ...
    k: int = 20
    temperature: float = 0.07
    linear: LinearConfig = field(default_factory=LinearConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    device: str = "cpu"
    feature_batch_size: int = 512

    def check(self) -> None:
        if self.seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {self.seeds}")
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        parse_modes(",".join(self.modes))
        parse_budgets(",".join(str(b) for b in self.labels_per_class))
        self.finetune.check()


@dataclass
class EncoderSource:
    """An encoder to evaluate. ``build(seed)`` returns a fresh module each call (fine-tuning trains
    that copy; the source is never changed). ``pretrained`` False marks a random init: fine-tuning it
    is training from scratch, with the backbone at the head's learning rate. The frozen modes use
    ``build(base seed)`` once, so their features are cached once per encoder and dataset."""

    name: str
    build: Callable[[int], nn.Module]
    pretrained: bool = True
    key: str = ""  # the feature-cache key (default: the name)

    def __post_init__(self):
        self.key = self.key or self.name

    @classmethod
    def from_module(cls, name: str, module: nn.Module, pretrained: bool = True, key: str = "") -> EncoderSource:
        frozen = copy.deepcopy(module).cpu().eval()
        return cls(name, lambda seed: copy.deepcopy(frozen), pretrained, key)

    @classmethod
    def random_init(cls, backbone: str, image_size: int, name: str = "random_init") -> EncoderSource:
        from engine.models import build_backbone

        def build(seed: int) -> nn.Module:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return build_backbone(backbone, image_size)

        return cls(name, build, pretrained=False, key=f"random_init:{backbone}:{image_size}")


@dataclass
class FitResult:
    """One fit: one encoder, mode, budget and seed, scored on the test set."""

    encoder: str
    mode: str
    labels_per_class: object  # int, or "all"
    seed: int
    top1: float
    num_labels: int  # labelled images the fit used
    seconds: float
    steps: int = 0  # optimiser steps (finetune)
    weight_change: float = 0.0  # relative L2 change of the encoder's weights (0 for frozen modes)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PointResult:
    """One point of a curve: the mean and standard deviation over seeds (sample std, 0 for one seed)."""

    encoder: str
    mode: str
    labels_per_class: object  # int, or "all"
    top1_mean: float
    top1_std: float
    seeds: int
    top1: list
    num_labels: int
    requested: object = None  # the budget asked for when it was more than every class has

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["requested"] is None:
            d.pop("requested")
        return d


@dataclass
class DownstreamResult:
    points: list
    fits: list
    notes: list
    seconds: float
    num_classes: int
    num_train: int
    num_test: int

    def to_dict(self) -> dict:
        return {"results": [p.to_dict() for p in self.points], "fits": [f.to_dict() for f in self.fits],
                "notes": list(self.notes), "seconds": round(self.seconds, 2), "num_classes": self.num_classes,
                "num_train": self.num_train, "num_test": self.num_test}


# -- features ------------------------------------------------------------------------------------------------
def dataset_key(data) -> str:
    return f"{data.source}|{data.name}|{len(data)}|{data.image_size}"


class FeatureCache:
    """Frozen features per (encoder, dataset), computed once: a view of a
    :class:`engine.eval.features.FeatureStore` (an analysis process passes its own, shared by every op; a
    store of its own otherwise). A random-init encoder is named with its seed. ``amp_dtype``: the
    precision the features are extracted in (None: float32). ``hits`` / ``misses`` count the requests
    served without / with extraction.
    """

    def __init__(self, store=None, amp_dtype=None):
        from engine.eval.features import FeatureStore

        self.store = store if store is not None else FeatureStore()
        self.amp_dtype = amp_dtype
        self.hits = 0
        self.misses = 0
        self.keys: set = set()

    @staticmethod
    def encoder_key(source: EncoderSource, seed: int = 0) -> str:
        return source.key if source.pretrained else f"{source.key}:seed{seed}"

    def has(self, source: EncoderSource, data, seed: int = 0) -> bool:
        return self.store.has(self.encoder_key(source, seed), data, None, self.amp_dtype)

    def get(self, source: EncoderSource, encoder: nn.Module | None, data, device="cpu", seed: int = 0,
            batch_size: int = 512, cancel=None, progress=None) -> torch.Tensor:
        key = self.encoder_key(source, seed)
        if self.has(source, data, seed):
            self.hits += 1
        else:
            self.misses += 1
        self.keys.add((key, dataset_key(data)))
        build = encoder if encoder is not None else (lambda: source.build(seed))
        try:
            feats = self.store.features(key, build, data, None, device=device, amp_dtype=self.amp_dtype,
                                        batch_size=batch_size, cancel=cancel, progress=progress)
        except Cancelled as exc:
            raise DownstreamCancelled(str(exc)) from None
        return torch.from_numpy(feats)

    def __len__(self) -> int:
        return len(self.keys)

    def clear(self) -> None:
        for key, _ in self.keys:
            self.store.drop(key)
        self.keys.clear()


# -- the fits ------------------------------------------------------------------------------------------------
def feature_stats(pool: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the whole (unlabelled) training pool: the standardisation every linear fit uses,
    so a 10-image fit does not standardise with 10 images' statistics."""
    pool = pool.float()
    return pool.mean(0, keepdim=True), pool.std(0, keepdim=True).clamp(min=1e-6)


def linear_fit(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, test_y: torch.Tensor,
               num_classes: int, cfg: LinearConfig | None = None, stats=None,
               return_logits: bool = False):
    """Logistic regression on frozen features by full-batch L-BFGS from zero; test top-1.

    Deterministic: the same features give the same weights. ``stats`` (mean, std) standardise the
    features (default: the training features' own).
    """
    cfg = cfg or LinearConfig()
    mean, std = stats if stats is not None else feature_stats(train_f)
    x = (train_f.float() - mean) / std
    xt = (test_f.float() - mean) / std
    y = train_y.long()
    lam = cfg.l2 / max(1.0, float(len(y))) ** 0.5
    w = torch.zeros(num_classes, x.shape[1], requires_grad=True)
    b = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=cfg.max_iter, history_size=10,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-7, tolerance_change=1e-10)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.t() + b, y) + 0.5 * lam * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        logits = xt @ w.t() + b
    top1 = float((logits.argmax(1) == test_y.long()).float().mean())
    return (top1, logits) if return_logits else top1


def knn_fit(train_f, train_y, test_f, test_y, num_classes: int, k: int = 20, temperature: float = 0.07) -> float:
    from engine.eval.knn import knn_predict

    scores = knn_predict(train_f, train_y.long(), test_f, num_classes, min(k, len(train_f)), temperature)
    return float((scores.argmax(1) == test_y.long()).float().mean())


# -- the whole curve ----------------------------------------------------------------------------------------
def _resolve_budgets(budgets, labels, num_classes) -> tuple[list, list]:
    """[(budget to use, budget requested or None)] with budgets over the smallest class capped; notes."""
    largest = max_balanced_budget(labels, num_classes)
    out, notes, seen = [], [], set()
    for b in budgets:
        if b == ALL:
            use, req = ALL, None
        elif int(b) > largest:
            use, req = largest, int(b)
            notes.append(f"{b} labels per class is more than the smallest class has ({largest}); "
                         f"{largest} per class is used instead")
        else:
            use, req = int(b), None
        if use in seen:
            notes.append(f"{b} labels per class is the same subset as {use}; it is reported once")
            continue
        seen.add(use)
        out.append((use, req))
    return out, notes


def check_datasets(train, test) -> None:
    """Raise DataError (a one-line message) when the two sets cannot be used together."""
    from engine.data import why_unlabelled

    if not train.labelled:
        raise DataError(f"the training set {train.source} {why_unlabelled(train)}; downstream evaluation needs a "
                        "labelled training set")
    if not test.labelled:
        raise DataError(f"the test set {test.source} {why_unlabelled(test)}, so nothing can be scored; use a "
                        "labelled test set")
    if list(train.class_names) != list(test.class_names):
        raise DataError(f"the training set has classes {', '.join(train.class_names[:5])} ... and the test set "
                        f"{', '.join(test.class_names[:5])} ...; use two splits of one labelled dataset")


def run_downstream(encoders: list[EncoderSource], train, test, cfg: DownstreamConfig | None = None,
                   progress: ProgressFn | None = None, on_fit: Callable[[FitResult], None] | None = None,
                   on_point: Callable[[PointResult], None] | None = None, cancel=None,
                   cache: FeatureCache | None = None,
                   on_note: Callable[[str], None] | None = None) -> DownstreamResult:
    """Every (encoder, mode, budget) point over ``cfg.seeds`` seeds; see the module docstring.
    ``on_note`` hears each note (a budget capped to the smallest class, a test set that is the training
    set) as soon as it is known, before the work starts; they are in the result's ``notes`` too.

    Order: features of every encoder (cached), then the frozen modes (fast: whole curves come in a
    few seconds), then the fine-tuning fits, budget by budget. Raises DataError for unusable data,
    ValueError for a bad config, DownstreamCancelled when ``cancel`` is set.
    """
    cfg = cfg or DownstreamConfig()
    cfg.check()
    check_datasets(train, test)
    cache = cache if cache is not None else FeatureCache()
    t0 = time.monotonic()
    c = train.num_classes
    ytr = train.labels.cpu()
    yte = test.labels.cpu()
    budgets, notes = _resolve_budgets(cfg.labels_per_class, ytr.numpy(), c)
    if dataset_key(train) == dataset_key(test):
        notes.append("the test set is the training set: the scores say how well the labels are fitted, not how "
                     "well the encoder generalises; score on other images of the same classes")
    for note in notes if on_note is not None else ():
        on_note(note)
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    frozen = [m for m in cfg.modes if m != "finetune"]
    fits_total = len(encoders) * len(budgets) * len(seeds) * len(cfg.modes)
    total = fits_total  # progress counts fits: what the result says it was made of
    done = 0
    fits: list[FitResult] = []
    points: list[PointResult] = []
    pending: dict = {}

    def check():
        if cancel is not None and cancel.is_set():
            raise DownstreamCancelled("the downstream evaluation was cancelled")

    def tick(text, fit: bool = True):
        nonlocal done
        done += int(fit)
        if progress is not None:
            progress(done, total, text)

    def report(fit: FitResult, requested):
        fits.append(fit)
        if on_fit is not None:
            on_fit(fit)
        key = (fit.encoder, fit.mode, fit.labels_per_class)
        pending.setdefault(key, []).append(fit)
        if len(pending[key]) == len(seeds):
            acc = np.array([f.top1 for f in pending[key]], dtype=np.float64)
            pt = PointResult(fit.encoder, fit.mode, fit.labels_per_class, float(acc.mean()),
                             float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, len(acc), acc.round(4).tolist(),
                             fit.num_labels, requested)
            points.append(pt)
            if on_point is not None:
                on_point(pt)

    subsets = {(b, s): balanced_subset(ytr.numpy(), b, s) for b, _ in budgets for s in seeds}
    if frozen:
        feats = {}
        for src in encoders:
            check()
            built: list = []

            def build(src=src, built=built):  # built once, only when some features are missing
                if not built:
                    built.append(src.build(cfg.seed))
                return built[0]

            for role, data in (("train", train), ("test", test)):
                feats[src.name, role] = cache.get(src, None if cache.has(src, data, cfg.seed) else build(), data,
                                                  cfg.device, cfg.seed, cfg.feature_batch_size, cancel)
                tick(f"features of {src.name} on the {role} set", fit=False)
            stats = feature_stats(feats[src.name, "train"])
            for mode in frozen:
                for b, req in budgets:
                    for s in seeds:
                        check()
                        idx = torch.as_tensor(subsets[b, s])
                        t = time.monotonic()
                        ftr, fte = feats[src.name, "train"][idx], feats[src.name, "test"]
                        if mode == "linear":
                            top1 = linear_fit(ftr, ytr[idx], fte, yte, c, cfg.linear, stats)
                        else:
                            top1 = knn_fit(ftr, ytr[idx], fte, yte, c, cfg.k, cfg.temperature)
                        report(FitResult(src.name, mode, b, s, top1, len(idx), time.monotonic() - t), req)
                        tick(f"{mode} {src.name} {b} labels per class, seed {s}: top-1 {top1:.3f}")
    if "finetune" in cfg.modes:
        for b, req in budgets:
            for src in encoders:
                for s in seeds:
                    check()
                    idx = subsets[b, s]
                    enc = src.build(s)
                    before = torch.cat([p.detach().flatten().clone() for p in enc.parameters()])
                    t = time.monotonic()
                    try:
                        top1, steps = finetune_fit(enc, train, idx, test, c, cfg.finetune, seed=s,
                                                   pretrained=src.pretrained, device=cfg.device, cancel=cancel)
                    except Cancelled as exc:
                        raise DownstreamCancelled(str(exc)) from None
                    after = torch.cat([p.detach().flatten().cpu() for p in enc.parameters()])
                    change = float((after - before).norm() / before.norm().clamp(min=1e-12))
                    report(FitResult(src.name, "finetune", b, s, top1, len(idx), time.monotonic() - t, steps,
                                     change), req)
                    tick(f"finetune {src.name} {b} labels per class, seed {s}: top-1 {top1:.3f}")
    order = {(e.name, m, b): i for i, (e, m, b) in enumerate(
        (e, m, b) for e in encoders for m in cfg.modes for b, _ in budgets)}
    points.sort(key=lambda p: order.get((p.encoder, p.mode, p.labels_per_class), 0))
    return DownstreamResult(points, fits, notes, time.monotonic() - t0, c, len(train), len(test))


def results_table(points: list[PointResult]) -> str:
    """A plain-text table: one row per encoder and mode, one column per budget (mean ± std)."""
    budgets: list = []
    for p in points:
        if p.labels_per_class not in budgets:
            budgets.append(p.labels_per_class)
    budgets.sort(key=lambda v: float("inf") if v == ALL else v)
    rows: dict = {}
    for p in points:
        rows.setdefault((p.encoder, p.mode), {})[p.labels_per_class] = p
    head = f"{'encoder':22s} {'mode':9s}" + "".join(f"{str(b):>13s}" for b in budgets)
    lines = [head]
    for (enc, mode), cells in rows.items():
        line = f"{enc[:22]:22s} {mode:9s}"
        for b in budgets:
            p = cells.get(b)
            line += f"{p.top1_mean:8.3f}±{p.top1_std:.2f}" if p else f"{'-':>13s}"
        lines.append(line)
    return "\n".join(lines)
