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


FINAL_TEST_MAX = 10000  # the final evaluation scores at most this many evaluation images (a fixed sample)


class Readout:
    """The evaluation protocol of a run, in one place: a fixed labelled bank and test set (capped, sampled
    once with fixed seeds), the kNN's k and temperature, the linear probe's epochs and seed. The session's
    final evaluation, the Inspector's evaluation and the comparison of runs all score with it, so the same
    encoder gets the same numbers everywhere; :meth:`protocol` names it (stored in ``results.json``, where
    a later request finds the number already measured: :func:`cached_result`).

    Defaults come from the run's ``cfg.eval``: ``bank_size`` bank images, at most ``FINAL_TEST_MAX`` test
    images, ``knn_k``, ``knn_temperature``, ``linear_probe_epochs``, and the run's seed for the probe."""

    def __init__(self, cfg, datasets, max_bank: int | None = None, max_test: int | None = None):
        """``datasets``: the run's data (:class:`engine.training.rundata.RunData` or its mapping form)."""
        bank, test = datasets["bank_data"], datasets["eval_data"]
        if bank is None or test is None or not test.labelled:
            raise DataError("this run has no labelled evaluation data, so kNN and the linear probe cannot be "
                            "scored; train on a labelled dataset (class folders) or set an eval dataset")
        e = cfg.eval
        self.bank, self.test = bank, test
        self.bank_idx = sample_indices(len(bank), e.bank_size if max_bank is None else max_bank,
                                       seed=seeds.READOUT_BANK_SEED)
        self.test_idx = sample_indices(len(test), FINAL_TEST_MAX if max_test is None else max_test,
                                       seed=seeds.READOUT_TEST_SEED)
        self.yb = bank.get_labels(self.bank_idx).cpu()
        self.yt = test.get_labels(self.test_idx).cpu()
        self.class_names = list(test.class_names)
        self.num_classes = test.num_classes
        self.image_size = cfg.data.image_size
        self.spec = cfg.data.spec
        self.eval_spec = cfg.data.eval_spec or getattr(test, "source", "")
        self.k, self.temperature = int(e.knn_k), float(e.knn_temperature)
        self.probe_epochs, self.seed = int(e.linear_probe_epochs), int(cfg.seed)

    def protocol(self, probe_epochs: int | None = None) -> dict:
        """What the numbers are: the data, how many bank and test images, k, temperature, probe epochs."""
        return {"kind": "final", "data": self.spec, "eval_data": self.eval_spec, "image_size": self.image_size,
                "bank": int(len(self.bank_idx)), "test": int(len(self.test_idx)), "k": self.k,
                "temperature": self.temperature,
                "probe_epochs": self.probe_epochs if probe_epochs is None else int(probe_epochs),
                "probe_seed": self.seed}

    def features(self, encoder, device, cancel=None, extract=None):
        """Bank and test features; ``extract(data, indices)`` (a feature store's) instead of extracting here."""
        from engine.eval.features import extract_features

        if extract is not None:
            return extract(self.bank, self.bank_idx), extract(self.test, self.test_idx)
        fb = extract_features(encoder, self.bank, self.bank_idx, device=device, cancel=cancel)
        ft = extract_features(encoder, self.test, self.test_idx, device=device, cancel=cancel)
        return fb, ft

    def knn(self, fb: torch.Tensor, ft: torch.Tensor) -> dict:
        from engine.eval.knn import knn_accuracy
        from engine.eval.metrics import confusion_matrix, per_class_accuracy

        top1, top5, pred = knn_accuracy(fb, self.yb, ft, self.yt, self.num_classes, self.k, self.temperature,
                                        return_predictions=True)
        conf = confusion_matrix(pred, self.yt, self.num_classes)
        return {"knn_top1": float(top1), "knn_top5": None if top5 is None else float(top5),
                "knn_per_class": per_class_accuracy(conf), "knn_confusion": conf.cpu().numpy().astype(np.int64)}

    def probe(self, fb: torch.Tensor, ft: torch.Tensor, epochs: int | None = None, cancel=None) -> dict:
        from engine.eval.linear import linear_probe
        from engine.eval.metrics import confusion_matrix, per_class_accuracy

        epochs = self.probe_epochs if epochs is None else int(epochs)
        if not epochs:
            return {}
        lin, lpred = linear_probe(fb, self.yb, ft, self.yt, self.num_classes, epochs=epochs, seed=self.seed,
                                  return_predictions=True, cancel=cancel)
        lconf = confusion_matrix(lpred, self.yt, self.num_classes)
        return {"linear_top1": float(lin), "linear_per_class": per_class_accuracy(lconf),
                "linear_confusion": lconf.cpu().numpy().astype(np.int64)}

    def score(self, encoder, device, probe_epochs: int | None = None, cancel=None, extract=None, **_old) -> dict:
        """kNN and linear probe of ``encoder`` with this protocol (``probe_epochs`` overrides the run's;
        ``extract``: see :meth:`features`)."""
        from engine.data.base import Cancelled

        try:
            fb, ft = self.features(encoder, device, cancel, extract)
            _check(cancel)
            return {**self.knn(fb, ft), **self.probe(fb, ft, probe_epochs, cancel),
                    "protocol": self.protocol(probe_epochs)}
        except Cancelled:
            raise EvalCancelled("cancelled") from None


def cached_result(run_dir: str | Path, protocol: dict, step: int | None) -> dict | None:
    """The run's final evaluation (``results.json``) when it scored the encoder of checkpoint ``step`` with
    exactly ``protocol``: the number already measured, not a second one; None otherwise."""
    res = read_json(Path(run_dir) / "results.json", {})
    if not isinstance(res, dict) or res.get("protocol") != protocol or "knn_top1" not in res:
        return None
    if step is not None and res.get("step") != step:
        return None
    keys = ("knn_top1", "knn_top5", "knn_per_class", "knn_confusion", "linear_top1", "linear_per_class",
            "linear_confusion")
    out = {k: res[k] for k in keys if k in res}
    return {**out, "protocol": protocol, "cached": "results.json"}


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
