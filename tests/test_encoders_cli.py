"""Any encoder on the command line, in the analysis process and as a run's initial weights; the engine without
timm. Small random-weight models, no internet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.analysis import AnalysisWorker, Request
from engine.encoders import load_encoder
from engine.encoders.loader import state_target
from engine.models import build_backbone
from tests.test_bad_inputs import run_cli, the_error

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
VIT = "timm:vit_tiny_patch16_224?depth=2&img_size=32&patch_size=8"
DATA = "builtin:shapes:40"


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    """(reference model, a DINO-layout checkpoint of it)."""
    torch.manual_seed(3)
    ref = build_backbone(VIT).eval()
    path = tmp_path_factory.mktemp("vit") / "dino_checkpoint.pth"
    sd = state_target(ref).state_dict()
    torch.save({"teacher": {f"backbone.{k}": v for k, v in sd.items()},
                "student": {f"module.backbone.{k}": torch.randn_like(v) for k, v in sd.items()}}, path)
    return ref, path


def reference_features(ref, spec: str = DATA) -> np.ndarray:
    from engine.data import load_dataset
    from engine.eval import extract_features

    return extract_features(ref, load_dataset(spec, ref.preprocess.image_size)).numpy()


# -- the command line ---------------------------------------------------------------------------------
def test_embed_writes_the_encoder_s_features_in_data_order(vit, tmp_path):
    ref, path = vit
    rc, out, err = run_cli(["embed", "--encoder", path, "--arch", VIT, "--data", DATA, "--projection", "none",
                            "--out", tmp_path / "emb"])
    assert rc == 0, err
    assert "loaded" in err and "under teacher.backbone" in err
    with np.load(tmp_path / "emb.npz") as z:
        assert z["indices"].tolist() == list(range(40))
        assert np.array_equal(z["features"], reference_features(ref))
    assert json.loads(out.splitlines()[-1])["feature_dim"] == 192


def test_attention_writes_maps_that_sum_to_one_and_a_png_per_image(vit, tmp_path):
    ref, path = vit
    rc, out, err = run_cli(["attention", "--encoder", path, "--arch", VIT, "--data", DATA, "--out", tmp_path / "att",
                            "--images", "3"])
    assert rc == 0, err
    with np.load(tmp_path / "att" / "attention.npz") as z:
        att = z["attention"]
        assert att.shape == (3, 3, 4, 4)  # images x heads x grid x grid
        assert np.allclose(att.sum(axis=(-2, -1)), 1, atol=1e-5)
        assert z["indices"].tolist() == [0, 20, 39] and z["mask"].shape == (3, 4, 4) and z["images"].shape[0] == 3
    assert sorted(p.name for p in (tmp_path / "att").glob("*.png")) == \
        ["image_000000.png", "image_000020.png", "image_000039.png"]
    summary = json.loads(out.splitlines()[-1])
    assert summary["heads"] == 3 and summary["kind"] == "attention"
    rc, out, err = run_cli(["attention", "--encoder", "small_cnn.safetensors", "--data", DATA, "--out", tmp_path])
    assert rc == 2 and "neither an encoder name" in the_error(err)


def test_eval_and_invariance_take_an_encoder(vit):
    ref, path = vit
    rc, out, err = run_cli(["eval", "--encoder", path, "--arch", VIT, "--train-data", DATA, "--test-data",
                            "builtin:shapes:20", "--probe-epochs", "2"])
    assert rc == 0, err
    res = json.loads(out.splitlines()[-1])
    assert res["encoder"] == str(path) and res["backbone"] == VIT and "random_init_knn_top1" in res
    rc, out, err = run_cli(["invariance", "--encoder", path, "--arch", VIT, "--data", DATA, "--images", "4"])
    assert rc == 0, err
    rows = json.loads(out.splitlines()[-1])["rows"]
    assert {r["encoder"] for r in rows} == {"dino_checkpoint.pth", "random_init"}


@pytest.mark.parametrize("args, words", [
    (["--arch", "torchvision:resnet18"], "does not fit torchvision:resnet18"),
    ([], "needs its architecture"),
    (["--arch", VIT, "--select", "ema"], "no part of"),
    (["--arch", VIT, "--run", "somewhere"], "one of them"),
])
def test_encoder_mistakes_are_one_line_and_exit_2(vit, args, words):
    _, path = vit
    rc, out, err = run_cli(["embed", "--encoder", path, *args, "--data", DATA, "--out", "unused"])
    assert rc == 2 and words in the_error(err)


def test_a_malicious_pickle_on_the_command_line_is_one_line_and_does_not_run(tmp_path):
    marker = tmp_path / "written"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    torch.save({"model": Evil()}, tmp_path / "evil.pth")
    rc, out, err = run_cli(["embed", "--encoder", tmp_path / "evil.pth", "--arch", "small_cnn", "--data", DATA,
                            "--out", tmp_path / "e"])
    assert rc == 2 and "could run code" in the_error(err)
    assert "Warning" not in err and "weights_only" not in err and not marker.exists()


# -- a run from an encoder's weights ----------------------------------------------------------------------------
def test_train_init_starts_from_the_encoder_s_weights(vit, tmp_path):
    ref, path = vit
    run = tmp_path / "run"
    rc, out, err = run_cli(["train", "--method", "random_init", "--init", path, "--arch", VIT, "--data", DATA,
                            "--epochs", "1", "--device", "cpu", "--quiet", "--no-final-eval", "--run-dir", run])
    assert rc == 0, err
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["init"], cfg["init_arch"], cfg["backbone"]) == (str(path), VIT, VIT)
    assert cfg["data"]["image_size"] == ref.preprocess.image_size
    le = load_encoder(run)  # the run folder as an encoder: its weights are the initial ones
    x = torch.rand(2, 3, 35, 35)
    with torch.no_grad():
        assert torch.equal(le.module(x), ref(x))


def test_momentum_networks_start_from_the_initial_weights_too(vit):
    from engine.cli import build_parser, config_from_args
    from engine.data import load_dataset
    from engine.methods import get_method_class
    from engine.training.learner import Learner

    ref, path = vit
    cfg = config_from_args(build_parser().parse_args(["train", "--method", "byol", "--init", str(path), "--arch", VIT,
                                                      "--data", DATA, "--epochs", "1", "--device", "cpu"]))
    cls = get_method_class("byol")
    learner = Learner.build(cfg, cls, cfg.method_config(), load_dataset(DATA, 35), torch.device("cpu"), 1)
    want = state_target(ref).state_dict()
    nets = [m for m in learner.method.modules() if type(m) is type(ref)]
    assert len(nets) == 2 and "loaded" in learner.init_report
    for net in nets:
        got = state_target(net).state_dict()
        assert all(torch.equal(got[k], want[k]) for k in want)


def test_a_method_the_wrapper_cannot_serve_is_refused_before_training(vit, tmp_path):
    _, path = vit
    rc, out, err = run_cli(["train", "--method", "mae", "--init", path, "--arch", VIT, "--data", DATA, "--epochs", "1",
                            "--run-dir", tmp_path / "mae"])
    assert rc == 2 and "needs the workbench's own ViT" in the_error(err)
    assert not (tmp_path / "mae").exists()
    rc, out, err = run_cli(["train", "--init", path, "--arch", "torchvision:resnet18", "--data", DATA, "--epochs", "1",
                            "--run-dir", tmp_path / "r18"])
    assert rc == 2 and "does not fit" in the_error(err) and not (tmp_path / "r18").exists()


def test_copy_as_command_keeps_the_initial_weights(vit):
    import shlex

    from engine.cli import build_parser, config_from_args, config_to_command

    _, path = vit
    cfg = config_from_args(build_parser().parse_args(["train", "--init", str(path), "--arch", VIT, "--select",
                                                      "teacher", "--data", DATA, "--epochs", "1"]))
    line = config_to_command(cfg.to_dict())
    assert "--init" in line and "--select teacher" in line
    again = config_from_args(build_parser().parse_args(shlex.split(line)[2:]))
    assert again.to_dict() == cfg.to_dict()


# -- the analysis process -----------------------------------------------------------------------------------
def run_op(worker, op: str, **args):
    out: list = []
    worker.emit = out.append
    worker.handle(Request(1, op, args))
    return out[-1]


@pytest.fixture(scope="module")
def opened(vit, tmp_path_factory):
    worker = AnalysisWorker(lambda r: None, "cpu")
    worker.warm.set()
    root = tmp_path_factory.mktemp("runs")
    reply = run_op(worker, "open_encoder", spec=str(vit[1]), arch=VIT, data=DATA, runs_root=str(root))
    assert reply.kind == "result", reply
    return worker, reply.data, root


def test_open_encoder_writes_a_folder_the_history_lists_as_an_encoder(opened):
    from engine.runs import list_runs

    worker, res, root = opened
    assert res["kind"] == "vit" and res["feature_dim"] == 192 and res["report"].startswith("loaded 30 tensors")
    (info,) = list_runs(root)
    assert (info.kind, info.method, info.path, info.state) == ("encoder", "encoder", res["run_dir"], "finished")
    assert info.encoder == "dino_checkpoint.pth"
    rc, out, err = run_cli(["train", "--resume", res["run_dir"]])
    assert rc == 2 and "is an opened encoder, not a run" in the_error(err) and f"--init {res['run_dir']}" in err


def test_the_map_evaluation_and_attention_work_on_an_opened_encoder(opened, vit):
    worker, res, _ = opened
    ref, _ = vit
    rd = res["run_dir"]
    ctx = worker.context(rd)
    reply = run_op(worker, "map", run_dir=rd, projection="pca", sample=5000, preview=0)
    assert reply.kind == "result", reply
    idx = np.arange(len(ctx.source("eval")))
    from engine.eval import extract_features

    got = ctx.features("eval", idx)  # in the encoder's precision (bf16 on CPUs that compute it natively)
    want = extract_features(ref, ctx.source("eval"), idx, amp_dtype=ctx.amp_dtype).numpy()
    assert np.allclose(got, want, atol=1e-6 if ctx.amp_dtype is None else 2e-2)
    exact = extract_features(ref, ctx.source("eval"), idx).numpy()
    assert (got * exact).sum(1).min() > 0.99  # the same features as float32's, up to rounding
    ev = run_op(worker, "evaluate", run_dir=rd, supervised="none", probe_epochs=2)
    assert ev.kind == "result", ev
    assert [r["kind"] for r in ev.data["rows"]] == ["run", "random_init"]
    assert ev.data["rows"][0]["name"] == "this encoder (dino_checkpoint.pth)"
    att = run_op(worker, "attention", run_dir=rd, indices=[0, 2])
    assert att.data["attention"].shape == (2, 3, 4, 4) and att.data["kind"] == "attention"
    assert np.allclose(att.data["attention"].sum(axis=(-2, -1)), 1, atol=1e-5)
    assert att.data["mask"].dtype == bool and att.data["images"].shape[0] == 2
    sim = run_op(worker, "attention", run_dir=rd, indices=[0], mode="similarity", reference=1)
    assert sim.data["attention"].shape == (1, 1, 4, 4) and abs(sim.data["attention"].sum() - 1) < 1e-5


def test_a_map_can_look_at_another_dataset(opened):
    worker, res, _ = opened
    reply = run_op(worker, "map", run_dir=res["run_dir"], projection="pca", data="builtin:shapes:24", split="train",
                   preview=0)
    assert reply.kind == "result", reply
    assert len(worker.context(res["run_dir"], "builtin:shapes:24").source("train")) == 24
    assert len(worker.context(res["run_dir"]).source("train")) == 40


def test_open_encoder_errors_are_one_line(opened, tmp_path):
    worker, _, root = opened
    for args, words in (({"spec": "torchvision:resnet18:IMAGENET9K"}, "has no weights"),
                        ({"spec": str(tmp_path / "missing.pth"), "arch": "small_cnn"}, "neither an encoder name"),
                        ({"spec": "torchvision:resnet18", "data": str(tmp_path / "nothing")}, "")):
        reply = run_op(worker, "open_encoder", runs_root=str(root), **args)
        assert reply.kind == "error" and not reply.data["traceback"] and words in reply.data["message"]
        assert "\n" not in reply.data["message"]
    assert len(list(root.iterdir())) == 1  # nothing written for a refused encoder


# -- the engine without timm ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_engine_imports_and_trains_without_timm(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['timm'] = None\n"
        "from engine.config import default_config\n"
        "from engine.session import Session\n"
        "cfg = default_config('simclr', data={'spec': 'builtin:shapes:32', 'image_size': 16}, epochs=1, device='cpu',\n"
        "                     backbone='small_cnn', eval={'final_eval': False, 'knn_every_epochs': 0})\n"
        "cfg.optim.batch_size = 8\n"
        "s = Session(cfg, run_dir=sys.argv[1]).run()\n"
        "assert s['reason'] == 'completed', s\n"
        "import engine.analysis, engine.cli, engine.encoders\n"
        "from engine.models import build_backbone\n"
        "build_backbone('torchvision:resnet18')\n"
        "try:\n"
        "    build_backbone('timm:resnet18')\n"
        "except Exception as exc:\n"
        "    assert 'timm is not installed' in str(exc), exc\n"
        "else:\n"
        "    raise SystemExit('a timm model without timm')\n"
        "assert sys.modules['timm'] is None\n"
        "print('trained without timm')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                         timeout=120, cwd=str(ROOT), env=env)
    assert out.returncode == 0 and "trained without timm" in out.stdout, out.stderr[-2000:]
