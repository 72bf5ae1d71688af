"""Every registered method: a few training steps, the loss goes down on a small run, previews
draw images, reconstruction methods reconstruct, momentum targets move by the configured amount."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.methods import METHODS, DataInfo
from engine.models.backbones import SmallCNN, ViT
from engine.params import ConfigError, from_dict
from engine.pretext.base import generator_for

ROOT = Path(__file__).resolve().parents[1]
# methods that train on images; the clip methods (input_kind "clips") have the same checks on clips in test_video.py
IMAGE_METHODS = [n for n, c in METHODS.items() if c.input_kind == "images"]
TRAINABLE = [n for n in IMAGE_METHODS if METHODS[n].trains]
# small option sets keep the CPU cost of the tests low; the defaults are exercised by the previews
SMALL = {
    "moco": {"queue_size": 64, "proj_hidden": 32, "proj_dim": 16},
    "byol": {"proj_hidden": 32, "proj_dim": 16},
    "simsiam": {"proj_dim": 32, "pred_hidden": 8},
    "barlow_twins": {"proj_dim": 32},
    "vicreg": {"proj_dim": 32},
    "dino": {"out_dim": 64, "head_hidden": 32, "bottleneck": 16},
    "simclr": {"proj_hidden": 32, "proj_dim": 16},
    "jigsaw": {"permutations": 10, "head_hidden": 32},
    "context": {"head_hidden": 32},
    "rotnet": {"head_hidden": 32},
    "mae": {"decoder_dim": 32, "decoder_depth": 1},
    "multitask": {"tasks": {"context": 1.0, "rotnet": 0.5, "denoising": 1.0},
                  "task_options": {"denoising": {"decoder_width": 16}}},
    **{n: {"decoder_width": 16} for n in ("colorization", "inpainting", "denoising", "superres", "split_brain")},
    "exemplar": {"copies": 3, "proj_hidden": 32, "proj_dim": 16},
    "relative_transform": {"head_hidden": 32},
    "counting": {"count_dim": 16, "head_hidden": 32},
    "bow": {"words": 16, "head_hidden": 32},
    "ssgan": {"z_dim": 16, "gen_width": 8},
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest


def tiny_backbone(kind: str):
    torch.manual_seed(0)
    if kind == "vit":
        return ViT(32, patch=8, dim=32, depth=1, heads=2)
    return SmallCNN(widths=(8, 16, 32, 32))


def build(name: str, options: dict | None = None, kind: str | None = None):
    cls = METHODS[name]
    kind = kind or ("vit" if cls.backbone_kind == "vit" else "cnn")
    cfg = from_dict(cls.Config, {**SMALL.get(name, {}), **(options or {})}, "method_options")
    return cls(cfg, tiny_backbone(kind), DataInfo(image_size=32, num_classes=10 if cls.needs_labels else 0))


def batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def train(method, steps: int, lr: float = 3e-3, fixed: bool = True, n: int = 16) -> list[float]:
    """``steps`` optimiser steps on one fixed batch (and, if ``fixed``, the same pretext draw)."""
    x, y = batch(n)
    opt = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=lr)
    losses = []
    method.train()
    for s in range(steps):
        out = method.training_step(x, y, generator_for(0 if fixed else s))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        method.after_step(s / steps)
        losses.append(float(out.loss.detach()))
    return losses


@pytest.mark.parametrize("name", TRAINABLE)
def test_training_steps_are_finite_and_change_the_encoder(name):
    m = build(name)
    before = {k: v.clone() for k, v in m.backbone.state_dict().items()}
    x, y = batch()
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.01)
    for s in range(2):
        out = m.training_step(x, y, generator_for(s))
        assert out.loss.ndim == 0 and torch.isfinite(out.loss), f"{name}: loss {out.loss}"
        for k, v in out.metrics.items():
            assert math.isfinite(float(v)), f"{name}: metric {k} = {v}"
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        m.after_step(0.5)
    changed = any(not torch.equal(before[k], v) for k, v in m.backbone.state_dict().items() if v.is_floating_point())
    assert changed, f"{name} did not train its encoder"
    assert m.encoder is m.backbone


# DINO's loss is a cross-entropy to a moving target: on one fixed batch of noise the centre soon
# equals the teacher's output and the target flattens, so its loss may rise while the student
# learns. With the teacher and the centre held still, the student's loss must fall.
LOSS_OPTIONS = {"dino": {"momentum": 1.0, "momentum_schedule": False, "center_momentum": 1.0},
                "bow": {"momentum": 1.0, "vocab_momentum": 1.0, "teacher_warmup": 0}}  # BoW's targets move with teacher and words too


@pytest.mark.parametrize("name", TRAINABLE)
def test_loss_decreases_on_a_small_run(name):
    torch.manual_seed(0)
    m = build(name, LOSS_OPTIONS.get(name))
    losses = train(m, 20)
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert np.isfinite(losses).all()
    assert last < first - 0.05 * abs(first), f"{name}: loss {first:.4f} -> {last:.4f} ({losses})"


@pytest.mark.parametrize("name", ["dino", "denoising", "colorization", "byol"])
def test_methods_for_any_backbone_train_on_a_vit(name):
    m = build(name, kind="vit")
    losses = train(m, 2)
    assert np.isfinite(losses).all()


@pytest.mark.parametrize("name", IMAGE_METHODS)
def test_preview_rows_have_images(name):
    from engine.pretext.tiles import to_uint8
    from engine.preview import build_preview_method, preview

    x, _ = batch(3)
    res = preview(name, to_uint8(x), seed=4)
    assert res.kind == METHODS[name].preview_kind and res.rows
    for row in res.rows:
        assert row.title and row.tiles
        for t in row.tiles:
            assert t.image.dtype == np.uint8 and t.image.ndim == 3 and t.image.shape[2] == 3
            assert min(t.image.shape[:2]) >= 4 and t.caption
            for x0, y0, x1, y1, color, _label in t.boxes:
                assert 0 <= x0 < x1 <= t.image.shape[1] and 0 <= y0 < y1 <= t.image.shape[0]
                assert color.startswith("#")
    again = preview(name, to_uint8(x), seed=4)
    assert all(np.array_equal(a.image, b.image) for ra, rb in zip(res.rows, again.rows)
               for a, b in zip(ra.tiles, rb.tiles))
    m = build_preview_method(name, None, 32)
    assert METHODS[name].description and METHODS[name].summary and "\n" not in METHODS[name].summary
    assert m.paper


@pytest.mark.parametrize("name", ["colorization", "inpainting", "denoising", "superres", "mae", "multitask",
                                  "split_brain", "ssgan"])
def test_reconstruction_methods_show_input_and_output(name):
    options = {"tasks": {"inpainting": 1.0, "rotnet": 1.0},
               "task_options": {"inpainting": {"decoder_width": 16}}} if name == "multitask" else None
    m = build(name, options).eval()
    x, _ = batch(4)
    out = m.reconstruct(x, generator_for(0))
    assert out is not None
    seen, recon = out
    assert seen.shape == recon.shape == x.shape
    assert recon.min() >= 0 and recon.max() <= 1
    assert not torch.allclose(seen, x)  # the model saw a corrupted image


def test_inpainting_reconstruction_keeps_the_context():
    m = build("inpainting", {"mask": "center"}).eval()
    x, _ = batch(2)
    seen, recon = m.reconstruct(x, generator_for(0))
    assert torch.equal(recon[:, :, :8], x[:, :, :8])  # outside the hole: the input as it was
    assert not torch.allclose(recon[:, :, 8:24, 8:24], seen[:, :, 8:24, 8:24])


def test_inpainting_adversarial_term_trains_the_discriminator():
    m = build("inpainting", {"adversarial_weight": 0.001})
    before = copy.deepcopy(m.discriminator.state_dict())
    out = m.training_step(*batch(), generator_for(0))
    assert {"d_loss", "g_adv", "hole_mse"} <= set(out.metrics)
    torch.optim.SGD(m.parameters(), lr=0.1).zero_grad()
    out.loss.backward()
    assert m.discriminator.net[0].weight.grad is not None and m.decoder.net[0].weight.grad is not None
    assert all(torch.equal(before[k], v) for k, v in m.discriminator.state_dict().items() if "running" not in k
               and "num_batches" not in k)


# -- momentum / EMA targets ------------------------------------------------------------------------
PAIRS = {"moco": [("key_backbone", "backbone"), ("key_projector", "projector")],
         "byol": [("target_backbone", "backbone"), ("target_projector", "projector")],
         "dino": [("teacher_backbone", "backbone"), ("teacher_head", "head")]}


@pytest.mark.parametrize("name", list(PAIRS))
@pytest.mark.parametrize("schedule", [False, True])
def test_momentum_update_moves_the_target_by_the_configured_amount(name, schedule):
    m = build(name, {"momentum": 0.9, "momentum_schedule": schedule})
    with torch.no_grad():  # make the online network differ from its target
        for _tgt, onl in PAIRS[name]:
            for p in getattr(m, onl).parameters():
                p.add_(torch.randn_like(p) * 0.1)
    old = {t: [p.clone() for p in getattr(m, t).parameters()] for t, _ in PAIRS[name]}
    progress = 0.3
    m.after_step(progress)
    expect_m = 1 - 0.1 * (math.cos(math.pi * progress) + 1) / 2 if schedule else 0.9
    for tgt, onl in PAIRS[name]:
        t_params = list(getattr(m, tgt).parameters())
        o_params = list(getattr(m, onl).parameters())
        assert len(t_params) == len(o_params) > 0
        for pt, po, p_old in zip(t_params, o_params, old[tgt]):
            assert not pt.requires_grad
            torch.testing.assert_close(pt, expect_m * p_old + (1 - expect_m) * po, rtol=1e-6, atol=1e-6)
        for bt, bo in zip(getattr(m, tgt).buffers(), getattr(m, onl).buffers()):
            assert torch.equal(bt, bo)  # BatchNorm statistics follow the online network


def test_momentum_targets_are_not_optimised():
    for name in PAIRS:
        m = build(name)
        groups = m.param_groups(0.01)
        ids = {id(p) for g in groups for p in g["params"]}
        for tgt, _ in PAIRS[name]:
            assert not any(id(p) in ids for p in getattr(m, tgt).parameters())


def test_dino_centre_is_an_ema_of_the_teacher_outputs():
    m = build("dino", {"center_momentum": 0.8})
    m.train()
    x, _ = batch()
    twin = copy.deepcopy(m)
    views = twin.make_batch(x, generator_for(7)).inputs
    with torch.no_grad():
        t = twin.teacher_head(twin.teacher_backbone(torch.cat(views[:2])))
    assert torch.count_nonzero(m.center) == 0
    m.training_step(x, None, generator_for(7))
    torch.testing.assert_close(m.center, 0.2 * t.mean(0, keepdim=True), rtol=1e-4, atol=1e-6)


def test_moco_queue_takes_the_keys():
    m = build("moco", {"queue_size": 64, "symmetric": True})
    before = m.queue.clone()
    m.training_step(*batch(8), generator_for(0))
    assert int(m.queue_ptr) == 16
    assert not torch.equal(m.queue[:16], before[:16]) and torch.equal(m.queue[16:], before[16:])
    torch.testing.assert_close(m.queue[:16].norm(dim=1), torch.ones(16))


# -- options and the catalogue ---------------------------------------------------------------------
def test_multitask_default_options_fit_any_task_choice():
    cfg = from_dict(METHODS["multitask"].Config, {"tasks": {"context": 1.0}}, "method_options")
    assert cfg.task_options  # the default options of an unchosen task are kept and ignored
    m = METHODS["multitask"](cfg, tiny_backbone("cnn"), DataInfo(32))
    assert list(m.tasks) == ["context"]


def test_multitask_shares_one_encoder_and_sums_weighted_losses():
    m = build("multitask", {"tasks": {"rotnet": 2.0, "denoising": 0.5}})
    assert all(t.backbone is m.backbone for t in m.tasks.values())
    n_enc = sum(1 for _ in m.backbone.parameters())
    ids = [id(p) for g in m.param_groups(0.0) for p in g["params"]]
    assert len(ids) == len(set(ids))  # the shared encoder is optimised once
    assert n_enc <= len(ids)
    out = m.training_step(*batch(), generator_for(0))
    torch.testing.assert_close(out.loss, 2.0 * out.metrics["rotnet_loss"] + 0.5 * out.metrics["denoising_loss"])


@pytest.mark.parametrize("name,options,fragment", [
    ("multitask", {"tasks": {"nope": 1.0}}, "cannot be a task"),
    ("multitask", {"tasks": {"supervised": 1.0}}, "cannot be a task"),
    ("multitask", {"tasks": {"rotnet": 0.0}}, "weight above 0"),
    ("multitask", {"tasks": {"rotnet": 1.0}, "task_options": {"rotnet": {"bogus": 1}}}, "bogus"),
    ("multitask", {"tasks": {"rotnet": 1.0}, "task_options": {"rotnet_": {}}}, "not a method"),
    ("cpc", {"grid": 3, "steps": 3}, "smaller than the grid"),
    ("denoising", {"noise": "pink"}, "choose one of"),
])
def test_bad_options_say_what_is_wrong(name, options, fragment):
    with pytest.raises(ConfigError) as exc:
        from_dict(METHODS[name].Config, options, "method_options")
    assert fragment in str(exc.value)


def test_cnn_only_methods_refuse_a_vit():
    with pytest.raises(ConfigError, match="CNN"):
        build("context", kind="vit")


def test_main_methods_lists_every_method():
    out = subprocess.run([sys.executable, "main.py", "methods"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    listed = out.stdout.split()
    assert listed == list(METHODS)
    for name in ("context", "colorization", "inpainting", "denoising", "superres", "moco", "byol", "simsiam",
                 "barlow_twins", "vicreg", "dino", "cpc", "multitask"):
        assert name in listed


def test_the_catalogue_exports_recipes_that_make_valid_configs():
    """A method's recipe (config overrides and why) reaches the catalogue; applied to the method's own default
    config it is a valid config whose data spec parses. Colorization has one."""
    from engine.config import RunConfig, default_config
    from engine.data import describe_spec, load_dataset
    from engine.methods import method_catalogue

    cat = {m["name"]: m for m in method_catalogue()}
    assert cat["colorization"]["recipe"]["overrides"]["data.spec"] == "builtin:shapes?colours=typical"
    assert cat["colorization"]["recipe"]["why"]
    assert cat["simclr"]["recipe"] == {}
    for name, m in cat.items():
        if not m["recipe"]:
            continue
        d = default_config(name).to_dict()
        for path, value in m["recipe"]["overrides"].items():
            *parents, leaf = path.split(".")
            cur = d
            for part in parents:
                cur = cur[part]
            assert leaf in cur, (name, path)  # a path the config has
            cur[leaf] = value
        cfg = RunConfig.from_dict(d)
        if describe_spec(cfg.data.spec) == "builtin":
            assert len(load_dataset(cfg.data.spec, 16, max_images=32)) == 32  # raises on a spec that does not parse
        assert "\n" not in m["recipe"]["why"] and len(m["recipe"]["why"]) < 300
