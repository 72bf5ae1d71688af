"""Features at scale: one store per analysis process, each image of a dataset encoded once per encoder and
precision and shared by every op (map, retrieval, evaluation, downstream); extraction in the run's training
precision; a map from a checkpoint shows 2,000 images first; a streamed set is read shard by shard."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.analysis import AnalysisWorker
from engine.data import load_dataset
from engine.data.base import Cancelled
from engine.eval.features import FeatureStore, extract_features
from engine.models import build_backbone

sys.path.insert(0, str(Path(__file__).parent))
from test_analysis_worker import run_op, train_tiny_run  # noqa: E402  (the session's shared tiny run)
from test_scale_data import _images  # noqa: E402


@pytest.fixture(scope="module")
def shapes():
    return load_dataset("builtin:shapes:64", 32)


def encoder(seed=0):
    torch.manual_seed(seed)
    return build_backbone("small_cnn", 32).eval()


# -- the store ---------------------------------------------------------------------------------------------
def test_each_image_is_encoded_once_and_the_features_are_the_encoders(shapes):
    enc, store = encoder(), FeatureStore()
    builds = []

    def build():
        builds.append(1)
        return enc

    ticks = []
    a = store.features("enc", build, shapes, np.arange(0, 32), progress=lambda d, t: ticks.append((d, t)))
    assert store.extracted == 32 and len(builds) == 1 and ticks[-1] == (32, 32)
    b = store.features("enc", build, shapes, np.arange(16, 64), progress=lambda d, t: ticks.append((d, t)))
    assert store.extracted == 64, "only the 32 images not encoded before are"
    assert ticks[-1] == (48, 48) and (16, 48) not in ticks[:1]
    c = store.features("enc", build, shapes, np.array([40, 3, 3, 17]))
    assert store.extracted == 64 and len(builds) == 2, "all cached: nothing encoded, the encoder not even built"
    want = extract_features(enc, shapes).numpy()
    assert np.allclose(a, want[:32], atol=1e-5) and np.allclose(b, want[16:], atol=1e-5)
    assert np.allclose(c, want[[40, 3, 3, 17]], atol=1e-5)
    assert np.allclose(np.linalg.norm(c, axis=1), 1, atol=1e-5)
    raw = store.features("enc", enc, shapes, [5], normalize=False)
    assert np.allclose(raw / np.linalg.norm(raw), want[5], atol=1e-5) and np.linalg.norm(raw) != pytest.approx(1)
    assert store.has("enc", shapes, np.arange(64)) and not store.has("other", shapes, [0])


def test_precision_data_and_encoder_name_separate_entries_and_old_ones_go(shapes):
    enc, store = encoder(), FeatureStore()
    f32 = store.features("enc", enc, shapes, np.arange(8))
    bf16 = store.features("enc", enc, shapes, np.arange(8), amp_dtype=torch.bfloat16)
    assert store.extracted == 16 and len(store) == 2
    assert np.abs(f32 - bf16).max() > 0, "bf16 features are the bf16 forward pass's"
    assert (f32 * bf16).sum(1).min() > 0.98
    sub = shapes.subset(np.arange(8, 16))  # other images: an identity of their own
    assert np.allclose(store.features("enc", enc, sub, np.arange(8)), extract_features(enc, sub).numpy(), atol=1e-5)
    assert store.extracted == 24
    store.drop("enc")
    assert len(store) == 0 and not store.has("enc", shapes, [0])
    tiny = FeatureStore(max_mb=1.5 * 8 * 64 * 4 / 2**20)  # room for about one entry of 8 images
    for key in ("a", "b", "c"):
        tiny.features(key, enc, shapes, np.arange(8))
    assert len(tiny) <= 2 and tiny.has("c", shapes, np.arange(8)) and not tiny.has("a", shapes, [0])


def test_a_cancelled_extraction_stores_nothing(shapes):
    store, cancel = FeatureStore(), threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        store.features("enc", encoder(), shapes, np.arange(32), cancel=cancel, batch_size=8)
    assert store.extracted == 0 and not store.has("enc", shapes, [0])


def test_a_streamed_set_is_read_shard_by_shard(tmp_path):
    root = _images(tmp_path / "imgs", 96, sizes=(20, 24))
    data = load_dataset(str(root), 16, memory_limit_mb=0.01)
    assert data.streaming and data.cache.shards >= 4
    store = FeatureStore()
    torch.manual_seed(0)
    enc = build_backbone("small_cnn", 16).eval()
    idx = np.random.default_rng(0).permutation(len(data))[:80]
    got = store.features("enc", enc, data, idx, batch_size=16)
    assert data.shards_read <= data.cache.shards, "each shard read once, not once per batch"
    assert data.peak_shards_held <= 2
    assert np.allclose(got, extract_features(enc, data, idx).numpy(), atol=1e-5)


# -- the analysis process ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.getbasetemp())[0]


def test_every_op_reads_one_store(tiny):
    worker = AnalysisWorker(lambda r: None, "cpu")
    worker.warm.set()
    store = worker.feature_store
    ctx = worker.context(tiny)
    ds = ctx.datasets()
    out = run_op(worker, "map", run_dir=tiny, projection="pca", sample=60, thumbs=False, preview=0)
    assert out[-1].kind == "result" and store.extracted == 60
    out = run_op(worker, "map", run_dir=tiny, projection="pca", sample=60, thumbs=False, preview=0)
    assert out[-1].kind == "result" and store.extracted == 60, "the same map again encodes nothing"
    n_eval = len(ds["embed_source"])
    out = run_op(worker, "retrieve", run_dir=tiny, index=0, k=5, bank_max=n_eval)
    assert out[-1].kind == "result", out[-1].data
    assert store.extracted == n_eval, "retrieval over the whole split encodes only what the map did not"
    if ds["eval_data"] is ds["embed_source"]:  # the downstream test set is the map's split
        before = store.extracted
        out = run_op(worker, "downstream", run_dir=tiny, labels_per_class=[2], modes=["knn"], baselines=[],
                     max_test=0)
        assert out[-1].kind == "result", out[-1].data
        assert store.extracted == before + len(ds["bank_data"]), "downstream reuses the test set's features"
    before = store.extracted
    inv = run_op(worker, "invariance", run_dir=tiny, images=30, baseline=False)
    assert inv[-1].kind == "result", inv[-1].data
    assert store.extracted == before, "the invariance view's originals are among the split's features already"
    # the evaluation scores in float32 (its numbers are the final evaluation's), from the same store
    before = store.extracted
    ev = run_op(worker, "evaluate", run_dir=tiny, supervised="none", probe_epochs=1, max_bank=50, max_test=40)
    assert ev[-1].kind == "result", ev[-1].data
    assert store.extracted > before  # the random-init encoder's at least
    again = store.extracted
    run_op(worker, "evaluate", run_dir=tiny, supervised="none", probe_epochs=1, max_bank=50, max_test=40)
    assert store.extracted == again, "a second evaluation encodes nothing (the random-init encoder's neither)"


@pytest.mark.parametrize("native", ["0", "1"])
def test_features_are_extracted_in_the_runs_training_precision(tiny, monkeypatch, native):
    import engine.training.device as D

    monkeypatch.setenv("SSLWB_CPU_BF16", native)
    D.cpu_native_bf16.cache_clear()
    try:
        worker = AnalysisWorker(lambda r: None, "cpu")
        ctx = worker.context(tiny)
        assert ctx.cfg.precision == "auto"
        assert ctx.amp_dtype == (torch.bfloat16 if native == "1" else None)
        idx = np.arange(20)
        got = ctx.features("eval", idx)
        assert len(worker.feature_store) == 1
        (key,) = worker.feature_store.entries
        assert key[1] == ("bfloat16" if native == "1" else "float32")
        data = ctx.source("eval")
        want = extract_features(ctx.encoder(), data, idx, amp_dtype=ctx.amp_dtype).numpy()
        assert np.allclose(got, want, atol=1e-5 if native == "0" else 2e-2)
    finally:
        D.cpu_native_bf16.cache_clear()


@pytest.mark.slow
def test_a_map_from_the_checkpoint_shows_2000_images_first(tiny):
    from engine.analysis.context import PREVIEW_SIZE

    assert PREVIEW_SIZE == 2000
    worker = AnalysisWorker(lambda r: None, "cpu")
    worker.warm.set()
    out = run_op(worker, "map", run_dir=tiny, data="builtin:shapes:6000", split="train", projection="pca", sample=4200,
                 thumbs=False)
    stages = [r.data.get("stage") for r in out if r.kind == "partial"]
    assert stages[0] == "preview" and out[-1].kind == "result"
    pre = next(r.data for r in out if r.kind == "partial" and r.data.get("stage") == "preview")
    first = next(r.data for r in out if r.kind == "partial" and r.data.get("stage") == "first")
    assert len(pre["indices"]) == 2000 and pre["total"] == 4200 and len(first["indices"]) == 4200
    assert worker.feature_store.extracted == 4200, "the rest is extracted once, the preview's images not again"
    done = [r.data for r in out if r.kind == "progress"]
    assert done and done[-1]["done"] == 4200


def test_the_invariance_view_takes_the_originals_from_the_store(shapes):
    from engine.eval.invariance import invariance

    store, encs = FeatureStore(), [("a", encoder(0)), ("b", encoder(1))]
    keys = {"a": "enc-a", "b": "enc-b"}

    def originals(name, enc, idx):
        return torch.from_numpy(store.features(keys[name], enc, shapes, idx, normalize=False))

    plain = invariance(encs, shapes, num_images=24, seed=3)
    shared = invariance(encs, shapes, num_images=24, seed=3, originals=originals)
    assert store.extracted == 48, "24 originals per encoder, from the store"
    for p, s in zip(plain["rows"], shared["rows"], strict=True):
        assert (p["encoder"], p["name"]) == (s["encoder"], s["name"])
        assert s["mean"] == pytest.approx(p["mean"], abs=1e-4)
    invariance(encs, shapes, num_images=24, seed=3, originals=originals)
    assert store.extracted == 48, "a second look encodes no original again"


def test_a_large_extraction_uses_the_cores_others_leave_idle(monkeypatch):
    """The analysis process keeps one thread on small machines; a large extraction on the CPU takes the cores
    nothing else uses, and gives them back after; SSLWB_ANALYSIS_THREADS fixes the count."""
    import os

    import engine.training.threads as threads
    from engine.analysis.context import idle_cores

    spare = threads.spare_cores(0.25)
    assert 0 <= spare <= (os.cpu_count() or 1) if sys.platform == "linux" else spare is None or spare >= 0
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        monkeypatch.delenv("SSLWB_ANALYSIS_THREADS", raising=False)
        monkeypatch.setattr(threads, "spare_cores", lambda sample_s=0.3: 3)
        with idle_cores(torch.device("cpu")):
            assert torch.get_num_threads() == 3
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("SSLWB_ANALYSIS_THREADS", "1")
        with idle_cores(torch.device("cpu")):
            assert torch.get_num_threads() == 1
        monkeypatch.delenv("SSLWB_ANALYSIS_THREADS")
        monkeypatch.setattr(threads, "spare_cores", lambda sample_s=0.3: 0)  # a training run takes the cores
        with idle_cores(torch.device("cpu")):
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
