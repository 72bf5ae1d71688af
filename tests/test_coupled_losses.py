"""The losses that couple samples see the global batch, and no method can forget its group.

Two processes are simulated by two threads whose group exchanges tensors through shared slots (the
collectives of ``engine.dist.Group``: ``cat``, ``cat_nograd``, ``mean``), so every coupled loss of the
catalogue (``losses.COUPLED``) is checked against one process holding the whole batch, in milliseconds;
``tests/test_distributed.py`` checks the methods under real processes (gloo), gradients included.
"""

from __future__ import annotations

import copy
import threading

import pytest
import torch
import torch.nn.functional as F

from engine.dist import LOCAL, Group
from engine.methods import METHODS, DataInfo, losses
from engine.methods.losses import COUPLED, CoupledLosses, coupled
from engine.models.backbones import SmallCNN
from engine.params import from_dict
from tests.test_methods_catalogue import build

pytestmark = pytest.mark.usefixtures("one_thread")
WORLD = 2


class Ranks:
    """What the threads standing in for ``world`` processes hand to a collective."""

    def __init__(self, world: int):
        self.world = world
        self.slots: list = [None] * world
        self.barrier = threading.Barrier(world, timeout=20)

    def exchange(self, rank: int, x: torch.Tensor) -> list[torch.Tensor]:
        self.barrier.wait()  # every rank has read the previous exchange
        self.slots[rank] = x
        self.barrier.wait()
        return list(self.slots)


class ThreadGroup(Group):
    """Rank ``rank`` of the threads ``ranks``; records the collectives it took part in."""

    def __init__(self, ranks: Ranks, rank: int):
        super().__init__(gather=True)
        self.ranks, self._rank, self.calls = ranks, rank, []

    @property
    def world(self) -> int:
        return self.ranks.world

    @property
    def rank(self) -> int:
        return self._rank

    def cat(self, x):
        self.calls.append("cat")
        parts = self.ranks.exchange(self._rank, x)
        return torch.cat([x if r == self._rank else p.detach() for r, p in enumerate(parts)])

    def cat_nograd(self, x):
        self.calls.append("cat_nograd")
        return torch.cat([p.detach() for p in self.ranks.exchange(self._rank, x)])

    def mean(self, x):
        self.calls.append("mean")
        return torch.stack([p.detach() for p in self.ranks.exchange(self._rank, x)]).mean(0)


def on_ranks(fn, world: int = WORLD) -> list:
    """``fn(rank, group)`` on ``world`` threads, each with its ThreadGroup; their results in rank order."""
    ranks = Ranks(world)
    results: list = [None] * world
    errors: list = []

    def run(r):
        try:
            results[r] = fn(r, ThreadGroup(ranks, r))
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test's thread
            errors.append(exc)
            ranks.barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


class RecordingGroup(Group):
    """Rank 0 of two processes whose other process holds a copy of this one's rows; records the collectives
    asked of it (a loss that skips gathering on one process still gathers here)."""

    def __init__(self):
        super().__init__(gather=True)
        self.calls: list[str] = []

    @property
    def world(self) -> int:
        return 2

    @property
    def rank(self) -> int:
        return 0

    def cat(self, x):
        self.calls.append("cat")
        return torch.cat([x, x.detach()])

    def cat_nograd(self, x):
        self.calls.append("cat_nograd")
        return torch.cat([x, x]).detach()

    def mean(self, x):
        self.calls.append("mean")
        return x.detach()


# -- every coupled loss of the catalogue sees the global batch ------------------------------------------
def rows(seed: int, *shape) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def unit(seed: int, *shape) -> torch.Tensor:
    return F.normalize(rows(seed, *shape), dim=-1)


def cat_rows(parts):
    """The one-process inputs: every argument's rows of all ranks, in rank order."""
    return [torch.cat(a) if torch.is_tensor(a[0]) else a[0] for a in zip(*parts)]


def cpc_inputs(r):
    z = rows(10 + r, 6, 8)
    preds = [rows(20 + r, 4, 8), rows(30 + r, 2, 8)]
    targets = [torch.tensor([1, 2, 4, 5]), torch.tensor([3, 0])]
    return [preds, z, targets, 0.2]


def cpc_merge(parts):
    preds = [torch.cat(p) for p in zip(*(a[0] for a in parts))]
    z = torch.cat([a[1] for a in parts])
    targets = [torch.cat([t + 6 * r for r, t in enumerate(ts)]) for ts in zip(*(a[2] for a in parts))]
    return [preds, z, targets, 0.2]


# name (":variant"): (the inputs of rank r, the inputs of one process holding every rank's rows, how the
# ranks' results make the global one: "mean" of the ranks' (equal batches), or the "same" on every rank)
CASES = {
    "nt_xent": (lambda r: [rows(r, 4, 8), rows(9 + r, 4, 8), 0.2], cat_rows, "mean"),
    "info_nce": (lambda r: [rows(r, 4, 8), rows(9 + r, 4, 8), None, 0.2], cat_rows, "mean"),
    "barlow_twins_loss": (lambda r: [rows(r, 5, 6), rows(9 + r, 5, 6), 0.01], cat_rows, "same"),
    "vicreg_loss": (lambda r: [rows(r, 5, 6), rows(9 + r, 5, 6)], cat_rows, "same"),
    "predictive_nce": (cpc_inputs, cpc_merge, "mean"),
    "surrogate_loss": (lambda r: [rows(r, 3, 4, 8), 0.5],
                       lambda parts: [torch.cat([a[0] for a in parts], dim=1), 0.5], "mean"),
    "triplet_loss": (lambda r: [unit(r, 4, 8), unit(9 + r, 4, 8), 0.5, True], cat_rows, "mean"),
    "triplet_loss:random": (lambda r: [unit(r, 4, 8), unit(9 + r, 4, 8), 0.5, False], cat_rows, "mean"),
}


def results_of(out) -> dict:
    """A loss's tensors by name: the loss, then its accuracy or its parts."""
    out = out if isinstance(out, tuple) else (out,)
    named = {"loss": out[0]}
    for extra in out[1:]:
        named.update(extra if isinstance(extra, dict) else {"acc": extra})
    return {k: torch.as_tensor(v).detach().float() for k, v in named.items()}


def test_every_coupled_loss_has_a_case():
    assert {key.partition(":")[0] for key in CASES} == set(COUPLED)
    assert {"nt_xent", "info_nce", "barlow_twins_loss", "vicreg_loss"} <= set(COUPLED)


@pytest.mark.parametrize("key", list(CASES))
def test_each_coupled_loss_sees_the_global_batch(key):
    """Two ranks with half the rows each compute what one process with all the rows computes, and they do
    it by gathering through the group they are given; alone (LOCAL) each rank would compute another loss."""
    inputs, merge, how = CASES[key]
    fn = COUPLED[key.partition(":")[0]]
    per_rank = on_ranks(lambda r, group: (results_of(fn(*inputs(r), group=group)), group.calls))
    ref = results_of(fn(*merge([inputs(r) for r in range(WORLD)]), group=LOCAL))
    for _, calls in per_rank:
        assert {"cat", "cat_nograd"} & set(calls), calls
    for name, value in ref.items():
        got = [res[name] for res, _ in per_rank]
        if how == "same":
            for g in got:
                torch.testing.assert_close(g, value, rtol=1e-5, atol=1e-6)
        else:
            torch.testing.assert_close(torch.stack(got).mean(0), value, rtol=1e-5, atol=1e-6)
    alone = [results_of(fn(*inputs(r), group=LOCAL))["loss"] for r in range(WORLD)]
    local = alone[0] if how == "same" else torch.stack(alone).mean()
    assert abs(float(local) - float(ref["loss"])) > 1e-3 * abs(float(ref["loss"]))  # so the test can fail


# -- a coupled loss cannot be called without its group --------------------------------------------------
def test_a_coupled_loss_called_without_a_group_fails_at_once():
    z = rows(0, 4, 8)
    for name, fn in COUPLED.items():
        with pytest.raises(TypeError, match="group"):
            fn(*CASES[name][0](0))
    with pytest.raises(TypeError, match="keyword-only argument without default"):
        @coupled
        def forgetful(z1, z2, group: Group = LOCAL):
            return z1.sum()
    with pytest.raises(TypeError, match="keyword-only argument without default"):
        @coupled
        def positional(z1, z2, group):
            return z1.sum()
    assert "forgetful" not in COUPLED and "positional" not in COUPLED
    bound = CoupledLosses(LOCAL)
    with pytest.raises(AttributeError, match="not a loss that couples samples; those are: nt_xent"):
        bound.nt_xnet(z, z, 0.2)
    torch.testing.assert_close(bound.nt_xent(z, z.flip(0), 0.3)[0], losses.nt_xent(z, z.flip(0), 0.3, group=LOCAL)[0])


def test_set_group_binds_the_losses_of_a_method_and_of_the_methods_inside_it():
    m = build("multitask", {"tasks": {"simclr": 1.0, "rotnet": 1.0}})
    group = RecordingGroup()
    m.set_group(group)
    for method in (m, *m.tasks.values()):
        assert method.group is group and method.losses.group is group
    m.training_step(torch.rand(4, 3, 32, 32), None, torch.Generator().manual_seed(0))
    assert "cat" in group.calls  # SimCLR's loss, inside the multi-task method, went through the run's group


# -- every method that couples samples reaches them through its group -------------------------------------
# methods whose step mixes the images of a batch without being a loss over the batch: a process's own
# batch serves as well as the global one
BATCH_AS_DATA = {"counting": "the contrast image of each image is another image of its batch"}


def catalogue_method(name: str):
    cls = METHODS[name]
    if cls.input_kind == "clips":
        torch.manual_seed(0)
        return cls(from_dict(cls.Config, {}, "method_options"), SmallCNN(widths=(8, 16, 32, 32)), DataInfo(32))
    return build(name)


def couples_samples(method, x, labels) -> bool:
    """Whether the loss's gradient for image 0 changes when image 1 changes (BatchNorm, which the session
    synchronises over processes itself, held in eval mode; each step on a copy of the method after a first
    step, which sets the states that start from the first batch, such as BoW's words)."""
    method = copy.deepcopy(method)
    method.training_step(x, labels, torch.Generator().manual_seed(4))
    x2 = x.clone()
    x2[1] = torch.rand(x.shape[1:], generator=torch.Generator().manual_seed(99))
    grads = []
    for inp in (x, x2):
        m = copy.deepcopy(method).eval()
        inp = inp.clone().requires_grad_(True)
        out = m.training_step(inp, labels, torch.Generator().manual_seed(5))
        grads.append(torch.autograd.grad(out.loss, inp)[0][0])
    return float((grads[0] - grads[1]).norm()) > 1e-4 * float(grads[0].norm())


@pytest.mark.parametrize("name", [n for n, c in METHODS.items() if c.trains])
def test_a_method_whose_loss_couples_samples_gathers_them_through_its_group(name):
    method = catalogue_method(name)
    g = torch.Generator().manual_seed(0)
    shape = (4, 8, 3, 32, 32) if method.input_kind == "clips" else (4, 3, 32, 32)
    x = torch.rand(*shape, generator=g)
    labels = torch.randint(0, 10, (4,), generator=g) if method.needs_labels else None
    coupled_ = couples_samples(method, x, labels)
    group = RecordingGroup()
    method.set_group(group)
    method.training_step(x, labels, torch.Generator().manual_seed(5))
    gathered = {"cat", "cat_nograd"} & set(group.calls)
    if name in BATCH_AS_DATA:
        assert coupled_ and not gathered, f"{name}: drop it from BATCH_AS_DATA"
    elif coupled_:
        assert gathered, f"{name}'s loss couples the samples of its batch but never gathers them: call the " \
                         "coupled loss through self.losses (engine.methods.losses)"


def test_the_coupling_check_tells_them_apart():
    """The check above can fail: SimCLR's loss couples its samples, RotNet's does not."""
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert couples_samples(build("simclr"), x, None)
    assert not couples_samples(build("rotnet"), x, None)


# -- a state that follows the batch: BoW's vocabulary -----------------------------------------------------
def test_bow_vocabulary_follows_the_global_batch_on_every_rank():
    """Two ranks updating BoW's words with half the locations each keep the same words, usage and centre:
    from the first batch on, and after it those of one process with every location (dead words re-seeded
    with the first rank's draw)."""
    base = build("bow", {"words": 48, "vocab_momentum": 0.5})
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    def update(m, imgs, seed):
        loc, mean = m.local_features(imgs, with_mean=True)
        m.update_vocab(loc, torch.Generator().manual_seed(seed), mean)
        return m

    def first_batch(r, group):
        m = copy.deepcopy(base)
        m.set_group(group)
        return update(m, x[4 * r:4 * (r + 1)], 2)

    started = on_ranks(first_batch)
    assert bool(started[0].vocab_ready) and started[0].vocab.abs().sum() > 0
    for key in ("vocab", "feat_mean"):
        assert torch.equal(getattr(started[0], key), getattr(started[1], key)), key

    ref = update(copy.deepcopy(base), x, 2)
    start = copy.deepcopy(ref.state_dict())
    y = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(4))  # the next batch
    update(ref, y, 3)
    assert bool((ref.usage == 1.0 / 48).any())  # some words were dead and re-seeded: the draw matters

    def next_batch(r, group):
        m = copy.deepcopy(base)
        m.load_state_dict(start)
        m.set_group(group)
        return update(m, y[4 * r:4 * (r + 1)], 3 if r == 0 else 77)

    for m in on_ranks(next_batch):
        for key in ("vocab", "usage", "feat_mean"):
            torch.testing.assert_close(getattr(m, key), getattr(ref, key), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(start["vocab"], ref.vocab)  # the update moved the words
