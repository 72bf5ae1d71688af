"""Large folders: the decoded cache (a second open reads one file), progress and cancel while scanning,
decoded shards for folders beyond the memory limit, and training that streams from them."""

import os
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from engine.data import load_dataset
from engine.data.base import Cancelled
from engine.data.shards import ShardedFolderData, shard_images


def _images(root, n, sizes=(36, 40), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / f"c{i % classes}"
        d.mkdir(parents=True, exist_ok=True)
        h, w = sizes if isinstance(sizes, tuple) else sizes(i)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(d / f"{i:03d}.png")
    return root


@pytest.fixture
def decodes(monkeypatch):
    """Counts the images decoded (every decode of a folder goes through engine.data.decode.decode_image)."""
    import engine.data.decode as decode_mod

    calls = []
    real = decode_mod.decode_image

    def counting(path, size):
        calls.append(str(path))
        return real(path, size)

    monkeypatch.setattr(decode_mod, "decode_image", counting)
    return calls


def test_a_second_open_reads_the_cache_and_decodes_nothing(tmp_path, decodes):
    root = _images(tmp_path / "imgs", 12)
    first = load_dataset(str(root), 16)
    assert len(decodes) == 12
    seen = []
    again = load_dataset(str(root), 16, progress=lambda d, t, s: seen.append(s))
    assert len(decodes) == 12, "a second open decodes nothing"
    assert torch.equal(first.images, again.images) and again.paths == first.paths
    assert torch.equal(first.labels, again.labels) and again.images.is_contiguous()
    assert any("cache" in s for s in seen)
    assert first.identity() == again.identity()


def test_a_changed_file_is_decoded_again_and_the_cache_dir_can_move(tmp_path, monkeypatch, decodes):
    cache = tmp_path / "elsewhere"
    monkeypatch.setenv("SSLWB_CACHE_DIR", str(cache))
    root = _images(tmp_path / "imgs", 6)
    before = load_dataset(str(root), 16)
    assert list((cache / "folders").glob("*.npy")), "SSLWB_CACHE_DIR holds the decoded cache"
    target = root / "c0" / "000.png"
    Image.fromarray(np.full((36, 40, 3), 200, np.uint8)).save(target)
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))  # a new time, whatever the clock
    decodes.clear()
    after = load_dataset(str(root), 16)
    assert len(decodes) == 6 and after.identity() != before.identity()
    k = after.paths.index(str(target))
    assert int(after.images[k].float().mean()) == 200


def test_the_scan_reports_what_it_found_and_can_be_cancelled(tmp_path, decodes):
    root = tmp_path / "many"
    (root / "a").mkdir(parents=True)
    for i in range(4200):  # only listed, never decoded: the cancel comes first
        (root / "a" / f"{i}.png").write_bytes(b"")
    (root / "b").mkdir()
    (root / "b" / "x.png").write_bytes(b"")
    cancel = threading.Event()
    seen = []

    def progress(done, total, text):
        seen.append(text)
        if "images found" in text:
            cancel.set()

    with pytest.raises(Cancelled):
        load_dataset(str(root), 16, progress=progress, cancel=cancel)
    assert "scanning the folder: 4,200 images found" in seen and not decodes


def _big(tmp_path, n=40):
    """Images of 96 to 224 pixels: at 128 px, 40 of them are 1.9 MB decoded, beyond a 1 MB memory limit."""
    return _images(tmp_path / "photos", n, sizes=lambda i: (96 + (i * 37) % 129, 96 + (i * 53) % 129))


def test_a_folder_beyond_the_memory_limit_is_decoded_once_into_shards(tmp_path, decodes):
    root = _big(tmp_path)
    seen = []
    st = load_dataset(str(root), 128, memory_limit_mb=1, progress=lambda d, t, s: seen.append((d, t, s)))
    assert isinstance(st, ShardedFolderData) and st.streaming and len(st) == 40
    per = shard_images(128, 1)
    assert st.cache.per_shard == per and st.cache.shards == -(-40 // per) > 2
    assert len(decodes) == 40 and (40, 40, "decoding images into the cache") in seen
    decodes.clear()
    again = load_dataset(str(root), 128, memory_limit_mb=1)
    assert not decodes and again.identity() == st.identity()
    mem = load_dataset(str(root), 128)  # the same images, in memory
    assert mem.paths == st.paths and torch.equal(st.get(np.arange(40)), mem.images)
    # each shard mixes the folder: its images come from more than one class folder
    first = [st.paths[i] for i in range(40) if st.slot[i] < per]
    assert len({p.split(os.sep)[-2] for p in first}) > 1


def test_a_cancelled_shard_build_keeps_its_shards_and_the_next_open_goes_on(tmp_path, decodes):
    root = _big(tmp_path)
    cancel = threading.Event()
    per = shard_images(128, 1)

    def progress(done, total, text):
        if "cache" in text and done >= per:  # the first shard is written
            cancel.set()

    with pytest.raises(Cancelled):
        load_dataset(str(root), 128, memory_limit_mb=1, progress=progress, cancel=cancel)
    first = len(decodes)
    assert per <= first < 40
    decodes.clear()
    st = load_dataset(str(root), 128, memory_limit_mb=1)
    assert len(st) == 40 and len(decodes) <= 40 - per


def test_the_reading_order_goes_shard_by_shard_and_keeps_every_image(tmp_path):
    st = load_dataset(str(_big(tmp_path)), 128, memory_limit_mb=1)

    def shard_runs(seed):
        order = st.reading_order(torch.randperm(40, generator=torch.Generator().manual_seed(seed)))
        shard = (st.slot[order.numpy()] // st.cache.per_shard).tolist()
        return order, [s for k, s in enumerate(shard) if k == 0 or s != shard[k - 1]]

    got, runs = shard_runs(3)
    assert sorted(got.tolist()) == list(range(40))
    assert len(runs) == st.cache.shards, "each shard is read in one go"
    assert shard_runs(4)[1] != runs, "another epoch reads the shards in another order"
    for images, _, idx in st.batches(16, got, drop_last=False):
        assert torch.equal(images, st.get(idx))
    assert st.shards_read == st.cache.shards and st.peak_shards_held <= 2


def test_a_changed_folder_gets_new_shards_and_the_stale_ones_go(tmp_path):
    root = _big(tmp_path, n=24)  # 1.1 MB decoded
    old = load_dataset(str(root), 128, memory_limit_mb=1)
    target = root / "c1" / "001.png"
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    new = load_dataset(str(root), 128, memory_limit_mb=1)
    assert new.identity() != old.identity()
    assert new.cache.root.exists() and not old.cache.root.exists()


@pytest.mark.slow
def test_training_streams_a_large_folder_holding_two_shards_at_most(tmp_path):
    """A folder of 96-224 px photos beyond a 1 MB in-memory limit: the run trains from the decoded shards,
    and the data object never holds more than two shards (a fraction of the folder) in memory."""
    from engine.config import default_config
    from engine.session import Session

    root = _big(tmp_path, n=48)
    cfg = default_config("simclr", epochs=2, seed=0, runs_root=str(tmp_path / "runs"),
                         backbone="small_cnn", device="cpu",
                         data={"spec": str(root), "image_size": 128, "in_memory_limit_mb": 1,
                               "holdout_fraction": 0.0},
                         optim={"batch_size": 16},
                         eval={"final_eval": False, "knn_every_epochs": 0})
    got = []
    session = Session(cfg, got.append)
    summary = session.run()
    data = session.data
    assert summary["reason"] == "completed" and summary["step"] == 6
    assert isinstance(data, ShardedFolderData) and not hasattr(data, "images")
    total = len(data) * 3 * 128 * 128
    assert data.cache.shards > 4 and data.peak_shards_held <= 2
    assert data.peak_bytes_held <= 2 * data.shard_bytes < total / 2
    assert data.shards_read <= data.cache.shards * 2 + 2  # about one read of each shard an epoch
    assert not data.held, "the shards are let go at the end of an epoch"


class _Job:
    def __init__(self):
        self.seen = []

    def progress(self, done, total, detail, task=""):
        self.seen.append((done, total, detail))


def test_the_service_keeps_the_grid_file_of_a_cached_folder(tmp_path, decodes):
    from engine.worker import load_dataset_for_view

    root = _images(tmp_path / "imgs", 10)
    args = {"spec": str(root), "image_size": 16}
    first = load_dataset_for_view(args, _Job(), threading.Event())
    stamp = os.stat(first["images_path"]).st_mtime_ns
    decodes.clear()
    again = load_dataset_for_view(args, _Job(), threading.Event())
    assert not decodes and again["images_path"] == first["images_path"]
    assert os.stat(again["images_path"]).st_mtime_ns == stamp, "the same images: the grid's file is kept"
    grid = np.load(again["images_path"])
    assert grid.shape == (10, 16, 16, 3)
    Image.fromarray(np.zeros((36, 40, 3), np.uint8)).save(root / "c0" / "new.png")
    third = load_dataset_for_view(args, _Job(), threading.Event())
    assert third["count"] == 11 and np.load(third["images_path"]).shape[0] == 11


def test_the_grid_of_a_streamed_folder_holds_what_fits_the_memory_limit(tmp_path):
    from engine.worker import load_dataset_for_view

    root = _images(tmp_path / "imgs", 400, sizes=(40, 40))  # 400 x 32 x 32 x 3: 1.2 MB decoded
    job = _Job()
    res = load_dataset_for_view({"spec": str(root), "image_size": 32, "memory_limit_mb": 1}, job, threading.Event())
    fits = 2**20 // (3 * 32 * 32)
    assert res["streaming"] and res["total"] == 400 and res["count"] == fits
    grid = np.load(res["images_path"], mmap_mode="r")
    assert grid.shape == (fits, 32, 32, 3)
    data = load_dataset(str(root), 32)
    assert np.array_equal(grid[:5], data.images[:5].permute(0, 2, 3, 1).numpy())
    assert any(f"the grid shows the first {fits} of 400 images" in n for n in res["notes"])
