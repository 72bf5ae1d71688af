"""The evaluation protocol's supervised upper bound: find a finished supervised run of the same backbone
and data, or train a short one on a run's data. Training runs a whole :class:`engine.session.Session`,
so this lives above the session (the read-outs in :mod:`engine.eval` never import the session)."""

from __future__ import annotations

import threading
from pathlib import Path

from engine.config import RunConfig, default_config
from engine.eval.protocol import EvalCancelled
from engine.methods import bound_method
from engine.runs import last_checkpoint, list_runs, read_json
from engine.session import FlagControl, Session


def find_supervised_runs(roots, backbone: str, data_spec: str, image_size: int) -> list[dict]:
    """Finished supervised runs of the same backbone, dataset and image size, newest first."""
    upper = bound_method("upper")
    out = []
    for info in list_runs(*roots):
        if info.method != upper or info.live:
            continue
        cfg = read_json(Path(info.path) / "config.json", {}) or {}
        d = read_json(Path(info.path) / "data.json", {}) or {}
        bname = d.get("backbone") or cfg.get("backbone")
        if bname != backbone or (cfg.get("data") or {}).get("spec") != data_spec:
            continue
        if int((cfg.get("data") or {}).get("image_size", 0)) != int(image_size):
            continue
        if last_checkpoint(info.path) is None:
            continue
        out.append({"path": info.path, "step": info.step, "knn_top1": info.knn_top1, "started": info.started})
    return out


def train_supervised(cfg, backbone: str, minutes: float, runs_root: str | Path, emit=None,
                     cancel: threading.Event | None = None) -> str:
    """Train a short supervised run of ``backbone`` on the run's data (the upper bound); its run folder."""
    base = default_config(bound_method("upper")).to_dict()
    base["data"] = cfg.to_dict()["data"]
    base.update({"backbone": backbone, "minutes": float(minutes), "epochs": 0, "device": cfg.device,
                 "seed": cfg.seed, "runs_root": str(runs_root), "name": f"supervised-{backbone}-upper-bound"})
    base["eval"]["final_eval"] = False
    base["eval"]["embed_every_epochs"] = 0
    base["eval"]["knn_every_epochs"] = 0
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


__all__ = ["find_supervised_runs", "train_supervised"]
