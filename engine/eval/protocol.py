"""The evaluation protocol around a run folder: the run's data splits, its encoder and full model,
kNN + linear probe of the run next to a random-init encoder (lower bound) and a supervised
encoder of the same backbone (upper bound), and the comparison of several runs on one readout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from engine.data import DataError, load_dataset, stratified_split

ProgressFn = Callable[[int, int, str], None]


class EvalCancelled(RuntimeError):
    pass


# -- the run's data, as its session saw it --------------------------------------------------------
def run_datasets(cfg) -> dict:
    """The training data, evaluation data, kNN bank and embedding source of a run.

    Mirrors :meth:`engine.session.Session.setup` (the same specs, hold-out split and seeds), so the
    indices of the run's embedding snapshots (``embeddings/step_*.npz``) point into
    ``embed_source`` here. Returns a dict with data, eval_data, bank_data, embed_source, notes.
    """
    dc = cfg.data
    data = load_dataset(dc.spec, dc.image_size, download=False, max_images=dc.max_images,
                        memory_limit_mb=dc.in_memory_limit_mb, workers=dc.workers, seed=0)
    notes: list[str] = []
    eval_data = None
    eval_spec = dc.eval_spec or data.eval_source
    if eval_spec:
        try:
            eval_data = load_dataset(eval_spec, dc.image_size, download=False, seed=0,
                                     memory_limit_mb=dc.in_memory_limit_mb)
        except DataError as exc:
            notes.append(f"the evaluation set {eval_spec} cannot be read ({exc})")
            eval_data = None
        if eval_data is not None and not eval_data.labelled:
            notes.append(f"the evaluation set {eval_spec} is unlabeled")
            eval_data = None
    elif data.labelled and dc.holdout_fraction > 0 and not data.streaming:
        train_idx, hold_idx = stratified_split(data.labels, len(data), dc.holdout_fraction, seed=1234)
        if len(hold_idx) >= 2:
            eval_data = data.subset(hold_idx)
            data = data.subset(train_idx)
    bank_data = data if data.labelled and (eval_data is None or eval_data.class_names == data.class_names) \
        else None
    if eval_data is not None and bank_data is None:
        tr, te = stratified_split(eval_data.labels, len(eval_data), 0.5, seed=99)
        bank_data, eval_data = eval_data.subset(tr), eval_data.subset(te)
    src = eval_data if eval_data is not None else data
    return {"data": data, "eval_data": eval_data, "bank_data": bank_data, "embed_source": src, "notes": notes}


def embed_indices(cfg, source_len: int) -> np.ndarray:
    """The session's fixed embedding sample (the same draw as its ``embed_idx``)."""
    rng = np.random.default_rng(cfg.seed + 5)
    return np.sort(rng.choice(source_len, size=min(cfg.eval.embed_size, source_len), replace=False))


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
    from engine.runs import read_json

    info = read_json(Path(run_dir) / "data.json", {}) or {}
    return info.get("backbone") or cfg.backbone


def load_checkpoint_state(run_dir: str | Path) -> dict | None:
    ckpt = Path(run_dir) / "checkpoints" / "last.pt"
    if not ckpt.exists():
        return None
    return torch.load(ckpt, map_location="cpu", weights_only=True)


def load_run_method(run_dir: str | Path, device="cpu"):
    """(the full method module in eval mode - heads and decoders included -, cfg, backbone name)."""
    from engine.methods import DataInfo, get_method_class
    from engine.models import build_backbone
    from engine.params import ConfigError
    from engine.session import resume_config

    cfg = resume_config(run_dir)
    full = load_checkpoint_state(run_dir)
    if full is None:
        raise ConfigError("run", f"{run_dir} has no checkpoint (checkpoints/last.pt) yet; train it first")
    bname = full.get("backbone") or run_backbone_name(run_dir, cfg)
    backbone = build_backbone(bname, cfg.data.image_size)
    num_classes = 0
    w = full["model"].get("classifier.weight")
    if w is not None:
        num_classes = int(w.shape[0])
    cls = get_method_class(cfg.method)
    method = cls(cfg.method_config(), backbone, DataInfo(cfg.data.image_size, num_classes))
    method.load_state_dict(full["model"])
    return method.to(device).eval(), cfg, bname


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

    def __init__(self, cfg, datasets: dict, max_bank: int = 5000, max_test: int = 2000):
        bank, test = datasets["bank_data"], datasets["eval_data"]
        if bank is None or test is None or not test.labelled:
            raise DataError("this run has no labelled evaluation data, so kNN and the linear probe cannot be "
                            "scored; train on a labelled dataset (class folders) or set an eval dataset")
        self.bank, self.test = bank, test
        self.bank_idx = sample_indices(len(bank), max_bank, seed=11)
        self.test_idx = sample_indices(len(test), max_test, seed=12)
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


def find_supervised_runs(roots, backbone: str, data_spec: str, image_size: int) -> list[dict]:
    """Finished supervised runs of the same backbone, dataset and image size, newest first."""
    from engine.runs import list_runs, read_json

    out = []
    for info in list_runs(*roots):
        if info.method != "supervised" or info.live:
            continue
        cfg = read_json(Path(info.path) / "config.json", {}) or {}
        d = read_json(Path(info.path) / "data.json", {}) or {}
        bname = d.get("backbone") or cfg.get("backbone")
        if bname != backbone or (cfg.get("data") or {}).get("spec") != data_spec:
            continue
        if int((cfg.get("data") or {}).get("image_size", 0)) != int(image_size):
            continue
        if not (Path(info.path) / "checkpoints" / "last.pt").exists():
            continue
        out.append({"path": info.path, "step": info.step, "knn_top1": info.knn_top1, "started": info.started})
    return out


def train_supervised(cfg, backbone: str, minutes: float, runs_root: str | Path, emit=None,
                     cancel: threading.Event | None = None) -> str:
    """Train a short supervised run of ``backbone`` on the run's data (the upper bound); its run folder."""
    from engine.config import default_config
    from engine.session import FlagControl, Session

    base = default_config("supervised").to_dict()
    base["data"] = cfg.to_dict()["data"]
    base.update({"backbone": backbone, "minutes": float(minutes), "epochs": 0, "device": cfg.device,
                 "seed": cfg.seed, "runs_root": str(runs_root), "name": f"supervised-{backbone}-upper-bound"})
    base["eval"]["final_eval"] = False
    base["eval"]["embed_every_epochs"] = 0
    base["eval"]["knn_every_epochs"] = 0
    from engine.config import RunConfig

    scfg = RunConfig.from_dict(base)
    control = FlagControl()

    def forward(msg):
        if cancel is not None and cancel.is_set():
            control.send("stop")
        if emit is not None:
            emit(msg)

    result = Session(scfg, forward, control).run()
    if result.get("reason") == "failed":
        raise RuntimeError(f"the supervised run failed: {result.get('error')}")
    if cancel is not None and cancel.is_set():
        raise EvalCancelled("cancelled")
    return result["run_dir"]


def run_summary(run_dir: str | Path) -> dict:
    from engine.runs import read_json

    cfg = read_json(Path(run_dir) / "config.json", {}) or {}
    status = read_json(Path(run_dir) / "status.json", {}) or {}
    d = read_json(Path(run_dir) / "data.json", {}) or {}
    return {"run_dir": str(run_dir), "name": Path(run_dir).name, "method": cfg.get("method", "?"),
            "backbone": d.get("backbone") or cfg.get("backbone", "?"), "step": int(status.get("step", 0)),
            "epoch": status.get("epoch", 0), "train_time_s": status.get("elapsed_s", 0.0),
            "data": (cfg.get("data") or {}).get("spec", "?")}
