"""Online evaluation and snapshots of a training run: the kNN monitor and collapse indicator, the final
kNN + linear probe, embedding snapshots (``embeddings/step_*.npz``) and reconstruction previews."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine import messages as M
from engine import seeds
from engine.eval import (
    collapse_std,
    extract_features,
    knn_accuracy,
    knn_leave_one_out,
)
from engine.eval.collapse import effective_rank

PAIR_IMAGES = 16  # the sample images whose two views each snapshot encodes (the attract/repel figure)


def _u8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class SnapshotClock:
    """When the time-based snapshots (embedding + kNN monitor) are due, in seconds of training and steps.

    Every ``every_s`` seconds of training, but never so often that snapshots cost training more than
    ``max_cost`` of its speed: after a snapshot that took ``cost`` seconds, the next one waits at least
    ``cost * (1 - max_cost) / max_cost`` seconds of training (9x the cost at 10%). And never less than
    ``min_steps`` steps after the last one: when steps are slow (a busy machine, a large model on a CPU)
    a snapshot every few steps would show nothing new and take the steps' time. The step-0 snapshot
    (``first``) carries one-off warm-up costs and does not space out the next one by its cost.
    """

    MIN_STEPS = 10

    def __init__(self, every_s: float, max_cost: float = 0.10, min_steps: int = MIN_STEPS):
        self.every_s = float(every_s)
        self.max_cost = float(max_cost)
        self.min_steps = int(min_steps)
        self.next_at: float | None = None  # None: the step-0 snapshot is due
        self.next_step = 0  # and not before this step
        self.spent_s = 0.0  # seconds spent on snapshots so far

    @property
    def on(self) -> bool:
        return self.every_s > 0

    def due(self, train_time: float, step: int | None = None) -> bool:
        if not self.on or (step is not None and step < self.next_step):
            return False
        return self.next_at is None or train_time >= self.next_at

    def done(self, train_time: float, cost_s: float, first: bool = False, step: int | None = None) -> float:
        """A snapshot at ``train_time`` (and ``step``) took ``cost_s`` seconds; returns when the next one
        is due (in seconds of training)."""
        self.spent_s += cost_s
        gap = self.every_s if first else max(self.every_s, cost_s * (1 - self.max_cost) / self.max_cost)
        self.next_at = train_time + gap
        if step is not None:
            self.next_step = step + self.min_steps
        return self.next_at


class Monitor:
    """Reads out the method being trained on the run's fixed samples (see :func:`prepare_data`)."""

    def __init__(self, cfg, rundata, device: torch.device, run_dir: Path | None = None):
        self.cfg = cfg
        self.rd = rundata
        self.device = device
        self.run_dir = run_dir
        self.last_knn: float | None = None
        self.random_init_knn: float | None = None  # the kNN of the untrained encoder (step-0 snapshot)

    def describe(self) -> dict:
        """What the online kNN monitor scores: the snapshots' leave-one-out kNN on their sample of the
        evaluation split (``snapshot_images``; none when the sample is not labelled) and, every
        ``knn_every_epochs``, a kNN of ``monitor_size`` evaluation images against a ``bank_size`` bank."""
        e, rd = self.cfg.eval, self.rd
        labelled = rd.embed_source is rd.eval_data and rd.eval_data is not None
        return {"snapshot_images": int(len(rd.embed_idx)) if labelled else 0, "k": int(e.knn_k),
                "epoch_test": int(min(e.monitor_size, len(rd.eval_data))) if rd.eval_data is not None else 0,
                "epoch_bank": int(min(e.bank_size, len(rd.bank_data))) if rd.bank_data is not None else 0}

    def features(self, method, data, indices=None, cancel=None) -> torch.Tensor:
        return extract_features(method.encoder, data, indices, batch_size=512, device=self.device, cancel=cancel)

    def knn(self, method) -> dict:
        """Online kNN on held-out images (when labelled) and the collapse indicator."""
        e = self.cfg.eval
        bank, query, data = self.rd.bank_data, self.rd.eval_data, self.rd.data
        values = {}
        rng = seeds.monitor_rng(self.cfg.seed)
        if bank is not None and query is not None:
            bank_idx = np.sort(rng.choice(len(bank), min(e.bank_size, len(bank)), replace=False))
            test_idx = np.sort(rng.choice(len(query), min(e.monitor_size, len(query)), replace=False))
            fb = self.features(method, bank, bank_idx)
            ft = self.features(method, query, test_idx)
            yb = bank.get_labels(bank_idx).cpu()
            yt = query.get_labels(test_idx).cpu()
            top1, top5 = knn_accuracy(fb, yb, ft, yt, query.num_classes, e.knn_k, e.knn_temperature)
            values["knn_top1"] = top1
            if top5 is not None:
                values["knn_top5"] = top5
            self.last_knn = top1
        else:
            idx = np.sort(rng.choice(len(data), min(e.monitor_size, len(data)), replace=False))
            ft = self.features(method, data, idx)
        values.update(collapse_std=collapse_std(ft), effective_rank=effective_rank(ft))
        return values

    def final(self, method, results: dict, cancel=None) -> dict:
        """kNN (with per-class accuracy and confusion) and the linear probe with the run's evaluation protocol
        (:class:`engine.eval.protocol.Readout`, the one the Inspector and the comparison of runs use too),
        added to ``results`` with ``protocol`` naming it; a note instead when there are no labelled
        evaluation images. ``cancel`` (``is_set()``: a stop was asked for) ends it within a batch or a probe
        epoch: what was measured by then stays in ``results``, with ``stopped`` saying what was left out."""
        from engine.data.base import Cancelled
        from engine.eval.protocol import Readout

        if self.rd.bank_data is None or self.rd.eval_data is None:
            results["note"] = "no labelled evaluation data: kNN and linear probe skipped"
            return results
        readout = Readout(self.cfg, self.rd)
        try:
            fb, ft = readout.features(method.encoder, self.device, cancel)
        except Cancelled:
            results["stopped"] = "stopped during the final evaluation: kNN and linear probe not measured"
            return results
        results.update(readout.knn(fb, ft))
        results.update({"num_train": len(fb), "num_test": len(ft), "class_names": readout.class_names,
                        "protocol": readout.protocol()})
        try:
            results.update(readout.probe(fb, ft, cancel=cancel))
        except Cancelled:
            results["stopped"] = "stopped during the final evaluation: the linear probe was not finished"
        return results

    def snapshot(self, method, step: int, epoch: float, cancel=None) -> tuple[dict, M.Embedding]:
        """The time-based snapshot: the embedding of the fixed sample and the kNN monitor on those same
        images, with no other forward pass (cheap enough for every few seconds): when the sample comes
        from the labelled evaluation split, each image is classified by its k nearest other images of
        the sample (leave-one-out), with labels used for this score only. Returns (values, message)."""
        src, idx = self.rd.embed_source, self.rd.embed_idx
        feats = self.features(method, src, idx, cancel=cancel)
        values = {"collapse_std": collapse_std(feats), "effective_rank": effective_rank(feats)}
        labels = src.get_labels(idx) if src is self.rd.eval_data else None
        if labels is not None and len(idx) > 1:
            e = self.cfg.eval
            top1, top5 = knn_leave_one_out(feats, labels.cpu(), src.num_classes, e.knn_k, e.knn_temperature)
            values["knn_top1"] = top1
            if top5 is not None:
                values["knn_top5"] = top5
            self.last_knn = top1
        return values, self.embedding(method, step, epoch, feats)

    @torch.no_grad()
    def view_pairs(self, method, count: int = PAIR_IMAGES) -> tuple[np.ndarray, np.ndarray] | None:
        """Two views of the first ``count`` sample images, drawn with the method's own recipe
        (:meth:`Method.view_pair`, the same fixed draw at every snapshot, so what changes from one snapshot to the
        next is the encoder only) and encoded like the sample:
        ((P, 2, D) float32 L2-normalised features, (P,) rows in the sample). None when the method has no two
        views (or the sample has fewer than two images)."""
        src, idx = self.rd.embed_source, self.rd.embed_idx
        rows = np.arange(min(int(count), len(idx)), dtype=np.int64)
        if len(rows) < 2 or getattr(method, "input_kind", "images") != "images":
            return None
        x = src.get(idx[rows]).to(self.device).float().div(255)
        pair = method.view_pair(x, seeds.step_generator(seeds.PAIR_VIEWS_SEED, 0, 0, self.device))
        if pair is None:
            return None
        enc = method.encoder
        was = enc.training
        enc.eval()
        try:
            f = torch.stack([F.normalize(enc(v).float(), dim=1) for v in pair], 1)
        finally:
            enc.train(was)
        return f.cpu().numpy().astype(np.float32), rows

    def embedding(self, method, step: int, epoch: float, feats: torch.Tensor | None = None) -> M.Embedding:
        """Features of the fixed embedding sample (and of two views of a few of its images, for two-view
        methods); written to ``embeddings/step_*.npz`` in the run folder."""
        src, idx = self.rd.embed_source, self.rd.embed_idx
        if feats is None:
            feats = self.features(method, src, idx)
        feats = feats.numpy().astype(np.float32)
        labels = src.get_labels(idx)
        labels = None if labels is None else labels.cpu().numpy()
        pairs = self.view_pairs(method)
        pair_features, pair_rows = pairs if pairs is not None else (None, None)
        if self.run_dir is not None:
            out = self.run_dir / "embeddings" / f"step_{step:08d}.npz"
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.stem}.tmp.npz")
            extra = {} if pairs is None else {"pair_features": pair_features, "pair_rows": pair_rows}
            np.savez(tmp, features=feats, labels=labels if labels is not None else np.zeros(0, np.int64),
                     indices=idx, step=step, epoch=epoch, **extra)
            os.replace(tmp, out)
        return M.Embedding(step, float(epoch), feats, labels, idx.copy(), pair_features=pair_features,
                           pair_rows=pair_rows)

    @torch.no_grad()
    def reconstruction(self, method, step: int, epoch: float) -> M.Reconstruction | None:
        """What a reconstruction method makes of the fixed sample (None for other methods)."""
        x = self.rd.embed_source.get(self.rd.recon_idx).to(self.device).float().div(255)
        was = method.training
        method.eval()
        try:
            out = method.reconstruct(x, seeds.step_generator(self.cfg.seed, 0, 0, self.device))
        finally:
            method.train(was)
        if out is None:
            return None
        return M.Reconstruction(step, float(epoch), _u8(x), _u8(out[0]), _u8(out[1]), self.cfg.method)


__all__ = ["Monitor", "SnapshotClock"]
