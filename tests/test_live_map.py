"""The live map of issue 10: time-based snapshots, aligned layouts, the transition, the GIF export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.eval.knn import knn_leave_one_out
from engine.eval.projection import align_layout
from engine.training.monitor import SnapshotClock


def test_snapshot_clock_is_time_based_and_caps_its_cost():
    c = SnapshotClock(5.0)
    assert c.due(0.0)  # the step-0 snapshot (random init): its warm-up cost does not space out the next
    c.done(0.0, 0.1, first=True)
    assert not c.due(4.9) and c.due(5.0)
    c.done(5.0, 1.0)  # a snapshot that took 1 s: the next waits 9 s of training (cost <= 10%)
    assert not c.due(13.9) and c.due(14.0)
    assert c.spent_s == pytest.approx(1.1)
    assert not SnapshotClock(0).due(100.0)


def test_session_snapshots_by_time_with_random_init_first(tmp_path):
    from engine.config import RunConfig
    from engine.session import Session

    cfg = RunConfig.from_dict(dict(
        method="simclr", backbone="small_cnn", epochs=0, minutes=0.1, device="cpu", runs_root=str(tmp_path),
        data={"spec": "builtin:shapes:200", "image_size": 16},
        optim={"batch_size": 16},
        eval={"final_eval": False, "knn_every_epochs": 0, "embed_every_epochs": 0, "snapshot_every_s": 0.5,
              "embed_size": 40}))
    msgs = []
    s = Session(cfg, msgs.append)
    s.run()
    evals = [m for m in msgs if type(m).__name__ == "EvalResult" and m.kind_name == "knn_monitor"]
    embeds = [m for m in msgs if type(m).__name__ == "Embedding"]
    assert embeds and embeds[0].step == 0  # the random-init map is the first frame
    assert evals[0].step == 0 and evals[0].values["random_init_knn"] == evals[0].values["knn_top1"]
    assert all("random_init_knn" not in e.values for e in evals[1:])
    assert len(embeds) >= 2 and [e.step for e in embeds] == sorted(e.step for e in embeds)
    # by time: snapshots are at least 0.5 s of training apart, so 6 s of training has at most ~13
    assert len(embeds) <= s.train_time / 0.5 + 2


def test_knn_leave_one_out_excludes_the_point_itself():
    f = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert knn_leave_one_out(f, y, 2, k=1)[0] == 1.0
    # every point alone in its class: its only neighbour has the other class
    assert knn_leave_one_out(f, torch.tensor([0, 1, 0, 1]), 2, k=1)[0] == 0.0


def test_aligned_layouts_of_the_same_features_are_not_mirrored():
    from engine.eval.projection import project

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 4
    feats = (centres[np.repeat(np.arange(4), 50)] + rng.normal(size=(200, 16))).astype(np.float32)
    ref = project(feats, "pca")
    mirrored = ref * np.array([-1.0, 1.0], np.float32)  # the same layout, flipped
    rotated = ref @ np.array([[0.0, -1.0], [1.0, 0.0]], np.float32)
    for other in (mirrored, rotated):
        assert not np.allclose(other, ref, atol=1e-3)
        np.testing.assert_allclose(align_layout(other, ref), ref, atol=1e-4)
    # a warm-started re-layout (project with init) comes back in the reference's orientation
    again = project(feats + rng.normal(scale=0.05, size=feats.shape).astype(np.float32), "pca", init=mirrored)
    tri = rng.choice(200, size=(300, 3))

    def orient(c):
        a, b, d = c[tri[:, 0]], c[tri[:, 1]], c[tri[:, 2]]
        return np.sign((b - a)[:, 0] * (d - a)[:, 1] - (b - a)[:, 1] * (d - a)[:, 0])
    assert np.mean(orient(again) == orient(mirrored)) > 0.9


def test_the_transition_interpolates_between_layouts(qtbot):
    from app.map.map_widget import EmbeddingMap
    from app.map.movie import glide

    a = np.zeros((5, 2), np.float32)
    b = np.ones((5, 2), np.float32) * 4
    mid = glide(a, b, 0.5)
    np.testing.assert_allclose(mid, 2.0)
    assert (glide(a, b, 0.25) < 2).all() and (glide(a, b, 0.25) > 0).all()
    np.testing.assert_allclose(glide(a, b, 1.0), b)

    m = EmbeddingMap()
    qtbot.addWidget(m)
    m.resize(300, 300)
    m.show()
    m.set_points(a)
    m.move_to(b, duration_ms=400)
    seen = []
    m._anim.timeout.connect(lambda: seen.append(m._current_positions()[0, 0]))
    qtbot.waitSignal(m.animationFinished, timeout=3000).wait()
    between = [v for v in seen if 0.01 < v < 3.99]
    assert len(between) >= 2, seen  # the points glided through intermediate positions
    assert seen == sorted(seen)
    np.testing.assert_allclose(m._current_positions(), b)
    # the view follows a layout that shrinks (no map lost in a corner of the old extent)
    m.set_points(np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32) * 10)
    small = np.random.default_rng(1).normal(size=(50, 2)).astype(np.float32)
    m.move_to(small, duration_ms=200)
    qtbot.waitSignal(m.animationFinished, timeout=3000).wait()
    assert m.vb.viewRect().width() < 4 * (small[:, 0].max() - small[:, 0].min())


def _store_with_snapshots(n_snaps=4, n=60):
    from app.map.model import Entry, MapState, MapStore
    from engine.messages import FeatureSource

    rng = np.random.default_rng(1)
    store = MapStore()
    store.open("/tmp/run-x", live=True)
    labels = np.repeat(np.arange(3), n // 3)
    idx = np.arange(n)
    for i in range(n_snaps):
        key = f"step:{i * 10}"
        store.add_entry(Entry(key, i * 10, float(i), FeatureSource.LIVE))
        st = MapState(key, rng.normal(size=(n, 8)).astype(np.float32), idx, labels, ["a", "b", "c"], step=i * 10)
        st.layouts["umap"] = rng.normal(size=(n, 2)).astype(np.float32)
        store.states[key] = st
        store.knn.add(i * 10, {"knn_top1": 0.3 + 0.1 * i, **({"random_init_knn": 0.3} if i == 0 else {})})
    store.current = store.states[key]
    return store


def test_gif_export_has_one_frame_per_snapshot(tmp_path):
    from PIL import Image

    from app.map.movie import write_gif

    store = _store_with_snapshots(4)
    frames = store.movie_frames("umap")
    assert len(frames) == 4
    assert frames[0][2] == "kNN top-1 0.30 (random init)  ·  chance 0.33"
    assert "random init 0.30" in frames[1][2]
    assert "chance 0.33" in frames[-1][2] and "0.60" in frames[-1][2]
    colors = np.zeros((60, 3), np.uint8)
    path = tmp_path / "map.gif"
    assert write_gif(str(path), frames, colors) == 4
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 4
        im.seek(3)
        assert im.size[0] > 100


def test_headline_shows_knn_random_init_and_chance():
    store = _store_with_snapshots(3)
    assert store.headline() == "kNN top-1 0.50  ·  random init 0.30  ·  chance 0.33"
    store.current = store.states["step:10"]
    assert store.headline().startswith("kNN top-1 0.40")


def test_a_new_run_forgets_the_previous_runs_rings(qtbot):
    from app.map.panel import EmbeddingPanel

    p = EmbeddingPanel(None)
    qtbot.addWidget(p)
    p.map.set_points(np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32))
    p.map.set_focus(3)
    p.map.set_marked([4, 5, 6])
    assert len(p.map.marks.data) == 3
    p.set_run("/tmp/next-run", live=True)
    p.map.set_points(np.random.default_rng(1).normal(size=(50, 2)).astype(np.float32))
    p.map.move_to(np.zeros((50, 2), np.float32), animate=False)
    assert len(p.map.marks.data) == 0 and len(p.map.focus.data) == 0


def test_panel_exports_the_runs_maps_as_a_gif(qtbot, tmp_path):
    from PIL import Image

    from app.map.panel import EmbeddingPanel

    p = EmbeddingPanel(None)
    qtbot.addWidget(p)
    p.store.__dict__.update(_store_with_snapshots(5).__dict__)
    got = []
    assert p.export_gif(str(tmp_path / "run.gif"), got.append)
    qtbot.waitUntil(lambda: len(got) > 0, timeout=10000)
    assert got == [5]
    with Image.open(tmp_path / "run.gif") as im:
        assert im.n_frames == 5
