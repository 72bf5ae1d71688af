"""The attract/repel figure: two views of a few sample images encoded at every snapshot of a two-view method
(engine), placed on the map and measured (app/map/pairs.py), drawn on the map (pytest-qt)."""

from __future__ import annotations

import numpy as np
import pytest

from app.map.pairs import figure, others_alike, place, views_alike


def _session(tmp_path, method: str, epochs: int, **eval_kw):
    from engine.config import RunConfig
    from engine.session import Session

    ev = {"final_eval": False, "knn_every_epochs": 0, "embed_every_epochs": 1, "snapshot_every_s": 0,
          "embed_size": 48, **eval_kw}
    cfg = RunConfig.from_dict(dict(
        method=method, backbone="small_cnn", epochs=epochs, device="cpu", runs_root=str(tmp_path), seed=3,
        data={"spec": "builtin:shapes:96", "image_size": 16}, optim={"batch_size": 32}, eval=ev))
    msgs = []
    s = Session(cfg, msgs.append)
    s.run()
    return s, [m for m in msgs if type(m).__name__ == "Embedding"]


@pytest.mark.slow
def test_a_two_view_run_writes_pairs_whose_views_come_together(tmp_path):
    s, embeds = _session(tmp_path, "simclr", 6)
    assert len(embeds) >= 2
    first, last = embeds[0], embeds[-1]
    pf = last.pair_features
    assert pf is not None and pf.shape[:2] == (16, 2) and pf.shape[2] == last.features.shape[1]
    assert np.allclose(np.linalg.norm(pf, axis=2), 1, atol=1e-4)
    assert np.array_equal(last.pair_rows, np.arange(16))
    # on disk too, the same arrays
    snaps = sorted(tmp_path.glob("*/embeddings/step_*.npz"))
    with np.load(snaps[-1]) as z:
        assert np.allclose(z["pair_features"], pf) and np.array_equal(z["pair_rows"], last.pair_rows)
    # training pulls each image's two views together and pushes the other images of the batch away: the views'
    # cosine rises against the others' (a measurement; at random init every image looks alike to a small CNN)
    def gap(pf):
        return np.mean([views_alike(pf, p) - others_alike(pf, p) for p in range(16)])

    assert gap(pf) > gap(first.pair_features) + 0.05, (gap(first.pair_features), gap(pf))
    assert np.mean([others_alike(pf, p) for p in range(16)]) < \
        np.mean([others_alike(first.pair_features, p) for p in range(16)])
    # the analysis process hands them to the map with the snapshot
    from engine.analysis.map_ops import MapOps

    pts = MapOps._snapshot_points(str(snaps[-1].parent.parent), "latest")
    assert np.allclose(pts.pair_features, pf) and np.array_equal(pts.pair_rows, last.pair_rows)


def test_a_method_without_two_views_writes_no_pairs(tmp_path):
    _, embeds = _session(tmp_path, "rotnet", 1)
    assert embeds and all(e.pair_features is None and e.pair_rows is None for e in embeds)
    for f in tmp_path.glob("*/embeddings/step_*.npz"):
        with np.load(f) as z:
            assert "pair_features" not in z.files
    from engine.analysis.map_ops import MapOps

    pts = MapOps._snapshot_points(str(next(tmp_path.glob("*"))), "latest")  # an old-style snapshot still maps
    assert pts.pair_features is None and len(pts.features) == 48


def test_a_view_equal_to_an_image_is_placed_at_that_image():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(40, 8)).astype(np.float32)
    coords = rng.normal(size=(40, 2)).astype(np.float32)
    assert np.allclose(place(feats[7], feats, coords, k=1), coords[7])
    # k=5: the mean of its five nearest images, itself among them
    got = place(feats[7] * 3.0, feats, coords, k=5)[0]  # the scale does not matter (cosine)
    f = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    near = np.argsort(-(f @ f[7]))[:5]
    assert 7 in near and np.allclose(got, coords[near].mean(0), atol=1e-5)


def test_cosines_of_views_and_of_the_others():
    pf = np.zeros((3, 2, 2), np.float32)
    pf[0] = [[1, 0], [1, 0]]  # the two views of image 0 agree
    pf[1] = [[0, 1], [0, 1]]  # the others are orthogonal to them
    pf[2] = [[-1, 0], [0, 1]]
    assert views_alike(pf, 0) == pytest.approx(1.0)
    # the views of image 0 against the four views of images 1 and 2: 0, 0, -1, 0
    assert others_alike(pf, 0) == pytest.approx(-0.25)


def _store_with_two_snapshots():
    from app.map.model import Entry, MapState, MapStore
    from engine.messages import FeatureSource

    rng = np.random.default_rng(1)
    store = MapStore()
    n, d, p = 30, 6, 4
    states = []
    for step in (0, 10):
        feats = rng.normal(size=(n, d)).astype(np.float32)
        pf = np.stack([feats[:p], feats[:p] + 0.01 * (step == 0)], 1)  # views: (about) their own images
        st = MapState(f"step:{step}", feats, np.arange(n) + 100, None, [], step=step, pair_features=pf,
                      pair_rows=np.arange(p))
        st.layouts["umap"] = rng.normal(size=(n, 2)).astype(np.float32)
        store.add_entry(Entry(st.key, step, 0.0, FeatureSource.SNAPSHOT))
        store.states[st.key] = st
        states.append(st)
    store.current = states[-1]
    return store, states


def test_the_figure_of_the_chosen_image():
    store, (s0, s1) = _store_with_two_snapshots()
    coords = s1.layouts["umap"]
    fig = figure(store, coords, "umap", chosen_row=2)
    assert fig.row == 2 and np.allclose(fig.image, coords[2])
    assert np.allclose(fig.views, place(s1.pair_features[2], s1.features, coords))
    assert fig.trails.shape == (2, 2, 2) and fig.steps == [0, 10]
    assert np.array_equal(fig.others, [0, 1, 3]) and fig.others_from is not None and len(fig.away) == 3
    assert "step 0 → 10" in fig.caption and "other 3 images" in fig.caption
    # not one of the pairs: the first pair; one snapshot only: no arrows, a caption that says so
    assert figure(store, coords, "umap", chosen_row=20).row == 0
    store.states.pop("step:0")
    one = figure(store, coords, "umap")
    assert one.others_from is None and one.trails.shape == (1, 2, 2) and "timeline" in one.caption
    store.current = type(s1)("x", s1.features, s1.indices, None, [])
    assert figure(store, coords, "umap") is None


def test_the_figure_asks_for_the_earlier_snapshots_it_lacks():
    from app.map.model import Entry
    from app.map.pairs import snapshots_wanted
    from engine.messages import FeatureSource

    store, (s0, s1) = _store_with_two_snapshots()
    for step in (2, 4, 6, 8):
        store.add_entry(Entry(f"step:{step}", step, 0.0, FeatureSource.SNAPSHOT))
    # the three before the one shown (nearest first), then the first; step 0 is loaded already
    assert [e.step for e in snapshots_wanted(store, s1)] == [8, 6, 4]
    store.states.pop("step:0")
    assert [e.step for e in snapshots_wanted(store, s1)] == [8, 6, 4, 0]
    assert snapshots_wanted(store, type(s1)("x", s1.features, s1.indices, None, [], step=10)) == []


@pytest.mark.gui
def _show_with_two_snapshots(qtbot, p):
    """Show the panel ``p`` with the two snapshots of :func:`_store_with_two_snapshots` in its store (a run's
    timeline); the later one, to display."""
    store, (s0, s1) = _store_with_two_snapshots()
    p.resize(1000, 700)
    p.show()
    qtbot.waitExposed(p)
    p.store.open("/nonexistent/run")
    for st in (s0, s1):
        p.store.add_entry(store.entry(st.key))
        p.store.states[st.key] = st
    return s1


def test_the_map_toggles_and_draws_the_figure(qtbot):
    from app.map.panel import EmbeddingPanel

    p = EmbeddingPanel(None)
    qtbot.addWidget(p)
    s1 = _show_with_two_snapshots(qtbot, p)
    button, overlay = p.controls.attract, p.attract
    p.loader.display.emit(s1, s1.layouts["umap"], False)
    assert button.isEnabled() and not button.isChecked() and overlay.shown is None
    button.setChecked(True)  # as a click does
    fig = overlay.shown
    assert fig is not None and fig.row == 0 and overlay.views.isVisible() and overlay.caption.isVisible()
    assert "its two views" in overlay.caption.text() and overlay.away.isVisible() == bool(fig.away.any())
    xs, ys = overlay.views.getData()
    assert np.allclose(np.stack([xs, ys], 1), fig.views)
    p.map.pointClicked.emit(3)  # another image of the pairs: the figure follows the choice
    assert overlay.shown.row == 3
    button.setChecked(False)
    assert overlay.shown is None and not overlay.views.isVisible() and not overlay.caption.isVisible()
    # a map without pairs (a method without two views): the toggle is off limits
    bare = type(s1)("step:20", s1.features, s1.indices, None, [], step=20)
    p.loader.display.emit(bare, s1.layouts["umap"], False)
    assert not button.isEnabled()


def test_a_live_snapshot_hands_its_pairs_to_the_map():
    from app.map.model import Entry, MapState, MapStore
    from engine.messages import Embedding

    rng = np.random.default_rng(2)
    feats = rng.normal(size=(10, 4)).astype(np.float32)
    pf, pr = rng.normal(size=(3, 2, 4)).astype(np.float32), np.arange(3)
    entry = Entry.live_message(Embedding(5, 0.5, feats, None, np.arange(10), pair_features=pf, pair_rows=pr))
    store = MapStore()
    src = store.map_source(entry, "eval", 100)  # what the analysis process is asked to map
    assert np.array_equal(src["pair_features"], pf) and np.array_equal(src["pair_rows"], pr)
    from types import SimpleNamespace

    from engine.analysis.map_ops import MapOps

    pts = MapOps()._map_points(SimpleNamespace(args=src))  # the analysis process reads them back
    assert np.array_equal(pts.pair_features, pf) and np.array_equal(pts.pair_rows, pr)
    state = MapState.from_reply(entry.key, {**src, "coords": np.zeros((10, 2))})
    assert np.array_equal(state.pair_features, pf) and np.array_equal(state.pair_rows, pr)
    # an older message (no pairs) still makes an entry and a map
    old = Entry.live_message(Embedding(6, 0.6, feats, None, np.arange(10)))
    assert old.pair_features is None and store.map_source(old, "eval", 100)["pair_features"] is None


@pytest.mark.slow
@pytest.mark.gui
def test_an_opened_run_draws_the_figure_with_its_earlier_snapshots(qtbot, tmp_path):
    from app.common.analysis_client import AnalysisClient
    from app.map.panel import EmbeddingPanel

    s, embeds = _session(tmp_path, "simclr", 2)
    client = AnalysisClient(warm=False)
    try:
        p = EmbeddingPanel(client)
        qtbot.addWidget(p)
        p.resize(1000, 700)
        p.projection.setCurrentIndex(p.projection.findData("pca"))
        p.show()
        p.set_run(str(s.run_dir))
        qtbot.waitUntil(lambda: p.current is not None and p.request_id is None and not p.map.animating,
                        timeout=60_000)
        assert p.current.step == embeds[-1].step and p.controls.attract.isEnabled()
        p.controls.attract.setChecked(True)
        assert p.attract.shown is not None  # drawn at once from the snapshot shown
        # the earlier snapshot is mapped in the background: then the arrows and the caption's "from" step
        qtbot.waitUntil(lambda: p.attract.shown.others_from is not None, timeout=60_000)
        assert p.attract.shown.steps == [e.step for e in embeds]
        assert f"step {embeds[0].step} → {embeds[-1].step}" in p.attract.caption.text()
        assert p.current.step == embeds[-1].step  # the map shown stayed
    finally:
        client.shutdown()


def test_the_map_remembers_its_choices_and_draws_the_figure_at_once(qtbot):
    """The map's choices come back in the next session (the window stores ``save_state``): projection, the
    attract/repel figure, which images (not how many: the box shows the last map's count); the figure is then drawn as soon as a two-view snapshot
    is shown. A state it cannot read changes nothing."""
    from app.map.panel import EmbeddingPanel

    first = EmbeddingPanel(None)
    qtbot.addWidget(first)
    first.projection.setCurrentIndex(first.projection.findData("pca"))
    first.split.setCurrentIndex(first.split.findData("train"))
    first.sample.setValue(2000)
    first.controls.attract.setEnabled(True)
    first.controls.attract.setChecked(True)
    state = first.save_state()

    p = EmbeddingPanel(None)
    qtbot.addWidget(p)
    assert (p.projection_name, p.split.currentData(), p.controls.attract.isChecked()) != ("pca", "train", True)
    for bad in ("", "not json", "[1, 2]", None):
        p.restore_state(bad)
    assert not p.controls.attract.isChecked() and p.projection_name != "pca"
    p.restore_state(state)
    assert (p.projection_name, p.split.currentData(), p.controls.attract.isChecked()) == ("pca", "train", True)
    assert p.sample.value() == 5000

    s1 = _show_with_two_snapshots(qtbot, p)
    p.loader.display.emit(s1, s1.layouts["umap"], False)
    assert p.controls.attract.isEnabled() and p.attract.shown is not None
