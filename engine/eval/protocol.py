"""The evaluation readout around run folders: kNN + linear probe of an encoder on a fixed labelled bank
and test set, run summaries.

The run's data splits come from :func:`engine.training.rundata.prepare_data`, its encoder and full
model from :mod:`engine.training.checkpoints`, and training a supervised upper bound from
:mod:`engine.bounds` (all above this layer: the caller passes them in).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from engine import seeds
from engine.data import DataError
from engine.runs import read_json

ProgressFn = Callable[[int, int, str], None]


class EvalCancelled(RuntimeError):
    pass


def sample_indices(n: int, size: int, seed: int = 0) -> np.ndarray:
    if size <= 0 or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def thumbnails(data, indices, size: int = 48) -> np.ndarray:
    """uint8 thumbnails (n, s, s, 3), s = min(image size, ``size``)."""
    idx = np.asarray(indices, dtype=np.int64)
    out = []
    for s in range(0, len(idx), 1024):
        x = data.get(idx[s:s + 1024]).cpu()
        if x.shape[-1] > size:
            x = torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True,
                                                align_corners=False).round().clamp(0, 255).byte()
        out.append(x.permute(0, 2, 3, 1).contiguous().numpy())
    if not out:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.concatenate(out)


# -- models from run folders -------------------------------------------------------------------------
def run_backbone_name(run_dir: str | Path, cfg) -> str:
    """The backbone a run trained (``auto`` resolved), from its data.json; the config's otherwise."""
    info = read_json(Path(run_dir) / "data.json", {}) or {}
    return info.get("backbone") or cfg.backbone


# -- scoring --------------------------------------------------------------------------------------------
def _check(cancel):
    if cancel is not None and cancel.is_set():
        raise EvalCancelled("cancelled")


def score_features(fb: torch.Tensor, yb: torch.Tensor, ft: torch.Tensor, yt: torch.Tensor, num_classes: int,
                   k: int = 20, temperature: float = 0.07, probe_epochs: int = 50, seed: int = 0) -> dict:
    """kNN (top-1/top-5) and linear-probe accuracy with per-class accuracy and confusion matrices."""
    from engine.eval.knn import knn_accuracy
    from engine.eval.linear import linear_probe
    from engine.eval.metrics import confusion_matrix, per_class_accuracy

    top1, top5, pred = knn_accuracy(fb, yb, ft, yt, num_classes, k, temperature, return_predictions=True)
    conf = confusion_matrix(pred, yt, num_classes)
    row = {"knn_top1": float(top1), "knn_top5": None if top5 is None else float(top5),
           "knn_per_class": per_class_accuracy(conf), "knn_confusion": conf.cpu().numpy().astype(np.int64)}
    if probe_epochs:
        lin, lpred = linear_probe(fb, yb, ft, yt, num_classes, epochs=probe_epochs, seed=seed,
                                  return_predictions=True)
        lconf = confusion_matrix(lpred, yt, num_classes)
        row.update({"linear_top1": float(lin), "linear_per_class": per_class_accuracy(lconf),
                    "linear_confusion": lconf.cpu().numpy().astype(np.int64)})
    return row


class Readout:
    """A fixed labelled bank and test set (capped, sampled once) on which encoders are scored."""

    def __init__(self, cfg, datasets, max_bank: int = 5000, max_test: int = 2000):
        """``datasets``: the run's data (:class:`engine.training.rundata.RunData` or its mapping form)."""
        bank, test = datasets["bank_data"], datasets["eval_data"]
        if bank is None or test is None or not test.labelled:
            raise DataError("this run has no labelled evaluation data, so kNN and the linear probe cannot be "
                            "scored; train on a labelled dataset (class folders) or set an eval dataset")
        self.bank, self.test = bank, test
        self.bank_idx = sample_indices(len(bank), max_bank, seed=seeds.READOUT_BANK_SEED)
        self.test_idx = sample_indices(len(test), max_test, seed=seeds.READOUT_TEST_SEED)
        self.yb = bank.get_labels(self.bank_idx).cpu()
        self.yt = test.get_labels(self.test_idx).cpu()
        self.class_names = list(test.class_names)
        self.num_classes = test.num_classes
        self.image_size = cfg.data.image_size
        self.spec = cfg.data.spec

    def features(self, encoder, device, cancel=None):
        from engine.eval.features import extract_features

        fb = extract_features(encoder, self.bank, self.bank_idx, device=device, cancel=cancel)
        ft = extract_features(encoder, self.test, self.test_idx, device=device, cancel=cancel)
        return fb, ft

    def score(self, encoder, device, k=20, temperature=0.07, probe_epochs=50, cancel=None) -> dict:
        fb, ft = self.features(encoder, device, cancel)
        _check(cancel)
        return score_features(fb, self.yb, ft, self.yt, self.num_classes, k, temperature, probe_epochs)


def run_summary(run_dir: str | Path) -> dict:
    from engine.runs import encoder_entry

    cfg = read_json(Path(run_dir) / "config.json", {}) or {}
    status = read_json(Path(run_dir) / "status.json", {}) or {}
    d = read_json(Path(run_dir) / "data.json", {}) or {}
    entry = encoder_entry(run_dir)  # an opened encoder: named by what was opened, not by a method
    return {"run_dir": str(run_dir), "name": Path(run_dir).name,
            "method": f"encoder {entry.get('name', '')}".strip() if entry else cfg.get("method", "?"),
            "backbone": d.get("backbone") or cfg.get("backbone", "?"), "step": int(status.get("step", 0)),
            "epoch": status.get("epoch", 0), "train_time_s": status.get("elapsed_s", 0.0),
            "data": (cfg.get("data") or {}).get("spec", "?")}
