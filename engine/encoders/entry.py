"""An opened encoder's folder in the runs folder, so that everything that reads a run reads it too.

``runs/<stamp>-encoder-<name>/`` holds

* ``encoder.json``: the spec, the architecture, the load report, the preprocessing (``engine.runs.encoder_entry``);
* ``encoder.safetensors``: the weights, as a run's exported encoder (``load_run_encoder`` reads it);
* ``config.json``: a run config with the architecture as backbone, the data to look at, the spec as
  initial weights and the method that trains nothing (the evaluation protocol's lower bound), so the
  history, the map, neighbours, evaluations, invariance, retrieval, filters and exports read the folder
  like a run;
* ``status.json``: ``finished``, at step 0.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from engine.encoders.loader import LoadedEncoder, load_encoder


def open_encoder(spec: str, arch: str = "", *, data: str = "", eval_data: str = "", runs_root: str | Path = "runs",
                 select: str = "", image_size: int | None = None, name: str = "", device="cpu",
                 encoder: LoadedEncoder | None = None) -> tuple[Path, LoadedEncoder]:
    """Open ``spec`` and write its folder under ``runs_root``; (the folder, the loaded encoder).

    ``data`` (a dataset spec; empty: the built-in shapes) is what the map and evaluations look at, loaded at the
    encoder's image size. Bad input raises a one-line EncoderError/DataError before any folder is made.
    """
    from safetensors.torch import save

    from engine.config import RunConfig
    from engine.data import check_dataset
    from engine.methods import bound_method
    from engine.runs import (
        ENCODER_ENTRY,
        atomic_write_bytes,
        encoder_path,
        new_run_dir,
        safe_name,
        write_json,
    )

    le = encoder or load_encoder(spec, arch, select=select, image_size=image_size, device=device)
    cfg = RunConfig(method=bound_method("lower"), backbone=le.arch, init=str(spec), init_arch=str(arch or ""),
                    init_select=str(select or ""), epochs=0, runs_root=str(runs_root))
    if data:
        cfg.data.spec = str(data)
    cfg.data.eval_spec = str(eval_data or "")
    cfg.data.image_size = int(le.image_size)
    cfg.eval.final_eval = False
    check_dataset(cfg.data.spec, cfg.data.image_size)
    if cfg.data.eval_spec:
        check_dataset(cfg.data.eval_spec, cfg.data.image_size)
    label = name or f"encoder-{le.name}"
    cfg.name = safe_name(label)
    run_dir = new_run_dir(runs_root, "encoder", cfg.data.spec, cfg.name)
    try:
        now = time.time()
        state = {k: v.detach().cpu().contiguous() for k, v in le.module.state_dict().items()}
        atomic_write_bytes(encoder_path(run_dir), save(state, metadata={
            "backbone": le.arch, "image_size": str(le.image_size), "method": "", "spec": str(spec)}))
        write_json(run_dir / ENCODER_ENTRY, {**le.describe(), "select": select, "arch_given": arch, "opened": now,
                                            "data": cfg.data.spec})
        cfg.save(run_dir / "config.json")
        write_json(run_dir / "status.json", {"state": "finished", "started": now, "updated": now, "step": 0,
                                             "epoch": 0, "elapsed_s": 0.0})
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # our own fresh folder: nothing of the user's
        raise
    return run_dir, le


__all__ = ["open_encoder"]
