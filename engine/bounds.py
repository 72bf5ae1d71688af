"""The evaluation protocol's supervised upper bound: train a short supervised run of the same backbone
on a run's data. It runs a whole :class:`engine.session.Session`, so it lives above the session (the
read-outs in :mod:`engine.eval` never import the session)."""

from __future__ import annotations

import threading
from pathlib import Path

from engine.config import RunConfig, default_config
from engine.eval.protocol import EvalCancelled
from engine.session import FlagControl, Session


def train_supervised(cfg, backbone: str, minutes: float, runs_root: str | Path, emit=None,
                     cancel: threading.Event | None = None) -> str:
    """Train a short supervised run of ``backbone`` on the run's data (the upper bound); its run folder."""
    base = default_config("supervised").to_dict()
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


__all__ = ["train_supervised"]
