"""The analysis worker and its helpers (no Qt): projections, neighbours, export, the worker's requests
on a tiny trained run, and the request lanes (cancel / supersede)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.analysis import AnalysisWorker, Job, Lane, Request, list_snapshots
from engine.eval.export import NPY_PARTS, export_encoder, loading_example, read_embedding_csv, write_embedding
from engine.eval.neighbors import nearest_neighbors
from engine.eval.projection import (
    ProjectionCancelled,
    align_layout,
    knn_graph,
    normalize_layout,
    pca_2d,
    umap_layout,
)


# -- a tiny run, trained once per session and shared with test_embedding_panel.py ----------------------------
def train_tiny_run(base: Path) -> tuple[str, list]:
    """builtin:shapes:200, RotNet (one rotation per image), 2 epochs of a few steps, a snapshot per epoch."""
    from engine.config import default_config
    from engine.session import Session

    run_dir = base / "tiny-run"
    cache = getattr(train_tiny_run, "cache", None)
    if cache is not None and cache[0] == str(run_dir):
        return cache
    msgs: list = []
    cfg = default_config("rotnet", data={"spec": "builtin:shapes:200", "image_size": 32}, epochs=2, device="cpu",
                         eval={"embed_every_epochs": 1, "linear_probe_epochs": 2, "knn_every_epochs": 1},
                         method_options={"all_four": False, "head_hidden": 0})
    cfg.optim.batch_size = 48
    summary = Session(cfg, msgs.append, run_dir=run_dir).run()
    assert summary["reason"] == "completed", summary
    train_tiny_run.cache = (str(run_dir), msgs)
    return train_tiny_run.cache


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.getbasetemp())


def run_op(worker: AnalysisWorker, op: str, **args) -> list:
    out: list = []
    worker.emit = out.append
    worker.handle(Request(1, op, args))
    return out


@pytest.fixture(scope="module")
def worker():
    w = AnalysisWorker(lambda r: None, "cpu")
    w.warm.set()
    return w


# -- projections ---------------------------------------------------------------------------------------------
def clusters(n=240, d=16, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 3
    y = np.arange(n) % k
    x = centres[y] + rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def knn2d_accuracy(coords, y, k=5):
    d = ((coords[:, None] - coords[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nb = np.argsort(d, 1)[:, :k]
    return float(np.mean([np.bincount(y[r]).argmax() == y[i] for i, r in enumerate(nb)]))


def test_pca_and_alignment():
    x, y = clusters()
    p = pca_2d(x)
    assert p.shape == (len(x), 2) and np.isfinite(p).all()
    assert knn2d_accuracy(p, y) > 0.9
    n = normalize_layout(p)
    assert np.percentile(np.abs(n - np.median(n, 0)), 98) == pytest.approx(1.0, rel=1e-3)
    theta = 0.7
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]], np.float32)
    moved = (n @ rot.T) * 2.5 + 3.0
    moved[:, 0] *= -1  # a mirror image too
    assert np.abs(align_layout(moved, n) - n).max() < 1e-4


def test_umap_layout_progress_cancel_and_warm_start():
    x, y = clusters()
    frames = []
    cold = umap_layout(x, n_epochs=60, partial=lambda c, f: frames.append(f), partial_every_s=0.0)
    assert cold.shape == (len(x), 2) and np.isfinite(cold).all()
    assert knn2d_accuracy(cold, y) > 0.9, "UMAP must keep the clusters apart"
    assert frames and all(0 < f < 1 for f in frames) and frames == sorted(frames)

    cancel = threading.Event()

    def stop_early(c, f):
        cancel.set()

    with pytest.raises(ProjectionCancelled):
        umap_layout(x, n_epochs=200, cancel=cancel, partial=stop_early, partial_every_s=0.0)

    # a warm start honours the layout it starts from: clusters placed on a line stay on that line,
    # while a cold start (from PCA) arranges them its own way
    line = normalize_layout(cold).copy()
    for c in range(3):
        m = y == c
        line[m] = line[m] - line[m].mean(0) + np.array([3.0 * (c - 1), 0.0], np.float32)
    line = normalize_layout(line)
    warm = align_layout(normalize_layout(umap_layout(x, init=line, n_epochs=40)), line)
    fresh = align_layout(normalize_layout(umap_layout(x, n_epochs=40)), line)
    cen = np.stack([warm[y == c].mean(0) for c in range(3)])
    assert np.abs(cen[:, 1]).max() < 0.2 * np.ptp(cen[:, 0]), "the clusters left the line they started on"
    assert np.median(np.linalg.norm(warm - line, axis=1)) < 0.5 * np.median(np.linalg.norm(fresh - line, axis=1))

    idx, dist = knn_graph(x, 6)
    assert (idx[:, 0] == np.arange(len(x))).all() and (dist[:, 0] == 0).all()
    assert (np.diff(dist, axis=1) >= -1e-6).all()


def test_nearest_neighbors_match_brute_force():
    rng = np.random.default_rng(2)
    bank = rng.normal(size=(500, 24)).astype(np.float32)
    q = bank[17]
    idx, sims = nearest_neighbors(bank, q, 9, exclude=17)
    norm = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    brute = norm @ norm[17]
    brute[17] = -np.inf
    order = np.argsort(-brute)[:9]
    assert list(idx) == list(order)
    assert np.allclose(sims, brute[order], atol=1e-6)
    assert 17 not in idx


# -- export ------------------------------------------------------------------------------------------------------
def test_export_embedding_roundtrip(tmp_path):
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(30, 7)).astype(np.float32)
    coords = rng.normal(size=(30, 2)).astype(np.float32)
    labels = rng.integers(-1, 3, 30)
    indices = rng.permutation(100)[:30]
    paths = [f"/data/img_{i}.png" for i in indices]
    npz, csv_path = write_embedding(tmp_path / "emb", feats, coords, labels, indices, paths=paths,
                                    class_names=["a", "b", "c"])
    z = np.load(npz)
    assert np.array_equal(z["features"], feats) and np.array_equal(z["coords"], coords)
    assert np.array_equal(z["labels"], labels) and np.array_equal(z["indices"], indices)
    loaded = {p: np.load(tmp_path / f"emb_{p}.npy") for p in NPY_PARTS}
    assert np.array_equal(loaded["features"], feats) and np.array_equal(loaded["coords"], coords)
    assert np.array_equal(loaded["labels"], labels) and np.array_equal(loaded["indices"], indices)
    assert list(loaded["paths"]) == paths
    back = read_embedding_csv(csv_path)
    assert np.array_equal(back["features"], feats) and np.array_equal(back["coords"], coords)
    assert np.array_equal(back["labels"], labels) and np.array_equal(back["indices"], indices)
    assert back["paths"] == paths
    assert back["classes"][int(np.flatnonzero(labels == 1)[0])] == "b"
    assert back["classes"][int(np.flatnonzero(labels == -1)[0])] == ""


@pytest.mark.parametrize("backbone,fmt", [("small_cnn", "own"), ("resnet18", "torchvision")])
def test_encoder_export_loading_example_restores_the_encoder(tmp_path, backbone, fmt):
    from torchvision.transforms.functional import normalize

    from engine.models import build_backbone
    from engine.models.backbones import MEAN, STD

    torch.manual_seed(0)
    enc = build_backbone(backbone, 32).eval()
    path, example = export_encoder(enc, tmp_path / "enc.safetensors", backbone, 32, "test", fmt)
    assert example == loading_example(backbone, 32, path, fmt) and "\n" not in example
    ns: dict = {}
    exec(example, ns)  # the one-liner the UI and README show
    restored = (ns.get("encoder") or ns["m"]).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        want = enc(x)
        got = restored(x) if fmt == "own" else restored(normalize(x, MEAN, STD))
    assert torch.allclose(want, got, atol=1e-5)


# -- the worker on a trained run -------------------------------------------------------------------------------------
def test_worker_map_stages_match_the_run(tiny_run, worker):
    from engine.session import resume_config
    from engine.training.rundata import prepare_data

    run_dir, msgs = tiny_run
    snaps = list_snapshots(run_dir)
    assert [s["epoch"] for s in snaps] == [1.0, 2.0]
    out = run_op(worker, "map", run_dir=run_dir, snapshot="latest", projection="pca", key="k1")
    kinds = [(r.kind, r.data.get("stage")) for r in out if r.kind != "progress"]
    # the dataset is not read yet: the map comes first, its thumbnails and class names right after
    assert kinds == [("partial", "first"), ("partial", "meta"), ("partial", "extras"), ("result", None)]
    first, meta, extras, result = [r.data for r in out if r.kind != "progress"]
    assert "thumbs" not in first and meta["key"] == "k1"
    # once the data is in memory, one stage carries both
    out = run_op(worker, "map", run_dir=run_dir, snapshot="latest", projection="pca", key="k2")
    kinds = [(r.kind, r.data.get("stage")) for r in out if r.kind != "progress"]
    assert kinds == [("partial", "first"), ("partial", "extras"), ("result", None)]
    first2 = out[0].data if out[0].kind == "partial" else out[1].data
    assert np.array_equal(first2["thumbs"], meta["thumbs"])
    first.update(meta)
    with np.load(snaps[-1]["path"]) as z:
        assert np.array_equal(first["features"], z["features"])
        assert np.array_equal(first["indices"], z["indices"])
    # the live Embedding message of the same epoch carries the same points
    live = [m for m in msgs if type(m).__name__ == "Embedding"][-1]
    assert np.array_equal(live.indices, first["indices"]) and np.allclose(live.features, first["features"])
    # thumbnails and labels are those of the dataset images the indices name
    src = prepare_data(resume_config(run_dir)).embed_source
    idx = first["indices"]
    assert np.array_equal(first["thumbs"], src.get(idx).permute(0, 2, 3, 1).numpy())
    assert np.array_equal(first["labels"], src.get_labels(idx).numpy())
    assert first["class_names"] == src.class_names
    assert first["coords"].shape == (len(idx), 2) and result["coords"].shape == (len(idx), 2)
    assert len(extras["clusters"]) == len(idx) and extras["clusters"].max() < len(src.class_names)
    agree = extras["properties"]["neighbour agreement"]
    assert agree.shape == (len(idx),) and 0 <= agree.min() and agree.max() <= 1

    # a map extracted from the checkpoint: the session's sample, features of the final encoder; a part of
    # it is shown first while the rest is extracted
    out = run_op(worker, "map", run_dir=run_dir, projection="pca", sample=120, thumbs=False, preview=40)
    stages = [r.data.get("stage") for r in out if r.kind == "partial"]
    assert stages == ["preview", "first", "extras"] and out[-1].kind == "result"
    pre, first = [r.data for r in out if r.data.get("stage") in ("preview", "first")]
    assert len(first["indices"]) == 120 and len(pre["indices"]) == 40 and "thumbs" not in first
    pos = np.searchsorted(first["indices"], pre["indices"])
    assert np.array_equal(first["indices"][pos], pre["indices"])
    assert np.allclose(first["features"][pos], pre["features"], atol=1e-6)
    assert pre["thumbs"].shape == (40, 32, 32, 3)
    again = run_op(worker, "map", run_dir=run_dir, projection="pca", sample=120, thumbs=False, preview=40)
    assert "preview" not in [r.data.get("stage") for r in again], "features are cached: no preview needed"


def test_worker_evaluate_retrieve_pretext_filters(tiny_run, worker):
    run_dir, _ = tiny_run
    out = run_op(worker, "evaluate", run_dir=run_dir, supervised="none", probe_epochs=3)
    assert out[-1].kind == "result", out[-1].data
    res = out[-1].data
    assert [r["kind"] for r in res["rows"]] == ["run", "random_init"]
    for r in res["rows"]:
        assert 0 <= r["knn_top1"] <= 1 and 0 <= r["linear_top1"] <= 1
        conf = np.asarray(r["knn_confusion"])
        assert conf.sum() == res["num_test"] and conf.shape == (8, 8)
        assert np.isclose(np.trace(conf) / conf.sum(), r["knn_top1"], atol=1e-6)
    assert any(r.kind == "partial" for r in out), "rows arrive one by one"

    out = run_op(worker, "retrieve", run_dir=run_dir, index=5, k=6)
    d = out[-1].data
    assert list(d["similarities"]) == sorted(d["similarities"], reverse=True) and 5 not in d["indices"]
    ctx = worker.context(run_dir)
    feats = ctx.features("eval", np.arange(len(ctx.source("eval"))))
    brute = feats @ feats[5]
    brute[5] = -np.inf
    assert list(d["indices"]) == list(np.argsort(-brute)[:6])

    d = run_op(worker, "pretext", run_dir=run_dir, n=64)[-1].data
    assert d["method"] == "rotnet" and 0 <= d["accuracy"] <= 1
    assert np.asarray(d["confusion"]).sum() == 4 * 64
    assert len(d["examples"]) == len(d["captions"]) <= 24

    d = run_op(worker, "filters", run_dir=run_dir)[-1].data
    assert d["filters"].shape == (32, 3, 3, 3) and d["filters"].dtype == np.uint8
    assert d["random_filters"].shape == (32, 3, 3, 3)

    d = run_op(worker, "reconstruct", run_dir=run_dir)[-1].data
    assert "note" in d  # RotNet does not reconstruct

    bad = run_op(worker, "map", run_dir=run_dir, snapshot=999, projection="pca")[-1]
    assert bad.kind == "error" and "no embedding snapshot at step 999" in bad.data["message"]


def test_one_number_per_question(tiny_run, worker, tmp_path):
    """The run's final evaluation, the Inspector's evaluation and the comparison of runs score one encoder with
    one protocol: the same kNN and linear-probe numbers, each named by its protocol; a result measured once is
    reused, and measured again (no cache) it is the same number."""
    import json
    import shutil

    run_dir, _ = tiny_run
    res = json.loads((Path(run_dir) / "results.json").read_text())
    proto = res["protocol"]
    assert proto["kind"] == "final" and proto["test"] == res["num_test"] and proto["probe_epochs"] == 2
    ev = run_op(worker, "evaluate", run_dir=run_dir, supervised="none")[-1].data
    this = ev["rows"][0]
    assert this["knn_top1"] == res["knn_top1"] and this["linear_top1"] == res["linear_top1"]
    assert this["cached"] == "results.json" and ev["protocol"] == proto
    cmp = run_op(worker, "compare", run_dirs=[run_dir])[-1].data
    assert cmp["rows"][0]["knn_top1"] == res["knn_top1"] and cmp["rows"][0]["linear_top1"] == res["linear_top1"]
    # measured afresh with the same protocol: the very same numbers (not a second opinion)
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "results.json").unlink()
    fresh = run_op(worker, "evaluate", run_dir=str(copy), supervised="none")[-1].data["rows"][0]
    assert "cached" not in fresh
    assert fresh["knn_top1"] == pytest.approx(res["knn_top1"], abs=1e-6)
    assert fresh["linear_top1"] == pytest.approx(res["linear_top1"], abs=1e-6)
    # another probe length is another question, and says so
    other = run_op(worker, "evaluate", run_dir=run_dir, supervised="none", probe_epochs=3)[-1].data
    assert "cached" not in other["rows"][0] and other["protocol"]["probe_epochs"] == 3
    # what the online monitor scores is written down too
    mon = json.loads((Path(run_dir) / "data.json").read_text())["monitor"]
    assert mon["k"] == 20 and mon["epoch_test"] > 0


# -- lanes: cancel and supersede -----------------------------------------------------------------------------------
class _SlowWorker:
    """Stands in for AnalysisWorker: every request waits until cancelled (or 5 s)."""

    def __init__(self):
        self.replies: list = []

    def handle(self, request, job):
        job.cancel.wait(5)
        job.send("cancelled" if job.cancel.is_set() else "result", {})


def test_lane_supersede_and_cancel():
    w = _SlowWorker()
    lane = Lane(w, "test")
    try:
        emit = w.replies.append
        jobs = [Job(Request(i, "map", {}, kind="map"), emit) for i in (1, 2, 3)]
        other = Job(Request(4, "filters", {}), emit)
        lane.submit(jobs[0])
        time.sleep(0.05)
        lane.submit(other)  # waits behind job 1
        lane.submit(jobs[1])  # cancels the running job 1
        lane.submit(jobs[2])  # drops the pending job 2
        assert lane.cancel(4)  # a pending request cancelled by id
        deadline = time.time() + 5
        while time.time() < deadline and not any(r.id == 3 for r in w.replies):
            if lane.current is not None and lane.current.request.id == 3:
                lane.cancel(3)
            time.sleep(0.01)
        got = {r.id: r.kind for r in w.replies}
        assert got == {1: "cancelled", 2: "cancelled", 4: "cancelled", 3: "cancelled"}
    finally:
        lane.stop()


def _thread_priorities(out) -> None:
    import threading

    from engine.analysis import _yield_thread

    got = {}

    def warm():
        _yield_thread(7)
        got["warm"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    t = threading.Thread(target=warm)
    t.start()
    t.join()
    out.put((got["warm"], os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="per-thread priority needs Linux")
def test_the_umap_warm_up_yields_the_cpu_but_requests_keep_their_priority():
    """The warm-up thread (seconds of numba compiling at launch) runs 7 nice steps below the process,
    whose own thread (the one that answers requests) keeps its priority."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_thread_priorities, args=(q,))
    p.start()
    warm, main = q.get(timeout=60)
    p.join(30)
    assert warm == min(19, main + 7) and warm > main


def test_many_points_get_an_approximate_neighbour_graph_that_finds_the_neighbours():
    """Above EXACT_KNN_MAX points the neighbour graph is searched cell by cell (an exact graph of 50,000
    points took over 30 s): each point first, sorted by distance, and most of the exact neighbours found."""
    from engine.eval.projection import EXACT_KNN_MAX, ivf_knn_graph, knn_graph

    x, _ = clusters(n=EXACT_KNN_MAX + 3000, d=32, k=12, seed=3)
    x = x + 0.3 * np.random.default_rng(4).normal(size=x.shape).astype(np.float32)
    idx, dist = knn_graph(x, 10)
    assert idx.shape == (len(x), 10) and (idx[:, 0] == np.arange(len(x))).all() and (dist[:, 0] == 0).all()
    assert (np.diff(dist, axis=1) >= -1e-6).all()
    xt = torch.nn.functional.normalize(torch.from_numpy(x), dim=1)
    q = np.random.default_rng(0).choice(len(x), 500, replace=False)
    exact = (xt[q] @ xt.T).topk(10, dim=1).indices.numpy()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, idx[q])])
    assert recall > 0.6, recall  # noisy clusters: many near-ties; what matters is how near the found ones are
    sim_exact = (xt[q].unsqueeze(1) * xt[torch.from_numpy(exact)]).sum(-1)[:, 1:].mean()
    sim_found = (xt[q].unsqueeze(1) * xt[torch.from_numpy(idx[q]).long()]).sum(-1)[:, 1:].mean()
    assert sim_found > 0.97 * sim_exact, (float(sim_found), float(sim_exact))
    small, _ = ivf_knn_graph(x[:50], 10, cells=4, probe=1)  # neighbourhoods smaller than k are padded
    assert small.shape == (50, 10) and (small[:, 0] == np.arange(50)).all()
