"""The method bases: the momentum base (BYOL, MoCo, DINO, BoW) computes what each method computed with its
own wiring before it, bit for bit on the CPU; the two-view base keeps the options of the methods on it.

The references below are the old code, kept here: each method made its frozen copies with
``momentum_copy``, had its own ``momentum_at`` and called ``ema_update`` on its pairs in ``after_step``.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from engine.dist import LOCAL
from engine.methods import METHODS
from engine.methods.losses import byol_loss, dino_loss, info_nce
from engine.methods.momentum import MomentumMethod
from engine.methods.views import ContrastiveViews, TwoViewMethod, build_views
from engine.pretext.base import generator_for
from engine.pretext.views import multi_view
from tests.test_methods_catalogue import batch, build

pytestmark = pytest.mark.usefixtures("one_thread")


# -- the old wiring ---------------------------------------------------------------------------------------
def old_copy(module):
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def old_ema(target, online, momentum):
    for pt, po in zip(target.parameters(), online.parameters()):
        pt.mul_(momentum).add_(po.detach(), alpha=1 - momentum)
    for bt, bo in zip(target.buffers(), online.buffers()):
        bt.copy_(bo)


def old_momentum(base: float, progress: float, schedule: bool) -> float:
    if not schedule:
        return base
    return 1 - (1 - base) * (math.cos(math.pi * min(1.0, max(0.0, progress))) + 1) / 2


def old_byol(m, x, g):
    v1, v2 = multi_view(x, build_views(m.cfg.views, m.cfg.augment, 32), g).inputs
    both = torch.cat([v1, v2])
    p1, p2 = m.predictor(m.projector(m.backbone(both))).chunk(2)
    with torch.no_grad():
        z1, z2 = m.target_projector(m.target_backbone(both)).chunk(2)
    return (byol_loss(p1, z2) + byol_loss(p2, z1)) / 2


def old_moco(m, x, g):
    v1, v2 = multi_view(x, build_views(m.cfg.views, m.cfg.augment, 32), g).inputs
    queue = m.queue.clone() if m.queue.shape[0] else None
    q1, q2 = m.projector(m.backbone(torch.cat([v1, v2]))).chunk(2)
    with torch.no_grad():
        k1, k2 = (F.normalize(m.key_projector(m.key_backbone(v)).float(), dim=1) for v in (v1, v2))
    l1, _ = info_nce(q1, k2, queue, m.cfg.temperature, group=LOCAL)
    l2, _ = info_nce(q2, k1, queue, m.cfg.temperature, group=LOCAL)
    m._enqueue(torch.cat([k1, k2]))
    return (l1 + l2) / 2


def old_dino(m, x, g):
    cfg = m.cfg
    v1, v2 = build_views(cfg.views, cfg.augment, 32)
    views = m.crops(x, (dataclasses.replace(v1, crop_scale_min=cfg.global_crop_min),
                        dataclasses.replace(v2, crop_scale_min=cfg.global_crop_min)), g).inputs
    b = x.shape[0]
    glob = torch.cat(views[:2])
    with torch.no_grad():
        t = m.teacher_head(m.teacher_backbone(glob))
    s_out = list(m.head(m.backbone(glob)).split(b)) + list(m.head(m.backbone(torch.cat(views[2:]))).split(b))
    loss = dino_loss(s_out, list(t.split(b)), m.center, cfg.student_temp, cfg.teacher_temp)
    with torch.no_grad():
        m.center.mul_(cfg.center_momentum).add_(t.float().mean(0, keepdim=True), alpha=1 - cfg.center_momentum)
    return loss


# name: (the old step's loss, the old pairs (target, online), whether the momentum rose along the cosine)
OLD = {
    "byol": (old_byol, [("target_backbone", "backbone"), ("target_projector", "projector")],
             lambda cfg: cfg.momentum_schedule),
    "moco": (old_moco, [("key_backbone", "backbone"), ("key_projector", "projector")],
             lambda cfg: cfg.momentum_schedule),
    "dino": (old_dino, [("teacher_backbone", "backbone"), ("teacher_head", "head")],
             lambda cfg: cfg.momentum_schedule),
    "bow": (lambda m, x, g: m.training_step(x, None, g).loss, [("teacher_backbone", "backbone")],
            lambda cfg: True),
}
OPTIONS = {"byol": {"momentum": 0.9}, "moco": {"momentum": 0.9, "momentum_schedule": True},
           "dino": {"local_crops": 1}, "bow": {"words": 16, "momentum": 0.9, "teacher_warmup": 0}}


def states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", list(OLD))
def test_one_step_is_bit_identical_to_the_old_wiring(name):
    """Same targets after construction, the same loss of one step and the same targets after the update,
    bit for bit: the momentum base changed nothing that a run computes."""
    old_step, pairs, schedule = OLD[name]
    new = build(name, OPTIONS[name]).train()
    old = copy.deepcopy(new)
    for target, online in pairs:  # the old code's copies, made from the online modules
        setattr(old, target, old_copy(getattr(old, online)))
        assert states_equal(getattr(new, target), getattr(old, target)), target
    x, _ = batch(8)
    progress = 0.3
    losses = []
    for m, step in ((new, lambda m: m.training_step(x, None, generator_for(3)).loss),
                    (old, lambda m: old_step(m, x, generator_for(3)))):
        opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.5)
        loss = step(m)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    new.after_step(progress)
    momentum = old_momentum(old.cfg.momentum, progress, schedule(old.cfg))
    for target, online in pairs:
        old_ema(getattr(old, target), getattr(old, online), momentum)
    assert torch.equal(losses[0], losses[1]), losses
    assert states_equal(new, old)  # online weights, targets, BatchNorm statistics, queue, centre
    assert not states_equal(new, build(name, OPTIONS[name]))  # the step changed something to compare


@pytest.mark.parametrize("name", list(OLD))
def test_momentum_pairs_keep_their_checkpoint_names(name):
    """``momentum_pairs`` lists the (online, target) modules under the names old checkpoints carry, and an
    old method's state loads into the new one."""
    _, pairs, _ = OLD[name]
    m = build(name, OPTIONS[name])
    assert isinstance(m, MomentumMethod)
    assert [(id(o), id(t)) for o, t in m.momentum_pairs] == [(id(getattr(m, on)), id(getattr(m, tg))) for tg, on in pairs]
    keys = list(m.state_dict())
    for target, online in pairs:
        assert [k for k in keys if k.startswith(target + ".")] == \
            [target + k[len(online):] for k in keys if k.startswith(online + ".")]
    old = copy.deepcopy(m)
    for target, online in pairs:
        setattr(old, target, old_copy(getattr(old, online)))
    build(name, OPTIONS[name]).load_state_dict(old.state_dict())  # strict: the same names


def test_momentum_at_follows_the_config():
    byol = build("byol", {"momentum": 0.8, "momentum_schedule": False})
    assert byol.momentum_at(0.5) == 0.8
    moco = build("moco", {"momentum": 0.8, "momentum_schedule": True})
    assert moco.momentum_at(0.0) == pytest.approx(0.8) and moco.momentum_at(1.0) == 1.0
    assert moco.momentum_at(0.5) == pytest.approx(0.9)
    bow = build("bow", {"momentum": 0.8})  # no schedule option: its momentum always rises
    assert bow.momentum_at(0.5) == pytest.approx(0.9)


def test_a_target_name_is_declared_once():
    m = build("byol")
    with pytest.raises(ValueError, match="already has a module named target_projector"):
        m.add_momentum_targets(target_projector="projector")
    with pytest.raises(ValueError, match="already has a module named predictor"):
        m.add_momentum_targets(predictor="projector")


# -- the two-view base ------------------------------------------------------------------------------------
TWO_VIEW = [n for n, c in METHODS.items() if issubclass(c.Config, ContrastiveViews)]


def test_the_two_view_methods_take_their_options_and_views_from_the_base():
    assert sorted(TWO_VIEW) == sorted(["simclr", "moco", "byol", "simsiam", "dino", "barlow_twins", "vicreg",
                                       "exemplar"])
    assert [f.name for f in dataclasses.fields(ContrastiveViews)] == ["views", "augment"]
    for name in TWO_VIEW:
        cls = METHODS[name]
        assert issubclass(cls, TwoViewMethod), name
        assert [f.name for f in dataclasses.fields(cls.Config)][:2] == ["views", "augment"], name
        m = build(name)
        cfg = m.cfg
        expect = build_views(cfg.views, cfg.augment, 32)
        if name == "dino":  # DINO's global crops have their own smallest size
            expect = tuple(dataclasses.replace(v, crop_scale_min=cfg.global_crop_min) for v in expect)
        assert m.views == expect, name


def test_the_two_view_batch_is_one_view_of_every_image_per_config():
    m = build("vicreg", {"augment": {"crop_scale_min": 0.9}})
    assert all(v.crop_scale_min == 0.9 for v in m.views)
    x, _ = batch(4)
    got = m.make_batch(x, generator_for(2), preview=True)
    want = multi_view(x, m.views, generator_for(2), with_params=True)
    assert len(got.inputs) == 2 and all(torch.equal(a, b) for a, b in zip(got.inputs, want.inputs))
    assert got.meta["num_views"] == 2 and len(got.meta["params"]) == 2
