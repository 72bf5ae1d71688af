"""Folders too large for memory: decoded once into uint8 shards on disk, then streamed from them.

The first open decodes every image (with progress, cancellable) into shards of about ``SHARD_MB``
megabytes each: ``cache_dir()/shards/<key>/shard_00000.npy`` ... (uint8 ``(k, 3, S, S)``), each with a
small ``.json`` of the files it could not read, and a ``meta.json`` once all are written. A later open
reads ``meta.json`` only; a cancelled build keeps the shards it wrote and the next open goes on from
there. The key holds every file's path, size and time and the image size: a changed file gives a new
cache, and the stale one of the same folder is removed once the new one is complete.

The files go into the shards in a fixed shuffled order, so every shard is a random part of the whole
folder (all classes mixed). Training reads one shard after the other (:meth:`ShardedFolderData.reading_order`
groups an epoch's random order by shard, the shards in a new random order each epoch), a background
thread reading ahead: the data object holds at most two shards in memory at any time
(``peak_shards_held`` says so), however large the folder.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from engine.data.base import Cancelled, DataError, ProgressFn, StreamedData

SHARD_MB = 32  # bytes of decoded images per shard: a sequential read of tens of ms
SHUFFLE_SEED = 12345  # the fixed order in which files go into the shards
HELD_SHARDS = 2  # shards a streamed set keeps in memory at most (the one read and the next)


def shard_images(image_size: int, memory_limit_mb: float = 0) -> int:
    """Images per shard: ``SHARD_MB`` of them (less when the memory limit is tiny: a quarter of it), 8 at least."""
    per = 3 * image_size * image_size
    budget = SHARD_MB * 2**20
    if memory_limit_mb:
        budget = min(budget, int(memory_limit_mb * 2**20 / 4))
    return max(8, budget // per)


class ShardCache:
    """One folder's decoded shards: where they are, which file sits in which slot, what was skipped."""

    def __init__(self, root: Path, paths: list, image_size: int, per_shard: int, key: str):
        self.root, self.paths, self.size, self.per_shard, self.key = root, paths, image_size, per_shard, key
        n = len(paths)
        self.count = n
        self.shards = (n + per_shard - 1) // per_shard
        # slot j of the shards holds file perm[j]: a fixed shuffle, so each shard mixes the whole folder
        self.perm = np.random.default_rng(SHUFFLE_SEED).permutation(n) if n else np.zeros(0, np.int64)

    def shard_path(self, s: int) -> Path:
        return self.root / f"shard_{s:05d}.npy"

    def rows(self, s: int) -> int:
        return min(self.per_shard, self.count - s * self.per_shard)

    def _shard_ok(self, s: int) -> list | None:
        """The files shard ``s`` skipped, when the shard is on disk whole; None when it must be decoded."""
        path, info = self.shard_path(s), self.shard_path(s).with_suffix(".json")
        try:
            skipped = json.loads(info.read_text(encoding="utf-8"))
            arr = np.load(path, mmap_mode="r")
            if arr.dtype == np.uint8 and arr.shape == (self.rows(s), 3, self.size, self.size):
                return [tuple(x) for x in skipped]
        except (OSError, ValueError, TypeError, EOFError):
            pass
        return None

    def complete(self) -> list | None:
        """The skipped files when every shard is written (``meta.json`` says so), else None."""
        try:
            meta = json.loads((self.root / "meta.json").read_text(encoding="utf-8"))
            if meta.get("key") == self.key and meta.get("shards") == self.shards:
                return [tuple(x) for x in meta["skipped"]]
        except (OSError, ValueError, TypeError, KeyError):
            pass
        return None

    def build(self, progress: ProgressFn | None, cancel: threading.Event | None, workers: int) -> list:
        """Decode what is missing, shard by shard (each one written whole or not at all); the skipped files."""
        from engine.data.cache import write_atomic
        from engine.data.decode import decode_into

        self.root.mkdir(parents=True, exist_ok=True)
        skipped: list = []
        done = 0
        count = [0]

        def tick(k: int) -> None:
            count[0] += k
            if progress is not None:
                progress(count[0], self.count, "decoding images into the cache")

        for s in range(self.shards):
            got = self._shard_ok(s)
            rows = self.rows(s)
            if got is None:
                files = self.perm[s * self.per_shard: s * self.per_shard + rows]
                buf = np.zeros((rows, 3, self.size, self.size), np.uint8)
                count[0] = done
                _, got = decode_into([self.paths[i] for i in files.tolist()], buf, tick, cancel, workers)
                write_atomic(self.shard_path(s).with_suffix(".json"), json.dumps(got).encode())
                save_npy(self.shard_path(s), buf)  # last: a shard on disk is a whole one
                del buf
            skipped.extend(got)
            done += rows
            if progress is not None:
                progress(done, self.count, "decoding images into the cache")
            if cancel is not None and cancel.is_set():
                raise Cancelled("loading was cancelled")
        skipped.sort()
        meta = {"key": self.key, "shards": self.shards, "per_shard": self.per_shard, "count": self.count,
                "image_size": self.size, "skipped": skipped}
        write_atomic(self.root / "meta.json", json.dumps(meta).encode())
        return skipped


def save_npy(path: Path, arr: np.ndarray) -> None:
    """``np.save`` through a temporary file (removed if the disk fills): the whole file or none."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def open_streamed(folder: Path, scan, paths: list, labels: list[int] | None, image_size: int,
                  notes: list[str], eval_source: str, *, progress: ProgressFn | None = None,
                  cancel: threading.Event | None = None, use_cache: bool = True, workers: int = 4,
                  memory_limit_mb: float = 0):
    """A folder beyond the memory limit: :class:`ShardedFolderData` (its shards decoded now unless cached), or,
    where the cache cannot be written (or ``use_cache`` is off), images decoded batch by batch
    (:class:`engine.data.streaming.StreamingFolderData`)."""
    from engine.data.cache import cache_dir, cache_key, write_atomic
    from engine.data.decode import skipped_note

    per = shard_images(image_size, memory_limit_mb)
    key = cache_key(paths, image_size, scan.stamps, kind=f"shards{per}")
    cache = ShardCache(cache_dir() / "shards" / key, paths, image_size, per, key)
    skipped = cache.complete() if use_cache else None
    fresh = skipped is None
    if fresh and use_cache:
        try:
            skipped = cache.build(progress, cancel, workers)
        except OSError as exc:  # a read-only or full disk: decode as the images are read
            notes = [*notes, f"the decoded cache could not be written ({exc.strerror or exc}); images are "
                             "decoded as they are read"]
            skipped = None
    if skipped is None:
        from engine.data.streaming import StreamingFolderData

        if scan.skipped:
            notes = [*notes, skipped_note(scan.skipped)]
        return StreamingFolderData(folder, paths, labels, scan.classes, image_size, notes, eval_source,
                                   workers=workers, skipped=scan.skipped)
    if progress is not None and not fresh:
        progress(len(paths), len(paths), "read from the cache")
    origin = {"folder": str(folder), "image_size": image_size, "files": len(paths), "per_shard": per}
    try:
        if fresh:
            _prune_stale(cache.root, origin)
            write_atomic(cache.root / "origin.json", json.dumps(origin).encode())
    except OSError:
        pass
    bad = {p for p, _ in skipped}
    good = np.asarray([i for i, p in enumerate(paths) if str(p) not in bad], dtype=np.int64)
    all_skipped = sorted(list(scan.skipped) + list(skipped))
    if len(good) == 0:
        from engine.data.decode import skipped_text

        raise DataError(f"none of the {len(paths)} image files in {folder} could be read "
                        f"(e.g. {skipped_text(all_skipped, 3)}); check that they are valid images")
    if all_skipped:
        notes = [*notes, skipped_note(all_skipped)]
    label_t = None if labels is None else torch.as_tensor(np.asarray(labels, dtype=np.int64)[good])
    return ShardedFolderData(cache, good, folder, [str(paths[i]) for i in good.tolist()], label_t, scan.classes,
                             notes, eval_source, all_skipped)


def _prune_stale(root: Path, origin: dict) -> None:
    """Remove the shards of an earlier state of the same folder at the same size (a file changed since)."""
    for other in root.parent.iterdir():
        if other == root or not other.is_dir():
            continue
        try:
            theirs = json.loads((other / "origin.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if theirs.get("folder") == origin["folder"] and theirs.get("image_size") == origin["image_size"]:
            shutil.rmtree(other, ignore_errors=True)


class ShardedFolderData(StreamedData):
    """A streamed image folder read from its decoded shards: the interface of :class:`ImageData` (``get``,
    ``get_labels``, ``batches``, ``subset``, ``summary``) without the images in memory."""

    def __init__(self, cache: ShardCache, good: np.ndarray, folder: Path, paths: list[str],
                 labels: torch.Tensor | None, classes: list[str] | None, notes: list[str], eval_source: str,
                 skipped: list):
        self.cache = cache
        self.name = folder.name
        self.source = str(folder)
        self.paths = paths
        self.labels = labels
        self.class_names = classes
        self.eval_source = eval_source
        self.skipped = list(skipped)
        self.notes = list(notes) + [f"{len(paths)} images are streamed from a decoded cache on disk (too many to "
                                    "keep in memory)"]
        self.device = torch.device("cpu")
        slot_of_file = np.empty(cache.count, np.int64)
        slot_of_file[cache.perm] = np.arange(cache.count)
        self.slot = slot_of_file[good]  # the shard slot of each image
        self.held: OrderedDict[int, np.ndarray] = OrderedDict()  # shards in memory now, last used last
        self.peak_shards_held = 0
        self.peak_bytes_held = 0
        self.shards_read = 0
        self._lock = threading.Lock()

    # -- what ImageData has (the rest from StreamedData) ---------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return self.cache.size

    def identity(self) -> str:
        """What names these images: the cache key (every file's path, size and time, the image size)."""
        return self.cache.key

    @property
    def shard_bytes(self) -> int:
        return self.cache.per_shard * 3 * self.cache.size ** 2

    def get(self, indices) -> torch.Tensor:
        """uint8 images ``(n, 3, S, S)`` for any ``indices``, read through memory maps (nothing is kept)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        out = np.empty((len(idx), 3, self.cache.size, self.cache.size), np.uint8)
        slots = self.slot[idx]
        shard = slots // self.cache.per_shard
        for s in np.unique(shard).tolist():
            sel = np.flatnonzero(shard == s)
            arr = np.load(self.cache.shard_path(s), mmap_mode="r")
            rows = slots[sel] - s * self.cache.per_shard
            order = np.argsort(rows, kind="stable")  # ascending rows: a forward read of the file
            out[sel[order]] = arr[rows[order]]
            del arr
        return torch.from_numpy(out).to(self.device)

    def summary(self) -> dict:
        info = {"name": self.name, "source": self.source, "num_images": len(self), "image_size": self.image_size,
                "labelled": self.labelled, "class_names": list(self.class_names or []),
                "skipped": len(self.skipped), "skipped_files": [list(x) for x in self.skipped],
                "streaming": True, "shards": self.cache.shards, "cache": str(self.cache.root)}
        if self.labels is not None and self.class_names:
            counts = torch.bincount(self.labels, minlength=len(self.class_names)).tolist()
            info["class_counts"] = dict(zip(self.class_names, counts))
        return info

    # -- streaming -----------------------------------------------------------------------------------------
    def reading_order(self, order: torch.Tensor) -> torch.Tensor:
        """``order`` (an epoch's random order) regrouped by shard: the shards in the order their first image
        comes in ``order`` (random, new each epoch), the images of a shard in their order there."""
        o = order.cpu().numpy().astype(np.int64)
        if len(o) == 0:
            return order
        shard = self.slot[o] // self.cache.per_shard
        uniq, first = np.unique(shard, return_index=True)
        rank = np.zeros(self.cache.shards, np.int64)
        rank[uniq[np.argsort(first)]] = np.arange(len(uniq))
        return torch.from_numpy(o[np.argsort(rank[shard], kind="stable")])

    def _shard(self, s: int) -> np.ndarray:
        """Shard ``s`` in memory (read whole, one sequential read), at most ``HELD_SHARDS`` held at once."""
        with self._lock:
            arr = self.held.get(s)
            if arr is not None:
                self.held.move_to_end(s)
                return arr
            while len(self.held) >= HELD_SHARDS:
                self.held.popitem(last=False)
        arr = np.load(self.cache.shard_path(s))
        with self._lock:
            self.held[s] = arr
            self.shards_read += 1
            self.peak_shards_held = max(self.peak_shards_held, len(self.held))
            self.peak_bytes_held = max(self.peak_bytes_held, sum(a.nbytes for a in self.held.values()))
        return arr

    def _assemble(self, idx: np.ndarray) -> torch.Tensor:
        slots = self.slot[idx]
        shard = slots // self.cache.per_shard
        out = np.empty((len(idx), 3, self.cache.size, self.cache.size), np.uint8)
        # shards in the order the batch first needs them (the reading order's): each one read once
        uniq, first = np.unique(shard, return_index=True)
        for s in uniq[np.argsort(first)].tolist():
            sel = np.flatnonzero(shard == s)
            out[sel] = self._shard(s)[slots[sel] - s * self.cache.per_shard]
        x = torch.from_numpy(out)
        return x.pin_memory() if self.device.type == "cuda" else x

    def release(self) -> None:
        """Drop the shards held (the end of an epoch, or a stop)."""
        with self._lock:
            self.held.clear()

    def batches(self, batch_size: int, order: torch.Tensor, drop_last: bool = True,
                start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        """``(images_uint8, labels, indices)`` following ``order`` from batch ``start``, read by a background
        thread two batches ahead of the step (give it :meth:`reading_order`'s order to read each shard once)."""
        order = order.cpu()
        n = len(order)
        stop = n - (n % batch_size) if drop_last else n
        chunks = [order[b:b + batch_size] for b in range(start * batch_size, stop, batch_size)]
        ready: queue.Queue = queue.Queue(maxsize=2)
        halt = threading.Event()

        def produce() -> None:
            try:
                for idx in chunks:
                    item = (self._assemble(idx.numpy()), idx)
                    while not halt.is_set():
                        try:
                            ready.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if halt.is_set():
                        return
                ready.put(None)
            except BaseException as exc:  # handed to the consumer, raised there
                ready.put(exc)

        worker = threading.Thread(target=produce, name="shard-reader", daemon=True)
        worker.start()
        try:
            while True:
                item = ready.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                images, idx = item
                labels = None if self.labels is None else self.labels[idx].to(self.device, non_blocking=True)
                yield images.to(self.device, non_blocking=True), labels, idx.to(self.device)
        finally:
            halt.set()
            while worker.is_alive():
                try:
                    ready.get(timeout=0.05)
                except queue.Empty:
                    pass
            self.release()
