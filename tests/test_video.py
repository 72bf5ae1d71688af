"""Clips as data and the three video methods (Shuffle and Learn, tracking, video colorization)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from engine.data import DataError, load_dataset
from engine.data.clips import ClipData, generate_clips
from engine.methods import METHODS, DataInfo
from engine.models.backbones import SmallCNN
from engine.params import from_dict
from engine.pretext.base import generator_for
from engine.pretext.temporal import (
    NotClips,
    block_match,
    crop_patches,
    mask_center,
    order_triplets,
    tracked_pairs,
)

pytestmark = pytest.mark.usefixtures("one_thread")
VIDEO = [n for n, c in METHODS.items() if c.input_kind == "clips"]
SMALL = {"shuffle_learn": {"head_hidden": 32, "map_channels": 4}, "tracking": {"proj_hidden": 32, "proj_dim": 16},
         "video_colorization": {"embed_dim": 16, "upsample": 1}}


@pytest.fixture(scope="module")
def clips():
    return load_dataset("builtin:clips:48", 32)


def as_float(data: ClipData, idx) -> torch.Tensor:
    return data.get_clips(idx).float().div(255)


# -- the built-in clips ---------------------------------------------------------------------------
def test_builtin_clips_are_deterministic_from_their_seed():
    a, la, ma = generate_clips(24, 32, 6, seed=5)
    b, lb, mb = generate_clips(24, 32, 6, seed=5)
    c, _, _ = generate_clips(24, 32, 6, seed=6)
    assert a.shape == (24, 6, 4, 32, 32) and a.dtype == torch.uint8
    assert torch.equal(a, b) and torch.equal(la, lb) and all(torch.equal(ma[k], mb[k]) for k in ma)
    assert not torch.equal(a, c)
    # the frames of a clip differ: the shape moves
    assert (a[:, 0, :3].float() - a[:, -1, :3].float()).abs().mean() > 2


def test_builtin_clip_motion_is_what_the_metadata_says():
    x, labels, meta = generate_clips(64, 32, 8, seed=1)
    mask = x[:, :, 3].float() / 255
    centroid = mask_center(mask.flatten(0, 1)).view(64, 8, 2)
    centre = meta["center_px"]
    # shapes whose centre of mass is their centre (every rotation): the mask sits where the metadata says
    sym = torch.isin(labels, torch.tensor([0, 1, 3, 5]))  # circle, ring, square, cross
    assert sym.sum() >= 8
    assert (centroid[sym] - centre[sym]).norm(dim=-1).max() < 0.4
    # a straight trajectory at the recorded speed and direction, a constant spin
    step = centre[:, 1:] - centre[:, :-1]
    d = meta["direction"]
    expect = torch.stack([torch.cos(d), torch.sin(d)], -1)[:, None] * meta["speed_px"][:, None, None]
    assert torch.allclose(step, expect.expand_as(step), atol=1e-3)
    assert (meta["speed_px"] > 0.3).all()
    assert torch.allclose(meta["angle"][:, 1:] - meta["angle"][:, :-1], meta["spin"][:, None].expand(-1, 7), atol=1e-5)
    # every shape moves the same way its centroid does (rotations move off-centre shapes' centroids a little)
    moved = (centroid[:, -1] - centroid[:, 0]) - (centre[:, -1] - centre[:, 0])
    assert moved.norm(dim=-1).median() < 0.5
    # the object stays in the frame (a tip may touch the border)
    border = mask[:, :, 0].sum(-1) + mask[:, :, -1].sum(-1) + mask[:, :, 1:-1, 0].sum(-1) + mask[:, :, 1:-1, -1].sum(-1)
    assert (border / mask.sum((-1, -2))).max() < 0.05


def test_clip_dataset_trains_on_clips_and_evaluates_middle_frames(clips):
    assert isinstance(clips, ClipData) and len(clips) == 48 and clips.frames == 8 and clips.has_mask
    assert clips.labelled and clips.eval_source.startswith("builtin:clips-test:")
    assert torch.equal(clips.get([3, 7]), clips.clips[[3, 7], 4, :3])
    x, y, idx = next(clips.batches(16, torch.arange(48)))
    assert x.shape == (16, 8, 4, 32, 32) and torch.equal(y, clips.labels[:16])
    sub = clips.subset([5, 1])
    assert isinstance(sub, ClipData) and torch.equal(sub.clips, clips.clips[[5, 1]])
    assert torch.equal(sub.get([0]), clips.clips[[5], 4, :3]) and torch.equal(sub.meta["speed"], clips.meta["speed"][[5, 1]])
    frames = clips.frame_data()
    assert len(frames) == 48 * 8 and torch.equal(frames.labels[:8], clips.labels[0].repeat(8))
    test = load_dataset("builtin:clips-test:20", 32)
    assert not torch.equal(test.clips[:20], clips.clips[:20])


# -- temporal order -------------------------------------------------------------------------------
def test_order_label_says_whether_the_frames_were_shuffled(clips):
    x = as_float(clips, range(32))
    batch = order_triplets(x, generator_for(3))
    idx, y = batch.meta["frames"], batch.targets
    assert 0 < int(y.sum()) < 32
    middle_between = ((idx[:, 0] < idx[:, 1]) & (idx[:, 1] < idx[:, 2])) | ((idx[:, 0] > idx[:, 1]) & (idx[:, 1] > idx[:, 2]))
    assert torch.equal(middle_between.long(), y)
    assert (idx[:, 0] != idx[:, 1]).all() and (idx[:, 1] != idx[:, 2]).all() and (idx[:, 0] != idx[:, 2]).all()
    for i in range(32):  # the inputs are those frames
        assert torch.equal(batch.inputs[i], x[i, idx[i], :3])
    # and the object's position agrees: in order, the middle frame's object lies between the others
    centre = clips.meta["center_px"][:32]
    pos = centre[torch.arange(32)[:, None], idx]  # (32, 3, 2)
    d = clips.meta["direction"][:32]
    along = (pos * torch.stack([torch.cos(d), torch.sin(d)], -1)[:, None]).sum(-1)
    between = ((along[:, 0] < along[:, 1]) & (along[:, 1] < along[:, 2])) | ((along[:, 0] > along[:, 1]) & (along[:, 1] > along[:, 2]))
    assert torch.equal(between.long(), y)


# -- tracking -------------------------------------------------------------------------------------
def test_block_matching_finds_a_known_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 36, 36, generator=g), 3, 1)  # (2, 3, 34, 34), smooth texture
    b = torch.roll(a, shifts=(-3, 2), dims=(2, 3))  # content moves 2 px right, 3 px up
    centre = torch.tensor([[16.0, 17.0], [12.0, 20.0]])
    found = block_match(a, b, centre, patch=9, radius=4)
    assert torch.equal(found, centre + torch.tensor([2.0, -3.0]))


@pytest.mark.parametrize("track", ["known", "block_matching"])
def test_the_tracked_patch_shows_the_same_object(track):
    data = load_dataset("builtin:clips:120", 32)
    x = as_float(data, range(120))
    batch = tracked_pairs(x, generator_for(7), patch_fraction=0.6, max_gap=4, track=track)
    m = batch.meta
    bi = torch.arange(120)
    mask = x[:, :, 3]
    truth0 = mask_center(mask[bi, m["start"]])
    truth1 = mask_center(mask[bi, m["end"]])
    size = m["size"]

    def coverage(frame, c):  # the share of the object's mask inside the patch
        obj = mask[bi, frame]
        return crop_patches(obj[:, None], c, size, size)[:, 0].sum((1, 2)) / obj.sum((1, 2))

    if track == "known":  # the built-in clips' ground truth: centred on the object in both frames
        assert m["track"] == "known"
        assert (m["c0"] - truth0).norm(dim=1).max() < 0.01 and (m["c1"] - truth1).norm(dim=1).max() < 0.01
        assert coverage(m["end"], m["c1"]).min() > 0.85 and coverage(m["start"], m["c0"]).min() > 0.85
    else:  # found from the pixels alone: the patch is on the object and follows it
        assert m["track"] == "block matching"
        cov0, cov1 = coverage(m["start"], m["c0"]), coverage(m["end"], m["c1"])
        assert (cov0 > 0.85).float().mean() >= 0.9 and (cov1 > 0.85).float().mean() >= 0.9
        err = ((m["c1"] - m["c0"]) - (truth1 - truth0)).norm(dim=1)  # the tracked motion against the true one
        moved = (truth1 - truth0).norm(dim=1)
        assert err.mean() < 1.5 and (err < 2.5).float().mean() >= 0.9 and moved.mean() > 3
    q, t = batch.inputs
    assert q.shape == t.shape == (120, 3, 32, 32) and not torch.equal(q, t)


# -- clip folders and video files -----------------------------------------------------------------
def _frames(folder, numbers, size=16, bad=()):
    from PIL import Image

    folder.mkdir(parents=True)
    for k in numbers:
        p = folder / f"frame_{k:04d}.png"
        if k in bad:
            p.write_bytes(b"not a png")
        else:
            Image.fromarray(np.full((size, size, 3), 20 * k, np.uint8)).save(p)


def test_clip_folder_with_a_missing_or_unreadable_frame_is_skipped_by_name(tmp_path):
    _frames(tmp_path / "walk" / "a1", range(1, 6))
    _frames(tmp_path / "walk" / "a2_gap", [1, 2, 4, 5, 6])
    _frames(tmp_path / "run" / "b1", range(1, 7))
    _frames(tmp_path / "run" / "b2_bad", range(1, 6), bad=(3,))
    _frames(tmp_path / "run" / "b3_short", [1, 2])
    data = load_dataset(f"clips:{tmp_path}", 16)
    assert isinstance(data, ClipData) and len(data) == 2 and data.frames == 5 and not data.has_mask
    assert data.class_names == ["run", "walk"] and data.labels.tolist() == [0, 1]
    reasons = {p.split("/")[-1]: r for p, r in data.skipped}
    assert set(reasons) == {"a2_gap", "b2_bad", "b3_short"}
    assert "frame 3 missing" in reasons["a2_gap"]
    assert "frame_0003.png" in reasons["b2_bad"] and "unreadable" in reasons["b2_bad"]
    assert "at least 3" in reasons["b3_short"]
    note = " ".join(data.notes)
    assert "a2_gap" in note and "b2_bad" in note
    # frames sampled evenly, in order: b1 has 6 frames, 5 are kept (first and last among them)
    b1 = data.clips[0, :, 0, 0, 0].tolist()
    assert b1[0] == 20 and b1[-1] == 120 and b1 == sorted(b1)


def test_video_file_without_the_backend_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "a.mp4").write_bytes(b"\x00" * 64)
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "b.mp4").write_bytes(b"\x00" * 64)
    for spec in (str(tmp_path), f"clips:{tmp_path}"):
        with pytest.raises(DataError) as err:
            load_dataset(spec, 32)
        msg = str(err.value)
        assert "'video'" in msg and "pip install 'ssl-workbench[video]'" in msg and "\n" not in msg


def test_video_extra_is_declared():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    extras = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^video = \["av>=', extras, re.M)


# -- the methods ----------------------------------------------------------------------------------
def build(name, **options):
    cls = METHODS[name]
    torch.manual_seed(0)
    cfg = from_dict(cls.Config, {**SMALL.get(name, {}), **options}, "method_options")
    return cls(cfg, SmallCNN(widths=(8, 16, 32, 32)), DataInfo(image_size=32))


def test_the_three_video_methods_are_registered():
    assert set(VIDEO) == {"shuffle_learn", "tracking", "video_colorization"}
    assert all(METHODS[n].family == "video" for n in VIDEO)


@pytest.mark.parametrize("name", VIDEO)
def test_video_method_trains_and_its_loss_falls(clips, name):
    m = build(name)
    x = as_float(clips, range(16))
    before = {k: v.clone() for k, v in m.backbone.state_dict().items()}
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    m.train()
    for _ in range(20):
        out = m.training_step(x, None, generator_for(0))
        assert torch.isfinite(out.loss) and all(math.isfinite(float(v)) for v in out.metrics.values())
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) * 0.95, losses
    assert any(not torch.equal(before[k], v) for k, v in m.backbone.state_dict().items() if v.is_floating_point())


@pytest.mark.parametrize("name", VIDEO)
def test_video_method_on_single_images_says_it_needs_clips(name):
    m = build(name)
    with pytest.raises(NotClips, match="trains on clips.*builtin:clips"):
        m.training_step(torch.rand(4, 3, 32, 32), None, generator_for(0))


@pytest.mark.parametrize("name", VIDEO)
def test_preview_draws_a_clip_from_make_batch(clips, name):
    from engine.preview import preview

    arr = clips.clips_hwc([0, 1, 2])
    res = preview(name, arr, seed=3, options=SMALL[name])
    again = preview(name, arr, seed=3, options=SMALL[name])
    assert res.kind == METHODS[name].preview_kind and len(res.rows) == 3
    for ra, rb in zip(res.rows, again.rows):
        for a, b in zip(ra.tiles, rb.tiles):
            assert a.image.shape == (32, 32, 3) and a.image.dtype == np.uint8 and a.caption
            assert np.array_equal(a.image, b.image)
            for x0, y0, x1, y1, color, _ in a.boxes:
                assert 0 <= x0 < x1 <= 32 and 0 <= y0 < y1 <= 32 and color.startswith("#")
    m = build(name).eval()
    x = torch.from_numpy(arr).permute(0, 1, 4, 2, 3).float().div(255)
    batch = m.make_batch(x, generator_for(3), preview=True)
    captions = " ".join(t.caption for r in res.rows for t in r.tiles)
    titles = " ".join(r.title for r in res.rows)
    if name == "shuffle_learn":  # the triplet the classifier sees, labelled in order / shuffled
        assert all(("in order" in r.title) == bool(batch.targets[i]) for i, r in enumerate(res.rows))
        assert np.array_equal(res.rows[0].tiles[1].image,
                              (batch.inputs[0, 1].permute(1, 2, 0) * 255).round().byte().numpy())
    elif name == "tracking":  # the tracked patches drawn on the frames
        assert "tracked" in captions and "track known" in titles
        assert res.rows[0].tiles[0].boxes and res.rows[0].tiles[1].boxes
    else:  # reference, the reference the encoder sees, grey target, copied colours, truth
        assert [t.caption.split(":")[0].split(" (")[0] for t in res.rows[0].tiles] == \
            ["reference", "the reference as the encoder sees it", "target", "copied colours", "truth"]
        assert np.array_equal(res.rows[0].tiles[1].image,
                              (batch.inputs[0][0].permute(1, 2, 0) * 255).round().byte().numpy())
        grey = res.rows[0].tiles[2].image
        assert np.abs(grey[..., 0].astype(int) - grey[..., 2]).max() <= 1


@pytest.mark.slow
def test_train_each_video_method_on_builtin_clips(tmp_path):
    from engine.cli import main as cli

    for name in VIDEO:
        rc = cli(["train", "--method", name, "--data", "builtin:clips:32", "--epochs", "1", "--batch-size", "16",
                  "--device", "cpu", "--runs-root", str(tmp_path), "--name", name, "--backbone", "small_cnn"])
        assert rc == 0, name
    import json

    for name in VIDEO:
        run = next(tmp_path.glob(f"*-{name}"))
        res = json.loads((run / "results.json").read_text())
        assert res["step"] == 2 and 0 <= res["knn_top1"] <= 1 and res["num_test"] >= 400


# -- clips in the run's data, the service and the session ----------------------------------------
def _cfg(method: str, spec: str):
    from engine.config import default_config

    cfg = default_config(method)
    cfg.data.spec = spec
    cfg.epochs = 1
    return cfg


def test_run_data_gives_image_methods_every_frame_and_clip_methods_the_clips():
    from engine.training.rundata import prepare_data

    frames = prepare_data(_cfg("simclr", "builtin:clips:32"))
    clipped = prepare_data(_cfg("tracking", "builtin:clips:32"))
    assert isinstance(clipped.data, ClipData) and len(clipped.data) == 32
    assert not isinstance(frames.data, ClipData) and frames.data.images.shape == (32 * 8, 3, 32, 32)
    assert torch.equal(frames.data.labels, clipped.data.labels.repeat_interleave(8))
    assert torch.equal(frames.data.images[8 * 5 + 3], clipped.data.clips[5, 3, :3])
    # both are scored on the same middle frames
    assert torch.equal(frames.bank_data.images, clipped.bank_data.images) and len(frames.bank_data) == 32
    assert torch.equal(frames.eval_data.images, clipped.eval_data.images)
    assert any("every frame" in n for n in frames.notes)


def test_clip_method_on_images_is_a_config_error_before_training(tmp_path):
    from engine import messages as M
    from engine.params import ConfigError
    from engine.session import Session
    from engine.training.rundata import prepare_data

    with pytest.raises(ConfigError, match="tracking trains on clips.*builtin:clips") as exc:
        prepare_data(_cfg("tracking", "builtin:shapes:64"))
    assert exc.value.path == "method"
    got = []
    out = Session(_cfg("tracking", "builtin:shapes:64"), emit=got.append, run_dir=tmp_path / "r").run()
    assert out["reason"] == "failed" and "trains on clips" in out["error"]
    assert not any(isinstance(m, M.StepMetrics) for m in got)


def test_validate_config_knows_clips():
    from engine.worker import validate_config

    ok = validate_config({"method": "tracking", "epochs": 1, "data": {"spec": "builtin:clips:64"}})
    frames = validate_config({"method": "simclr", "epochs": 1, "data": {"spec": "builtin:clips"}})
    bad = validate_config({"method": "tracking", "epochs": 1, "data": {"spec": "builtin:shapes"}})
    count = validate_config({"method": "tracking", "epochs": 1, "data": {"spec": "builtin:clips:3"}})
    assert ok["ok"] and frames["ok"]
    assert not bad["ok"] and bad["errors"][0]["path"] == "method" and "builtin:clips" in bad["errors"][0]["message"]
    assert not count["ok"] and count["errors"][0]["path"] == "data.spec"


def test_service_writes_the_clips_and_previews_clip_methods_from_them(monkeypatch, tmp_path):
    import threading

    from engine import worker

    monkeypatch.setattr(worker, "_thumbs_path", lambda spec, size, kind="images": tmp_path / f"{kind}.npy")

    class Job:
        def progress(self, *a, **k):
            pass

    res = worker.load_dataset_for_view({"spec": "builtin:clips:16", "image_size": 32}, Job(), threading.Event())
    clips = np.load(res["clips_path"])
    images = np.load(res["images_path"])
    assert clips.shape == (16, 8, 32, 32, 4) and res["frames"] == 8
    assert np.array_equal(images, clips[:, 4, :, :, :3])  # the grid shows the middle frames
    loaded = {"builtin:clips:16|32": {"images_path": res["images_path"], "clips_path": res["clips_path"]}}
    args = {"dataset": "builtin:clips:16|32", "indices": [3, 5], "seed": 1, "options": SMALL["tracking"]}
    by_index = worker.preview_plain({"method": "tracking", **args}, loaded)
    given = worker.preview_plain({"method": "tracking", "clips": clips[[3, 5]], "seed": 1,
                                  "options": SMALL["tracking"]}, {})
    assert len(by_index["rows"]) == 2
    assert all(np.array_equal(a["image"], b["image"]) for ra, rb in zip(by_index["rows"], given["rows"])
               for a, b in zip(ra["tiles"], rb["tiles"]))
    assert worker.preview_plain({"method": "simclr", **args}, loaded)["kind"] == "views"
    with pytest.raises(ValueError, match="previews clips"):
        worker.preview_plain({"method": "tracking", "clips": images[:2]}, {})
    with pytest.raises(ValueError, match="single images"):
        worker.preview_plain({"method": "tracking", **args}, {"builtin:clips:16|32": {"images_path": "x", "clips_path": ""}})


def test_builtin_clip_backgrounds_are_shared_by_shapes_and_pan():
    clips, labels, meta = generate_clips(64, 32, 6, seed=2)
    bg = meta["background"]
    # a background does not tell the shape (or the clip): one is used by clips of several shapes
    assert any(len(set(labels[bg == k].tolist())) >= 2 for k in bg.unique().tolist())
    # where the clip pans, a background pixel away from the object changes between frames
    moving = (meta["pan_px"].abs().sum(1) > 0).nonzero().flatten()
    i = int(moving[0])
    free = (clips[i, :, 3] == 0).all(0)
    diff = (clips[i, 0, :3].float() - clips[i, -1, :3].float()).abs().sum(0)
    assert diff[free].mean() > 3


def test_video_colorization_weights_the_object():
    m1 = build("video_colorization", object_weight=1.0)
    m9 = build("video_colorization", object_weight=50.0)
    m9.load_state_dict(m1.state_dict())
    data = load_dataset("builtin:clips:16", 32)
    x = as_float(data, range(8))
    l1 = m1.training_step(x, None, generator_for(1)).loss
    l9 = m9.training_step(x, None, generator_for(1)).loss
    assert torch.isfinite(l1) and torch.isfinite(l9) and not torch.isclose(l1, l9)
    # without a mask (RGB clips) every pixel counts the same
    r1 = m1.training_step(x[:, :, :3], None, generator_for(1)).loss
    r9 = m9.training_step(x[:, :, :3], None, generator_for(1)).loss
    assert torch.isclose(r1, r9)


def test_video_colorization_shows_the_reference_in_colour_and_copies_its_true_colours():
    """The encoder sees the reference frame in colour (jittered by default) and the target grey; the colours the
    pointer copies and the loss targets are the frames' own."""
    data = load_dataset("builtin:clips:16", 32)
    x = as_float(data, range(8))
    rgb = x[:, :, :3]
    plain = build("video_colorization", reference_jitter_p=0.0).make_batch(x, generator_for(2))
    jit = build("video_colorization", reference_jitter_p=1.0).make_batch(x, generator_for(2))
    grey = build("video_colorization", reference_colour=False).make_batch(x, generator_for(2))
    bi = torch.arange(8)
    ref = rgb[bi, plain.meta["ref"]]
    assert torch.allclose(plain.inputs[0], ref)  # in colour, as it is
    assert (plain.inputs[0][:, 0] - plain.inputs[0][:, 2]).abs().max() > 0.1
    for b in (plain, jit, grey):  # the target is grey in every case
        assert torch.allclose(b.inputs[1][:, 0], b.inputs[1][:, 2])
    assert torch.equal(jit.meta["ref"], plain.meta["ref"]) and torch.allclose(jit.targets[0], plain.targets[0])
    assert not torch.allclose(jit.inputs[0], ref, atol=0.02)  # the colours the encoder sees are jittered
    assert torch.allclose(grey.inputs[0][:, 0], grey.inputs[0][:, 2])  # the paper: both grey


def test_builtin_clips_come_from_a_cache_the_second_time(tmp_path, monkeypatch):
    """Drawing the built-in clips takes tens of seconds at their default count: they are kept in the cache
    folder like the shapes, and the cached clips (and their motion) are the drawn ones."""
    import torch

    from engine.data import load_dataset
    from engine.data.clips import generate_clips

    monkeypatch.setenv("SSLWB_CACHE_DIR", str(tmp_path))
    first = load_dataset("builtin:clips:24", 16)
    files = list((tmp_path / "clips").glob("clips-24-16-*.npz"))
    assert len(files) == 1
    drawn = []
    monkeypatch.setattr("engine.data.clips.generate_clips", lambda *a, **k: drawn.append(a) or generate_clips(*a, **k))
    again = load_dataset("builtin:clips:24", 16)
    assert [a[0] for a in drawn] == [1]  # only the one-clip probe of the arrays' shapes, not the 24
    assert torch.equal(first.clips, again.clips) and torch.equal(first.labels, again.labels)
    assert all(torch.equal(first.meta[k], again.meta[k]) for k in first.meta)
    fresh, labels, meta = generate_clips(24, 16, first.frames, 3000)
    assert torch.equal(fresh, again.clips) and torch.equal(meta["center_px"], again.meta["center_px"])


def test_a_run_saved_before_an_option_existed_resumes_as_it_began(tmp_path):
    """Video colorization's reference in colour, Shuffle and Learn's per-frame jitter and denoising's noise grid
    came after runs were saved without them: such a run's config takes their legacy values (the old behaviour)
    when it is read back to resume, while a new run, and a saved run that names them, keep their own."""
    import json

    from engine.config import default_config
    from engine.training.checkpoints import run_config

    for method, gone in (("video_colorization", {"reference_colour": False, "reference_jitter_p": 0.0}),
                         ("shuffle_learn", {"frame_jitter": 0.0}), ("denoising", {"noise_grid": 0})):
        cfg = default_config(method, minutes=1.0)
        new = cfg.method_config()
        assert all(getattr(new, k) != v for k, v in gone.items())  # the new defaults differ
        old = cfg.to_dict()
        for k in gone:
            del old["method_options"][k]
        run = tmp_path / method
        run.mkdir()
        (run / "config.json").write_text(json.dumps(old))
        resumed = run_config(run).method_config()
        assert {k: getattr(resumed, k) for k in gone} == gone
        (run / "config.json").write_text(json.dumps(cfg.to_dict()))  # saved with them: as saved
        assert {k: getattr(run_config(run).method_config(), k) for k in gone} == {k: getattr(new, k) for k in gone}
