"""The embedding map's Qt-free store: timeline, maps, colouring, highlighted class, neighbours, selection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from app.map.model import COLOR_CLASS, COLOR_CLUSTER, GRADIENT_LEVELS, Entry, MapState, MapStore


def reply(n=30, labels=True, seed=0, **extra):
    rng = np.random.default_rng(seed)
    d = {"features": rng.normal(size=(n, 8)).astype(np.float32), "indices": np.arange(100, 100 + n),
         "labels": (np.arange(n) % 3) if labels else None, "class_names": ["a", "b", "c"] if labels else [],
         "coords": rng.normal(size=(n, 2)), "step": 40, "epoch": 2.0}
    d.update(extra)
    return d


def shown(store: MapStore, key="step:40", **kw) -> MapState:
    state = store.first_map(key, reply(**kw))
    store.show(state, same_points=False)
    return state


def test_store_imports_no_qt():
    # (the app package reads PySide6's version number; no Qt module loads)
    code = "import sys, app.map.model; bad = [m for m in sys.modules if m.startswith(('PySide6.Qt', 'pyqtgraph', " \
           "'torch'))]; print(bad); sys.exit(1 if bad else 0)"
    r = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_timeline_keeps_snapshots_in_step_order_and_extractions_last():
    store = MapStore()
    store.open("/runs/r1", live=True)
    assert store.timeline_text(0) == "no snapshots"
    assert store.add_entry(Entry.checkpoint("eval", 500)) == 0
    for step in (30, 10):
        store.add_entry(Entry.snapshot({"step": step, "epoch": step / 10}))
    live = Entry.live_message(SimpleNamespace(step=20, epoch=2.0, features=np.zeros((4, 2)), labels=None,
                                              indices=np.arange(4)))
    assert store.add_entry(live) == 1
    assert [e.key for e in store.entries] == ["step:10", "step:20", "step:30", "ckpt:eval:500"]
    assert store.add_entry(Entry.snapshot({"step": 20, "epoch": 2.0})) == 1  # the same key replaces
    assert len(store.entries) == 4 and store.entries[1].kind == "snapshot"
    assert store.timeline_text(2) == "epoch 3 · step 30  (3/4)"
    assert store.entries[3].title == "from the checkpoint" and live.title == "epoch 2 · step 20 · live"
    new = store.unknown_snapshots([{"step": 10}, {"step": 40, "epoch": 4.0}])
    assert [e.key for e in new] == ["step:40"]
    store.open("/runs/r2")
    assert store.entries == [] and store.run_dir == "/runs/r2" and not store.live


def test_map_sources_and_warm_start():
    store = MapStore()
    store.open("/runs/r1")
    snap = Entry.snapshot({"step": 40, "epoch": 2.0})
    store.add_entry(snap)
    assert store.map_source(snap, "eval", 100) == {"snapshot": 40}
    assert store.map_source(Entry.checkpoint("train", 100), "train", 100) == {"split": "train", "sample": 100}
    assert store.warm_start(snap, None) == {}  # nothing shown yet
    state = shown(store)
    assert state.layouts["pca"].shape == (30, 2) and state.class_names == ["a", "b", "c"]
    src = store.map_source(snap, "eval", 100)  # known now: its features travel with the request
    assert src["features"] is state.features and src["step"] == 40
    coords = state.layouts["pca"]
    other = Entry.snapshot({"step": 80})
    init = store.warm_start(other, coords)  # another snapshot of the run: the same images, start from here
    assert np.array_equal(init["init"], coords) and init["init"] is not coords
    assert store.warm_start(other, coords[:5]) == {}  # the map draws something else
    ckpt = Entry.checkpoint("train", 30)
    assert ckpt.split == "train" and ckpt.key == "ckpt:train:30"
    assert store.warm_start(ckpt, coords) == {}  # other images (unknown until mapped)
    assert store.cached_layout(snap, "pca") is state.layouts["pca"] and store.cached_layout(snap, "umap") is None


def test_thumbnails_are_cached_and_reused():
    store = MapStore()
    store.open("/runs/r1")
    e = Entry.snapshot({"step": 40})
    store.add_entry(e)
    thumbs = np.zeros((30, 4, 4, 3), np.uint8)
    assert store.needs_thumbs(e)
    state = store.first_map(e.key, reply(thumbs=thumbs, paths=[f"p{i}.png" for i in range(30)]))
    assert state.thumbs is thumbs and state.paths[3] == "p3.png"
    assert not store.needs_thumbs(e)
    other = store.first_map("step:80", reply())  # the same images in another snapshot: thumbnails from the cache
    assert other.thumbs is thumbs
    # an unlabeled snapshot gets its labels (and a note) from a later stage
    bare = MapState("k", np.zeros((30, 2)), np.arange(100, 130), None, [])
    store.apply_meta(bare, {"labels": np.ones(30, int), "note": "labels from the dataset"}, None)
    assert bare.labels.sum() == 30 and bare.note == "labels from the dataset" and bare.class_names == ["a", "b", "c"]


def test_coloring_by_class_cluster_and_property():
    store = MapStore()
    store.open("/runs/r1")
    assert store.coloring(COLOR_CLASS) is None
    state = shown(store)
    state.labels = np.where(np.arange(30) == 0, -1, np.arange(30) % 3)  # one unlabeled point
    assert store.color_choices() == [COLOR_CLASS, COLOR_CLUSTER]
    c = store.coloring(COLOR_CLASS)
    assert c.kind == "class" and c.n_colors == 4 and c.title == "Class (3)" and c.names == ["a", "b", "c"]
    assert c.idx[0] == 3 and list(c.counts) == [9, 10, 10] and c.dim is None
    pending = store.coloring(COLOR_CLUSTER)
    assert pending.kind == "pending" and pending.n_colors == 1 and not pending.idx.any()
    state.clusters = np.arange(30) % 5
    state.properties = {"agreement": np.linspace(0.0, 1.0, 30)}
    assert store.color_choices() == [COLOR_CLASS, COLOR_CLUSTER, "agreement"]
    c = store.coloring(COLOR_CLUSTER)
    assert c.kind == "cluster" and c.n_colors == 5 and c.names[-1] == "cluster 5" and c.counts.sum() == 30
    store.toggle_isolated(2)  # highlight a cluster
    c = store.coloring(COLOR_CLUSTER)
    assert np.array_equal(c.dim, state.clusters != 2)
    g = store.coloring("agreement")
    assert g.kind == "gradient" and g.n_colors == GRADIENT_LEVELS and (g.lo, g.hi) == (0.0, 1.0)
    assert g.idx[0] == 0 and g.idx[-1] == GRADIENT_LEVELS - 1 and g.dim is None
    assert store.isolated is None  # a gradient has nothing to highlight
    store.toggle_isolated(1)
    store.toggle_isolated(1)
    assert store.isolated is None


def test_selection_dims_the_rest_and_counts_labels():
    store = MapStore()
    store.open("/runs/r1")
    state = shown(store)
    assert store.selection_histogram() is None
    rows = np.array([0, 3, 6, 1, 29])
    store.select(rows)
    c = store.coloring(COLOR_CLASS)
    assert c.dim.sum() == 25 and not c.dim[rows].any()
    names, counts, title = store.selection_histogram()
    assert names == ["a", "b", "c"] and counts == [3, 1, 1] and title == "Labels in the selection"
    state.labels, state.class_names = None, []
    state.clusters = np.arange(30) % 4
    names, counts, title = store.selection_histogram()
    assert title == "Clusters in the selection" and sum(counts) == 5 and names[0] == "cluster 1"
    # other points shown: the selection and the clicked point are forgotten; the same points keep them
    store.query(3, 4)
    store.show(state, same_points=True)
    assert len(store.selected_rows) == 5 and store.clicked_row == 3
    store.show(store.first_map("ckpt:eval:30", reply(n=12)), same_points=False)
    assert len(store.selected_rows) == 0 and store.clicked_row == -1 and store.neighbor_rows is None


def test_neighbour_query_is_cosine_in_feature_space():
    store = MapStore()
    store.open("/runs/r1")
    state = shown(store, n=50)
    assert store.query(60, 5) is None and store.query(-1, 5) is None
    rows, sims = store.query(7, 6)
    f = state.features / np.linalg.norm(state.features, axis=1, keepdims=True)
    want = f @ f[7]
    want[7] = -np.inf
    assert list(rows) == list(np.argsort(-want)[:6]) and np.allclose(sims, want[rows], atol=1e-5)
    assert store.clicked_row == 7 and store.neighbor_rows is rows
    share = store.same_class_share(7, rows)
    assert share == pytest.approx(np.mean(state.labels[rows] == state.labels[7]))
    assert store.label_text(7) == "b" and "image #107" in store.describe(7) and "<b>b</b>" in store.describe(7)
    assert store.summary(state) == "r1: 50 images · epoch 2 · step 40"
