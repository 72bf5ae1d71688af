"""Issue 14's methods: exemplar, relative_transform, split_brain, counting, bow, ssgan. Their
targets say what was really done to the images (steps, loss and previews of every registered
method are covered by test_methods_catalogue)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.methods import METHODS, DataInfo, method_catalogue
from engine.models.backbones import SmallCNN
from engine.params import from_dict
from engine.pretext.affine import decompose, random_similarity, similarity_matrix, warp
from engine.pretext.base import generator_for
from engine.pretext.color import AB_RANGE, rgb_to_lab

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest

NEW = ("exemplar", "relative_transform", "split_brain", "counting", "bow", "ssgan")


def build(name, **options):
    torch.manual_seed(0)
    cls = METHODS[name]
    cfg = from_dict(cls.Config, options, "method_options")
    return cls(cfg, SmallCNN(widths=(8, 16, 32, 32)), DataInfo(image_size=32))


def images(n=8, seed=0, size=32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_all_six_are_registered_with_their_texts():
    cat = {c["name"]: c for c in method_catalogue()}
    for name in NEW:
        c = cat[name]
        assert c["trains"] and c["description"] and c["paper"] and c["options"] is not None
    assert cat["ssgan"]["reconstruct_captions"][2] == "what the generator draws"
    assert cat["rotnet"]["reconstruct_captions"] == []


# -- affine warps ----------------------------------------------------------------------------------
def test_similarity_warp_of_90_degrees_is_rot90_and_decompose_inverts_it():
    x = images(2, size=8)
    m = similarity_matrix(torch.tensor([90.0, 90.0]), torch.ones(2), torch.zeros(2, 2))
    torch.testing.assert_close(warp(x, m), torch.rot90(x, 1, dims=(2, 3)), atol=1e-5, rtol=0)
    p = random_similarity(64, generator_for(1), "cpu", 180.0, (0.7, 1.4), 0.3)
    d = decompose(similarity_matrix(**p))
    torch.testing.assert_close(d["angle"], p["angle"], atol=1e-3, rtol=0)
    torch.testing.assert_close(d["scale"], p["scale"], atol=1e-5, rtol=0)
    torch.testing.assert_close(d["shift"], p["shift"], atol=1e-6, rtol=0)


# -- relative transformation -----------------------------------------------------------------------
def _blob(n, size=32):
    """Images with one bright Gaussian blob each, away from the centre (an orientation to track)."""
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    g = torch.Generator().manual_seed(5)
    c = 10 + 12 * torch.rand(n, 2, generator=g)
    blob = torch.exp(-((xs - c[:, 0, None, None]) ** 2 + (ys - c[:, 1, None, None]) ** 2) / (2 * 1.5 ** 2))
    return blob.unsqueeze(1).expand(n, 3, size, size).contiguous()


def _centroid(img):
    """Centre of mass of channel 0 in normalised coordinates (x, y) in [-1, 1]."""
    w = img[:, 0].clamp(min=0) ** 2
    size = img.shape[-1]
    coords = (torch.arange(size).float() + 0.5) / size * 2 - 1
    tot = w.sum((1, 2))
    return torch.stack([(w.sum(1) * coords).sum(1) / tot, (w.sum(2) * coords).sum(1) / tot], 1)


def test_relative_transform_targets_map_view1_onto_view2():
    m = build("relative_transform", crop_scale_min=1.0, max_shift=0.1, scale_min=0.9, scale_max=1.1,
              padding="zeros")
    x = _blob(16)
    batch = m.make_batch(x, generator_for(3))
    v1, v2 = batch.inputs
    mat = batch.targets.view(-1, 2, 3)
    c1, c2 = _centroid(v1), _centroid(v2)
    where = torch.einsum("bij,bj->bi", mat[:, :, :2], c1) + mat[:, :, 2]  # the target carries the blob here
    assert (where - c2).abs().max() < 2.0 / 32  # within a pixel (normalised units: 2 = the side)
    d = decompose(mat)
    torch.testing.assert_close(d["angle"], batch.meta["angle"], atol=1e-3, rtol=0)
    torch.testing.assert_close(d["scale"], batch.meta["scale"], atol=1e-5, rtol=0)
    assert batch.meta["angle"].abs().max() > 90  # the whole circle by default


# -- split-brain -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["regression", "classification"])
def test_split_brain_targets_are_the_other_channels(mode):
    m = build("split_brain", mode=mode, crop_scale_min=1.0, out_stride=2, decoder_width=16)
    x = images(4)
    batch = m.split(x)
    lab = rgb_to_lab(x)
    l_split, ab_split = batch.inputs
    # split 1 is lightness only: three equal channels holding L / 100
    torch.testing.assert_close(l_split[:, 0], (lab[:, 0] / 100).clamp(0, 1), atol=1e-5, rtol=0)
    assert torch.equal(l_split[:, 0], l_split[:, 1]) and torch.equal(l_split[:, 1], l_split[:, 2])
    # split 2 is colour only: constant lightness, the image's ab (where in gamut)
    lab2 = rgb_to_lab(ab_split)
    assert (lab2[:, 0] - 65).abs().median() < 1.0
    ab_t, l_t = batch.targets
    pooled = F.adaptive_avg_pool2d(lab, 16)
    if mode == "regression":
        torch.testing.assert_close(ab_t * AB_RANGE, pooled[:, 1:], atol=1e-3, rtol=0)  # L's target: ab
        torch.testing.assert_close(l_t * 100, pooled[:, :1], atol=1e-3, rtol=0)  # ab's target: L
    else:
        assert torch.equal(l_t, (pooled[:, 0] / 2).floor().clamp(0, 49).long())  # 50 bins of 2 units
        assert torch.equal(ab_t.argmax(1), batch.meta["bins"])
        torch.testing.assert_close(ab_t.sum(1), torch.ones_like(ab_t[:, 0]))


def test_split_brain_halves_see_only_their_own_split():
    m = build("split_brain", decoder_width=16).eval()
    x, y = images(2, seed=1), images(2, seed=2)
    bx, by = m.split(x), m.split(y)
    ab_from_l, l_from_ab = m.predict(bx.inputs[0], bx.inputs[1])
    ab_from_l2, l_from_ab2 = m.predict(bx.inputs[0], by.inputs[1])  # another colour split
    torch.testing.assert_close(ab_from_l, ab_from_l2)  # the L half ignores colour
    assert not torch.allclose(l_from_ab, l_from_ab2)
    seen, recon = m.reconstruct(x, generator_for(0))
    assert seen.shape == recon.shape == x.shape and recon.min() >= 0 and recon.max() <= 1


def test_split_brain_input_noise_blots_the_inputs_and_keeps_the_targets_clean():
    x = images(4, seed=4)
    plain = build("split_brain", decoder_width=16, crop_scale_min=1.0)
    noisy = build("split_brain", decoder_width=16, crop_scale_min=1.0, input_noise_grid=4, input_noise=0.3)
    a, b = plain.make_batch(x, generator_for(0)), noisy.make_batch(x, generator_for(0))
    for t_a, t_b in zip(a.targets, b.targets):  # the same clean targets
        assert torch.equal(t_a, t_b)
    for i_a, i_b in zip(a.inputs, b.inputs):  # blotched inputs: smooth differences, not per-pixel ones
        d = (i_b - i_a).abs()
        assert d.mean() > 0.02
        assert float(F.avg_pool2d(i_b - i_a, 3, 1, 1, count_include_pad=False).std() / (i_b - i_a).std()) > 0.8
    assert torch.isfinite(noisy.training_step(x, None, generator_for(1)).loss)
    # the preview says so: blotched inputs, clean targets; and says nothing of blotches when they are off
    captions = [t.caption for t in noisy.preview_rows(x[:1], generator_for(0))[0].tiles]
    assert sum("blotches (4x4 grid" in c for c in captions) == 2 and sum("clean image" in c for c in captions) == 2
    assert not any("blotch" in t.caption for t in plain.preview_rows(x[:1], generator_for(0))[0].tiles)


def test_split_brain_rebalancing_weights_its_colour_half_and_keeps_old_checkpoints_loading():
    x = images(6, seed=3)
    plain = build("split_brain", decoder_width=16)
    rb = build("split_brain", decoder_width=16, rebalance=0.5)
    rb.load_state_dict(plain.state_dict(), strict=False)
    a = plain.training_step(x, None, generator_for(1))
    b = rb.training_step(x, None, generator_for(1))
    torch.testing.assert_close(a.metrics["l_loss"], b.metrics["l_loss"])  # the lightness half as before
    assert not torch.isclose(a.metrics["ab_loss"], b.metrics["ab_loss"])  # the colour half reweighted
    assert "prior" in rb.state_dict() and not torch.allclose(rb.prior, torch.full_like(rb.prior, rb.prior[0]))
    # the running colour frequencies are kept only by runs that rebalance: checkpoints of earlier runs still fit
    assert "prior" not in plain.state_dict()


# -- counting --------------------------------------------------------------------------------------
COLOUR_LEFT_IN = {"crop_jitter_p": 0.0, "crop_gray_p": 0.0}  # colour drawn anew per tile off (on by default)


@pytest.mark.parametrize("input_size", ["half", "three_quarters", "image"])
def test_counting_tiles_down_scaled_image_and_shapes(input_size):
    from engine.pretext.tiles import assemble_tiles

    m = build("counting", input_size=input_size, crop_scale_min=1.0, count_dim=16, head_hidden=32, **COLOUR_LEFT_IN)
    x = images(5)
    batch = m.make_batch(x, generator_for(0))
    tiles, down, other = batch.inputs
    s = {"half": 16, "three_quarters": 24, "image": 32}[input_size]
    assert tiles.shape == (5, 4, 3, s, s) and down.shape == other.shape == (5, 3, s, s)
    img = batch.meta["image"]  # the image after the (flip-only) augmentation
    if input_size == "half":
        torch.testing.assert_close(assemble_tiles(tiles, 2), img)
        torch.testing.assert_close(down, F.avg_pool2d(img, 2))
    assert torch.equal(other, down[torch.tensor([1, 2, 3, 4, 0])])
    c = m.counts(batch)
    assert c["tiles"].shape == (5, 4, 16) and c["down"].shape == c["other"].shape == (5, 16)
    assert (c["tiles"] >= 0).all() and (c["down"] >= 0).all()  # counts are non-negative


def test_counting_contrastive_term_separates_different_images():
    m = build("counting", count_dim=16, head_hidden=32, margin=10.0)
    batch = m.make_batch(images(6), generator_for(0))
    c = m.counts(batch)
    t = m.loss_terms(c)
    total = c["tiles"].sum(1)
    assert (t["d_neg"] > 0).all()  # different images: different counts
    torch.testing.assert_close(t["d_neg"], (c["other"] - total).pow(2).sum(1))
    torch.testing.assert_close(t["contrast"], F.relu(10.0 - t["d_neg"]).mean())
    zero = {k: torch.zeros_like(v) for k, v in c.items()}  # the trivial all-zero counts
    tz = m.loss_terms(zero)
    assert float(tz["sum"]) == 0.0 and float(tz["contrast"]) == pytest.approx(10.0)


def test_counting_colour_drawn_anew_for_every_tile_and_whole():
    plain = build("counting", crop_scale_min=1.0, input_size="half", count_dim=16, head_hidden=32, **COLOUR_LEFT_IN)
    m = build("counting", crop_scale_min=1.0, input_size="half", count_dim=16, head_hidden=32, crop_jitter_p=1.0,
              crop_gray_p=0.0)
    x = images(4)
    ref = plain.make_batch(x, generator_for(0))
    batch = m.make_batch(x, generator_for(0))
    tiles, down, other = batch.inputs
    assert tiles.shape == ref.inputs[0].shape and down.shape == other.shape == ref.inputs[1].shape
    # every crop keeps its layout but has its own colours: the crops' colour shifts differ
    shift = tiles.mean(dim=(3, 4)) - ref.inputs[0].mean(dim=(3, 4))  # (B, 4, 3)
    assert not torch.allclose(shift[:, 0], shift[:, 1], atol=1e-3)
    assert not torch.allclose(down, ref.inputs[1]) and not torch.allclose(other, ref.inputs[2])
    grey = build("counting", crop_scale_min=1.0, input_size="half", count_dim=16, head_hidden=32, crop_gray_p=1.0)
    t, d, o = grey.make_batch(x, generator_for(0)).inputs
    for part in (t.flatten(0, 1), d, o):  # every crop grey
        torch.testing.assert_close(part[:, 0], part[:, 1])


def test_counting_defaults_leave_no_colour_sum_to_count():
    """With its defaults the tiles' colours no longer add up to the whole's (counts of colour solved the pretext and
    taught nothing of shape); with colour left in they do, exactly, at the paper's tile size."""
    def colour_gap(**options):
        m = build("counting", crop_scale_min=1.0, input_size="half", count_dim=16, head_hidden=32, **options)
        tiles, down, _ = m.make_batch(images(32), generator_for(0)).inputs
        return (tiles.mean(dim=(3, 4)).mean(1) - down.mean(dim=(2, 3))).abs().amax(1)  # per image, worst channel

    assert float(colour_gap(**COLOUR_LEFT_IN).max()) < 1e-5
    gap = colour_gap()  # the defaults
    assert float((gap > 0.02).float().mean()) > 0.5
    assert METHODS["counting"].run_defaults()["optim"]["batch_size"] < 128  # colour-blind counts need many updates


# -- bag of words ----------------------------------------------------------------------------------
@pytest.mark.parametrize("assign_temp", [0.0, 0.05])
def test_bow_histograms_sum_to_one_and_count_the_word_map(assign_temp):
    m = build("bow", words=16, head_hidden=32, assign_temp=assign_temp)
    x = images(6)
    batch = m.make_batch(x, generator_for(0))
    hist = batch.targets
    assert hist.shape == (6, 16) and (hist >= 0).all()
    torch.testing.assert_close(hist.sum(1), torch.ones(6))
    wm = batch.meta["word_map"]
    assert wm.shape == (6, 4, 4) and batch.inputs.shape == x.shape
    if assign_temp == 0:  # hard words: the histogram is the word map's normalised count
        counts = torch.stack([torch.bincount(w.flatten(), minlength=16) for w in wm]).float() / 16
        torch.testing.assert_close(hist, counts)
    assert not torch.allclose(hist[0], hist[1])  # images differ in their bags


def test_bow_vocabulary_is_initialised_then_follows_the_teacher():
    m = build("bow", words=16, head_hidden=32, vocab_momentum=0.5, teacher_warmup=0)
    assert not bool(m.vocab_ready)
    x = images(8)
    m.training_step(x, None, generator_for(0))
    assert bool(m.vocab_ready)
    torch.testing.assert_close(m.vocab.norm(dim=1), torch.ones(16))
    before = m.vocab.clone()
    locals_ = m.local_features(images(8, seed=3))
    m.update_vocab(locals_, generator_for(1))
    flat = locals_.reshape(-1, locals_.shape[-1])
    near = (flat @ before.t()).argmax(1)
    w = int(near.mode().values)  # the most used word moves towards the mean of its locations
    mean = flat[near == w].mean(0)
    assert F.cosine_similarity(m.vocab[w], mean, dim=0) > F.cosine_similarity(before[w], mean, dim=0)
    assert m.state_dict()["vocab"].shape == (16, 32)  # checkpointed


def test_bow_teacher_warmup_trains_rotation_then_the_teacher_starts_from_the_trained_encoder():
    m = build("bow", words=16, head_hidden=32, teacher_warmup=2)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    x = images(8)
    for step in range(2):  # rotation prediction: no words yet, the teacher is the student itself
        out = m.training_step(x, None, generator_for(step))
        assert set(out.metrics) == {"rotation_acc"} and not bool(m.vocab_ready)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        m.after_step(0.1)
        for p_t, p_s in zip(m.teacher_backbone.parameters(), m.backbone.parameters()):
            torch.testing.assert_close(p_t, p_s)
    assert int(m.warm_steps) == 2 and m.rot_head.weight.grad is not None
    out = m.training_step(x, None, generator_for(2))  # now the words of the trained teacher
    assert "words_used" in out.metrics and bool(m.vocab_ready)
    fresh = build("bow", words=16, head_hidden=32, teacher_warmup=2)
    fresh.load_state_dict(m.state_dict())  # a resumed run does not warm up again
    assert not fresh.warming_up()
    old = {k: v for k, v in m.state_dict().items() if k != "warm_steps" and not k.startswith("rot_head.")}
    before = build("bow", words=16, head_hidden=32, teacher_warmup=2)
    before.load_state_dict(old)  # a run saved before the warm-up existed goes on with its words
    assert not before.warming_up()


def test_bow_without_warmup_has_no_rotation_head():
    m = build("bow", words=16, head_hidden=32, teacher_warmup=0)
    assert not hasattr(m, "rot_head") and not m.warming_up()
    assert "words_used" in m.training_step(images(4), None, generator_for(0)).metrics


# -- SSGAN -----------------------------------------------------------------------------------------
def test_ssgan_discriminator_sees_rotated_real_and_generated_images_with_their_labels():
    m = build("ssgan", z_dim=16, gen_width=8).eval()
    x = images(32)
    batch = m.make_batch(x, generator_for(2))
    real, fake, real_rot, fake_rot = batch.inputs
    t_real, t_fake = batch.targets
    assert set(t_real.tolist()) == set(range(4)) and set(t_fake.tolist()) == set(range(4))
    for i in range(32):
        assert torch.equal(real_rot[i], torch.rot90(real[i], int(t_real[i]), dims=(1, 2)))
        assert torch.equal(fake_rot[i], torch.rot90(fake[i], int(t_fake[i]), dims=(1, 2)))
    torch.testing.assert_close(fake, m.generator(batch.meta["z"]))  # the fakes are the generator's drawing
    flipped = real == x.flip(-1)
    assert all(bool(flipped[i].all()) or torch.equal(real[i], x[i]) for i in range(32))  # real: flips only


@pytest.mark.parametrize("term", ["generator", "discriminator"])
def test_ssgan_terms_train_only_their_network(term):
    opts = {"alpha": 1.0, "beta": 0.0, "gan_weight": 0.0} if term == "generator" else \
        {"alpha": 0.0, "beta": 1.0, "gan_weight": 0.0}
    m = build("ssgan", z_dim=16, gen_width=8, **opts)
    bn_before = m.backbone.features[1].running_mean.clone()
    out = m.training_step(images(8), None, generator_for(0))
    out.loss.backward()
    gen = [p.grad for p in m.generator.parameters()]
    enc = [p.grad for p in m.backbone.parameters()]
    has = [g is not None and bool(g.abs().sum() > 0) for g in gen]
    has_enc = [g is not None and bool(g.abs().sum() > 0) for g in enc]
    if term == "generator":  # G's rotation term flows through a detached D
        assert any(has) and not any(has_enc)
    else:
        assert any(has_enc) and not any(has)
    assert not torch.equal(bn_before, m.backbone.features[1].running_mean)  # real images update BN


def test_ssgan_fakes_do_not_touch_the_encoders_batchnorm_statistics():
    m = build("ssgan", z_dim=16, gen_width=8)
    x = images(8)
    twin = build("ssgan", z_dim=16, gen_width=8)
    m.training_step(x, None, generator_for(0))
    real = m.make_batch(x, generator_for(0)).inputs  # same draw as the step's
    twin.backbone.train()
    twin.backbone(torch.cat([real[0], real[2]]))  # only the real images (and their rotations)
    for (k, a), (_, b) in zip(m.backbone.named_buffers(), twin.backbone.named_buffers()):
        torch.testing.assert_close(a, b, msg=k)


def test_ssgan_samples_show_the_same_noise_every_time():
    m = build("ssgan", z_dim=16, gen_width=8).eval()
    x = images(4)
    a = m.reconstruct(x, generator_for(0))
    b = m.reconstruct(x, generator_for(0))
    assert a[0].shape == a[1].shape == x.shape
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[1].min() >= 0 and a[1].max() <= 1


def test_ssgan_session_sends_live_generator_samples(tmp_path):
    from engine import messages as M
    from engine.config import default_config
    from engine.session import Session

    cfg = default_config("ssgan", epochs=1, device="cpu", runs_root=str(tmp_path), backbone="small_cnn",
                         checkpoint_every_minutes=0.0, method_options={"z_dim": 16, "gen_width": 8},
                         data={"spec": "builtin:shapes:48", "image_size": 32, "holdout_fraction": 0.25},
                         optim={"batch_size": 16},
                         eval={"knn_every_epochs": 1, "linear_probe_epochs": 0, "bank_size": 32, "monitor_size": 16})
    got = []
    summary = Session(cfg, got.append).run()
    assert summary["reason"] == "completed", summary
    recs = [m for m in got if isinstance(m, M.Reconstruction)]
    assert recs and recs[-1].outputs.dtype == np.uint8
    assert recs[-1].outputs.shape == recs[-1].originals.shape


# -- exemplar --------------------------------------------------------------------------------------
def test_exemplar_copies_are_surrogate_classes():
    from engine.methods.exemplar import surrogate_logits

    m = build("exemplar", copies=3, proj_hidden=32, proj_dim=16)
    x = images(5)
    batch = m.make_batch(x, generator_for(0))
    assert len(batch.inputs) == 3 and all(v.shape == x.shape for v in batch.inputs)
    assert torch.equal(batch.targets, torch.arange(5))
    assert not torch.allclose(batch.inputs[0], batch.inputs[1])  # every copy differs
    # embeddings that are the same for an image's copies and orthogonal between images: all classified right
    z = torch.eye(5).unsqueeze(0).repeat(3, 1, 1)
    logits = surrogate_logits(z, 0.1)
    assert (logits.argmax(-1) == torch.arange(5)).all()
    # two copies: the own-class weight is the other copy alone (the copy itself is left out)
    z2 = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))
    lg = surrogate_logits(z2, 1.0)
    torch.testing.assert_close(torch.diagonal(lg[0]), F.cosine_similarity(z2[0], z2[1], dim=-1))


def test_simclr_multicrop_contrasts_every_local_crop_with_both_views():
    m = build("simclr", local_crops=2, local_size=0.5, proj_hidden=32, proj_dim=16).train()
    x = images()
    views = m.make_batch(x, generator_for(1)).inputs
    assert [tuple(v.shape[-2:]) for v in views] == [(32, 32), (32, 32), (16, 16), (16, 16)]
    out = m.training_step(x, None, generator_for(1))
    z = [m.projector(m.backbone(torch.cat(views[:2]))).chunk(2),
         m.projector(m.backbone(torch.cat(views[2:]))).chunk(2)]
    (z1, z2), local = z
    pairs = [(z1, z2)] + [(zg, zl) for zl in local for zg in (z1, z2)]
    expected = sum(m.losses.nt_xent(a, b, m.cfg.temperature)[0] for a, b in pairs) / len(pairs)
    assert torch.allclose(out.loss, expected, rtol=1e-5)
    assert not torch.allclose(out.loss, m.losses.nt_xent(z1, z2, m.cfg.temperature)[0], rtol=1e-3)
    # the preview shows the local crops under their names, from the same code
    titles = [t.caption.split(":")[0] for t in m.preview_rows(x[:2], generator_for(1))[0].tiles]
    assert titles == ["original", "view 1", "view 2", "local 1", "local 2"]


def test_simclr_without_local_crops_draws_the_views_as_before():
    from engine.pretext.views import multi_view

    m = build("simclr", local_crops=0)
    x = images()
    got = m.make_batch(x, generator_for(2)).inputs
    want = multi_view(x, m.views, generator_for(2)).inputs
    assert len(got) == 2 and all(torch.equal(a, b) for a, b in zip(got, want))


@pytest.mark.parametrize("name", ["context", "counting"])
def test_train_last_block_off_keeps_the_encoders_last_block_as_initialised(name):
    """With train_last_block off, a few optimiser steps change the blocks below and leave the last block's
    weights as they were (its BatchNorm statistics still follow the data); on, every block learns."""
    from engine.models.backbones import last_block

    x = images(8, seed=5)
    for train_last in (False, True):
        torch.manual_seed(0)
        m = build(name, train_last_block=train_last)
        last = {id(p) for p in last_block(m.backbone).parameters()}
        before = {n: p.detach().clone() for n, p in m.backbone.named_parameters()}
        opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
        for step in range(3):
            opt.zero_grad()
            m.training_step(x, None, generator_for(step)).loss.backward()
            opt.step()
        moved = {n: not torch.equal(before[n], p) for n, p in m.backbone.named_parameters()}
        in_last = {n: id(p) in last for n, p in m.backbone.named_parameters()}
        assert any(in_last.values()) and not all(in_last.values())
        assert all(moved[n] for n in moved if not in_last[n])  # the blocks below learn either way
        assert all(moved[n] == train_last for n in moved if in_last[n])


def test_train_last_block_off_names_the_option_for_an_encoder_of_unknown_blocks():
    from engine.models.backbones import keep_last_block
    from engine.params import ConfigError

    with pytest.raises(ConfigError, match="train_last_block"):
        keep_last_block(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)), "context")


def test_context_patch_input_scales_the_patches_the_encoder_sees_and_the_preview_says_so():
    x = images(4, seed=6)
    plain, scaled = build("context"), build("context", patch_input=24)
    a, b = plain.make_batch(x, generator_for(0)), scaled.make_batch(x, generator_for(0))
    assert a.inputs[0].shape[-1] == 12 and b.inputs[0].shape[-1] == 24  # cell 16, gap 0.25: 12-pixel patches
    assert torch.equal(a.targets, b.targets)  # the same pairs, only scaled
    for pa, pb in zip(a.inputs, b.inputs):  # the same patches as cut, scaled up
        torch.testing.assert_close(F.interpolate(pa, size=24, mode="bilinear", align_corners=False), pb)
    assert torch.isfinite(scaled.training_step(x, None, generator_for(1)).loss)
    captions = [t.caption for t in scaled.preview_rows(x[:1], generator_for(0))[0].tiles]
    assert sum("scaled to 24 px" in c for c in captions) == 2
