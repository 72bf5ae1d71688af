import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from engine import messages as M
from engine.config import default_config
from engine.methods import METHODS
from engine.runs import last_checkpoint, list_runs, read_metrics, safe_name
from engine.session import FlagControl, Session

ENGINE_METHODS = ["rotnet", "jigsaw", "simclr", "mae", "supervised", "random_init"]


def tiny(method, spec="builtin:shapes:64", tmp_path=None, **kw):
    over = {"epochs": 1, "seed": 0, "runs_root": str(tmp_path or "runs"),
            "optim": {"batch_size": 16}, "data": {"spec": spec, "image_size": 32},
            "eval": {"knn_every_epochs": 1, "linear_probe_epochs": 5, "bank_size": 64, "monitor_size": 32}}
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(over.get(k), dict):
            over[k].update(v)
        else:
            over[k] = v
    return default_config(method, **over)


def run(cfg, **kw):
    got = []
    summary = Session(cfg, got.append, **kw).run()
    return summary, got


def _folder(tmp_path, labelled=True, n=24):
    rng = np.random.default_rng(0)
    root = tmp_path / ("labelled" if labelled else "flat")
    for i in range(n):
        d = root / (f"c{i % 3}" if labelled else "")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (36, 40, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def _fake_mnist(tmp_path):
    from tests.test_data import _write_fake_mnist

    _write_fake_mnist(tmp_path / "tv", n=40)
    return f"torchvision:mnist:{tmp_path / 'tv'}"


@pytest.mark.parametrize("method", ENGINE_METHODS)
def test_every_method_trains_on_every_source(method, tmp_path):
    sources = ["builtin:shapes:16", str(_folder(tmp_path)), _fake_mnist(tmp_path)]
    for spec in sources:
        cfg = tiny(method, spec, tmp_path / "runs", epochs=1, optim={"batch_size": 8},
                   data={"max_images": 16, "holdout_fraction": 0.0},
                   eval={"final_eval": False, "knn_every_epochs": 0})
        summary, msgs = run(cfg)
        assert summary["reason"] == "completed", (spec, summary)
        steps = [m for m in msgs if isinstance(m, M.StepMetrics)]
        if METHODS[method].trains:
            assert steps and all(np.isfinite(m.values["loss"]) for m in steps), spec
            assert summary["step"] >= 1
        assert any(isinstance(m, M.RunFinished) for m in msgs)


def test_unlabeled_folder_trains_and_skips_label_evaluation(tmp_path):
    cfg = tiny("simclr", str(_folder(tmp_path, labelled=False)), tmp_path / "runs")
    summary, msgs = run(cfg)
    assert summary["reason"] == "completed"
    notes = " ".join(m.text for m in msgs if isinstance(m, M.Warning))
    assert "no labels" in notes
    evals = [m for m in msgs if isinstance(m, M.EvalResult) and m.kind_name == "knn_monitor"]
    assert evals and "knn_top1" not in evals[0].values and "collapse_std" in evals[0].values
    cfg = tiny("supervised", str(_folder(tmp_path, labelled=False)), tmp_path / "runs")
    summary, msgs = run(cfg)
    assert summary["reason"] == "failed" and "needs labels" in summary["error"]


def test_loss_goes_down_on_a_small_run(tmp_path, monkeypatch):
    # the lit shapes: RotNet's loss falls within a few steps there (the light says where "up" is), so
    # this checks the training loop, not how fast RotNet learns shape
    import engine.session as S

    monkeypatch.setattr(S, "EMIT_EVERY_S", 0.0)  # a record every step, however fast the machine runs them
    cfg = tiny("rotnet", "builtin:shapes:128?shortcut=light", tmp_path, epochs=5, optim={"batch_size": 32, "lr": 2e-3},
               eval={"knn_every_epochs": 0, "final_eval": False})
    summary, msgs = run(cfg)
    losses = [m.values["loss"] for m in msgs if isinstance(m, M.StepMetrics)]
    recs = [r for r in read_metrics(summary["run_dir"]) if r["type"] == "step"]
    assert len(recs) == len(losses) >= 4
    first, last = np.mean(losses[:2]), np.mean(losses[-2:])
    assert last < first * 0.9, losses


def test_run_folder_contents_and_checkpoint_loads_safely(tmp_path):
    from safetensors.torch import load_file

    cfg = tiny("simclr", "builtin:shapes:64", tmp_path, name="../../etc/evil name")
    summary, msgs = run(cfg)
    d = summary["run_dir"]
    assert "/etc/" not in d and d.startswith(str(tmp_path))
    import pathlib

    p = pathlib.Path(d)
    for f in ("config.json", "data.json", "status.json", "metrics.jsonl", "results.json",
              "checkpoints/last.pt", "encoder.safetensors"):
        assert (p / f).exists(), f
    state = torch.load(last_checkpoint(p), weights_only=True)
    assert state["step"] == summary["step"] and "model" in state
    enc = load_file(str(p / "encoder.safetensors"))
    assert any(k.startswith("features.") for k in enc)
    infos = list_runs(tmp_path)
    assert infos and infos[0].method == "simclr" and infos[0].state == "finished"
    assert infos[0].knn_top1 is not None and 0 <= infos[0].knn_top1 <= 1
    assert safe_name("a/b\\c..d") == "a-b-c..d" and safe_name("...") == "run"


def _train_steps(tmp_path, name, stop_at=None, resume_dir=None, epochs=2):
    cfg = tiny("simclr", "builtin:shapes:64", tmp_path, epochs=epochs, name=name,
               eval={"knn_every_epochs": 0, "final_eval": False}, optim={"batch_size": 16})
    control = FlagControl()
    msgs = []

    def emit(m):
        msgs.append(m)
        if stop_at is not None and isinstance(m, M.StepMetrics) and m.step >= stop_at:
            control.send("stop")

    import engine.session as S

    old = S.EMIT_EVERY_S
    S.EMIT_EVERY_S = 0.0  # a message after every step, so the stop lands on an exact step
    try:
        if resume_dir:
            from engine.session import resume_config

            s = Session(resume_config(resume_dir), emit, control, run_dir=resume_dir, resume=True)
        else:
            s = Session(cfg, emit, control)
        summary = s.run()
    finally:
        S.EMIT_EVERY_S = old
    return summary, s, msgs


def test_resume_equals_uninterrupted_training(tmp_path, monkeypatch):
    # bit-exact needs one thread count for both runs (another count rounds the sums differently)
    monkeypatch.setenv("SSLWB_TRAIN_THREADS", str(torch.get_num_threads()))
    full, s_full, _ = _train_steps(tmp_path, "full")
    part, s_part, _ = _train_steps(tmp_path, "part", stop_at=3)
    assert part["reason"] == "stopped" and part["step"] == 3
    resumed, s_res, msgs = _train_steps(tmp_path, "part", resume_dir=part["run_dir"])
    assert resumed["reason"] == "completed" and resumed["step"] == full["step"] == 8
    started = [m for m in msgs if isinstance(m, M.RunStarted)][0]
    assert started.resumed and started.start_step == 3
    a, b = s_full.method.state_dict(), s_res.method.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    recs = read_metrics(part["run_dir"])
    steps = [r["step"] for r in recs if r["type"] == "step"]
    assert steps == sorted(steps) and steps[-1] == 8


def test_a_resumed_auto_run_keeps_the_backbone_it_trained(tmp_path, monkeypatch):
    """``--backbone auto`` resolves by device: resumed on another device (here: a default that changed),
    the run still builds the backbone its checkpoint holds."""
    import engine.training.learner as L

    part, s_part, _ = _train_steps(tmp_path, "part", stop_at=3)
    assert part["reason"] == "stopped" and s_part.learner.backbone_name == "small_cnn"
    monkeypatch.setattr(L, "default_backbone", lambda device_type, prefer="cnn": "small_cnn_wide")
    resumed, s_res, _ = _train_steps(tmp_path, "part", resume_dir=part["run_dir"])
    assert resumed["reason"] == "completed", resumed.get("error")
    assert s_res.learner.backbone_name == "small_cnn"
    fresh, s_new, _ = _train_steps(tmp_path, "new", epochs=1)  # a new run takes the (changed) default
    assert s_new.learner.backbone_name == "small_cnn_wide"


def test_pause_resume_stop_from_another_thread(tmp_path):
    cfg = tiny("simclr", "builtin:shapes:128", tmp_path, epochs=50,
               eval={"knn_every_epochs": 0, "final_eval": False})
    control = FlagControl()
    msgs = []
    s = Session(cfg, msgs.append, control)
    th = threading.Thread(target=s.run)
    th.start()

    def wait_for(pred, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if pred():
                return True
            time.sleep(0.05)
        return False

    assert wait_for(lambda: any(isinstance(m, M.StepMetrics) for m in msgs))
    control.send("pause")
    assert wait_for(lambda: s.paused and any(isinstance(m, M.StateChanged) and m.state == "paused" for m in msgs))
    step_at_pause = s.step
    time.sleep(1.0)
    assert s.step == step_at_pause  # nothing trains while paused
    assert any(isinstance(m, M.CheckpointSaved) for m in msgs)  # pausing leaves a checkpoint
    control.send("resume")
    assert wait_for(lambda: s.step > step_at_pause)
    control.send("stop")
    th.join(60)
    assert not th.is_alive()
    fin = [m for m in msgs if isinstance(m, M.RunFinished)]
    assert fin and fin[0].reason == "stopped"


def test_divergence_and_bad_config_are_reported_not_raised(tmp_path):
    cfg = tiny("rotnet", "builtin:shapes:64", tmp_path, epochs=3, optim={"lr": 10.0, "optimizer": "sgd",
                                                                          "momentum": 0.99, "batch_size": 16})
    import engine.session as S

    old = S.EMIT_EVERY_S
    S.EMIT_EVERY_S = 0.0
    try:
        cfg.method_options["head_hidden"] = 0
        cfg.optim.lr = 1e6
        summary, msgs = run(cfg)
    finally:
        S.EMIT_EVERY_S = old
    assert summary["reason"] == "failed" and "learning rate" in summary["error"]
    assert any(isinstance(m, M.RunFailed) for m in msgs)
    cfg = tiny("simclr", str(tmp_path / "missing"), tmp_path)
    summary, msgs = run(cfg)
    assert summary["reason"] == "failed" and "does not exist" in summary["error"]
    cfg = tiny("simclr", "builtin:shapes:64", tmp_path, epochs=0, minutes=0.0)
    assert "budget" in run(cfg)[0]["error"]
    cfg = tiny("mae", "builtin:shapes:64", tmp_path, backbone="small_cnn")
    assert "ViT" in run(cfg)[0]["error"]


def test_time_budget_and_online_knn(tmp_path):
    # 32 images of batch 16: an epoch (and its kNN monitor) ends every 2 steps, however slow the machine
    cfg = tiny("simclr", "builtin:shapes:32", tmp_path, epochs=0, minutes=0.08,
               eval={"knn_every_epochs": 1, "final_eval": True, "embed_every_epochs": 1, "embed_size": 20})
    summary, msgs = run(cfg)
    assert summary["reason"] == "time budget"
    assert 4.0 <= summary["train_time_s"] < 20
    mon = [m for m in msgs if isinstance(m, M.EvalResult) and m.kind_name == "knn_monitor"]
    assert mon and 0 <= mon[0].values["knn_top1"] <= 1 and mon[0].values["collapse_std"] > 0
    emb = [m for m in msgs if isinstance(m, M.Embedding)]
    assert emb and emb[0].features.shape[0] == 20 and emb[0].labels.shape == (20,)
    final = [m for m in msgs if isinstance(m, M.EvalResult) and m.kind_name == "final"]
    assert final and "linear_top1" in final[0].values


def test_mae_sends_reconstructions(tmp_path):
    cfg = tiny("mae", "builtin:shapes:48", tmp_path, eval={"final_eval": False})
    summary, msgs = run(cfg)
    rec = [m for m in msgs if isinstance(m, M.Reconstruction)]
    assert rec and rec[0].originals.shape == rec[0].outputs.shape and rec[0].originals.dtype == np.uint8


def test_streamed_folder_trains(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "big"
    for i in range(50):
        d = root / f"c{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)).save(d / f"{i}.png")
    cfg = tiny("rotnet", str(root), tmp_path / "runs", data={"image_size": 96, "in_memory_limit_mb": 1,
                                                              "workers": 1, "holdout_fraction": 0.0},
               optim={"batch_size": 16}, eval={"final_eval": False, "knn_every_epochs": 0})
    summary, msgs = run(cfg)
    assert summary["reason"] == "completed" and summary["step"] == 3
    notes = " ".join(m.text for m in msgs if isinstance(m, M.Warning))
    assert "streamed" in notes
