"""``optim.batch_size`` auto (0): the method's CPU batch on a CPU; on a GPU its ``gpu_batch`` sized to the
step's measured memory, the learning rate scaled with it. The GPU branch runs here with the memory
probe replaced by known figures (the probe itself runs on the CPU with a fake peak counter)."""

import json
import math
from pathlib import Path

import pytest
import torch

from engine.config import default_config
from engine.data import load_dataset
from engine.methods import get_method_class
from engine.params import ConfigError
from engine.training import batch as B
from engine.training.learner import Learner

GiB = 2**30


@pytest.mark.parametrize("free_gib, per_image_mib, world, want", [
    (80, 20, 1, 512),    # plenty: the target
    (4, 20, 1, 128),     # 512 images need 10 GiB, 256 need 5: 128 (2.5 GiB) fits in 85% of 4 GiB
    (4, 20, 2, 256),     # the same GPUs, two processes: each takes half the batch
    (0.01, 20, 1, 2),    # nothing fits: the smallest batch, for the step itself to say so
    (0.01, 20, 4, 8),    # ... at least 2 a process
])
def test_fit_batch_halves_until_the_step_fits(free_gib, per_image_mib, world, want):
    mem = B.StepMemory(fixed=0.0, per_image=per_image_mib * 2**20, free=free_gib * GiB)
    assert B.fit_batch(512, world, mem) == want


def test_fixed_memory_counts_too():
    # 512 images take 2 GiB; with 3.5 GiB of weights and optimiser state 5.5 > 0.85 * 6: 256 fits (4.5 GiB)
    mem = B.StepMemory(fixed=3.5 * GiB, per_image=4 * 2**20, free=6 * GiB)
    assert B.fit_batch(512, 1, mem) == 256


def test_lr_scales_by_the_optimiser_rule():
    assert B.scaled_lr(2e-3, "adamw", 512, 128) == pytest.approx(4e-3)  # square root
    assert B.scaled_lr(0.1, "sgd", 512, 128) == pytest.approx(0.4)  # linear
    assert B.scaled_lr(0.1, "lars", 128, 128) == pytest.approx(0.1)


def _learner(method="simclr", spec="builtin:shapes:32"):
    cfg = default_config(method, data={"spec": spec, "image_size": 16}, backbone="small_cnn", epochs=1)
    data = load_dataset(spec, 16)
    cls = get_method_class(method)
    learner = Learner.build(cfg, cls, cfg.method_config(), data, torch.device("cpu"), 1)
    return cfg, cls, learner, data


def test_auto_on_a_cpu_takes_the_methods_cpu_batch_and_keeps_the_lr():
    cfg, cls, learner, data = _learner()
    assert cfg.optim.batch_size == 0  # the default is auto
    lr = cfg.optim.lr
    notes = B.resolve_batch(cfg, cls, learner, data, torch.device("cpu"), 1)
    assert cfg.optim.batch_size == cls.run_defaults()["optim"]["batch_size"] == 128
    assert cfg.optim.lr == lr
    assert notes == ["batch size auto: 128, the method's batch on a CPU"]


def test_a_batch_the_user_set_is_left_alone():
    cfg, cls, learner, data = _learner()
    cfg.optim.batch_size = 48
    assert B.resolve_batch(cfg, cls, learner, data, torch.device("cuda"), 1) == []
    assert cfg.optim.batch_size == 48


def test_auto_on_a_gpu_sizes_the_batch_to_the_measured_memory(monkeypatch):
    cfg, cls, learner, data = _learner()
    seen = {}

    def probe(learner_, sample, labels, device, peak=None):
        seen["sample"] = tuple(sample.shape)
        return B.StepMemory(fixed=0.5 * GiB, per_image=12 * 2**20, free=5 * GiB)  # 512: 6.5 GiB; 256: 3.5

    monkeypatch.setattr(B, "probe_step_memory", probe)
    lr = cfg.optim.lr
    notes = B.resolve_batch(cfg, cls, learner, data, torch.device("cuda"), 1)
    assert seen["sample"][1:] == (3, 16, 16)  # real images of the dataset
    assert cfg.optim.batch_size == 256
    assert cfg.optim.lr == pytest.approx(lr * math.sqrt(256 / 128))
    assert "batch size auto: 256" in notes[0] and "scaled to" in notes[0] and "5.0 GiB free" in notes[0]


def test_the_probe_measures_two_steps_and_leaves_the_method_as_it_was():
    cfg, cls, learner, data = _learner("moco")  # BatchNorm statistics, a key queue and a momentum encoder
    method = learner.method
    before = {k: v.clone() for k, v in method.state_dict().items()}
    sizes, grads_seen = [], []
    figures = iter([1_000_000 + 8 * 50_000, 1_000_000 + 16 * 50_000])

    def peak(fn):
        fn()
        grads_seen.append(any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.parameters()))
        sizes.append(1)
        return float(next(figures))

    sample, labels, _ = next(iter(data.batches(8, torch.arange(8))))
    mem = B.probe_step_memory(learner, sample, labels, torch.device("cpu"), peak)
    assert grads_seen == [True, True]  # the probe ran real training steps, backward included
    assert mem.per_image == pytest.approx(50_000)
    params = sum(p.numel() * p.element_size() for p in method.parameters() if p.requires_grad)
    assert mem.fixed == pytest.approx(1_000_000 + 2 * params)  # + AdamW's two moments
    after = method.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the probe changed the method's state"
    assert all(p.grad is None for p in method.parameters())


def test_a_run_with_auto_records_the_batch_it_took(tmp_path):
    from engine.session import Session

    cfg = default_config("rotnet", epochs=1, runs_root=str(tmp_path), backbone="small_cnn", device="cpu",
                         data={"spec": "builtin:shapes:300", "image_size": 16},
                         eval={"knn_every_epochs": 0, "final_eval": False})
    got = []
    summary = Session(cfg, got.append).run()
    assert summary["reason"] == "completed", summary
    saved = json.loads((Path(summary["run_dir"]) / "config.json").read_text())
    assert saved["optim"]["batch_size"] == 128  # resolved: a resume takes the same batch on any device
    assert cfg.optim.batch_size == 0  # the caller's config is not changed
    steps = [m for m in got if type(m).__name__ == "RunStarted"]
    assert any("batch size auto: 128" in n for m in steps for n in m.notes)


def test_auto_is_a_word_on_the_command_line_and_in_config_files():
    from engine.cli import build_parser, config_from_args

    args = build_parser().parse_args(["train", "--batch-size", "auto", "--epochs", "1"])
    assert args.batch_size == 0
    assert config_from_args(args).optim.batch_size == 0
    assert config_from_args(build_parser().parse_args(["train", "--batch-size", "32"])).optim.batch_size == 32
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--batch-size", "lots"])
    from engine.config import RunConfig

    assert RunConfig.from_dict({"optim": {"batch_size": "auto"}}).optim.batch_size == 0
    with pytest.raises(ConfigError, match=r"1 is below the minimum 2 \(or 0: auto\)"):
        RunConfig.from_dict({"optim": {"batch_size": 1}})


def test_the_form_shows_auto_for_zero(qtbot):
    from app.common.controls import ParamControl
    from engine.config import OptimConfig
    from engine.params import field_specs

    spec = next(s for s in field_specs(OptimConfig) if s["name"] == "batch_size")
    c = ParamControl(spec)
    qtbot.addWidget(c)
    assert c.w.text() == "auto" and c.value() == 0
    c.set_value(64)
    assert c.w.text() == "64"
