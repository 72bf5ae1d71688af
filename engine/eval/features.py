"""Features of an encoder: batched extraction on the device (in a given autocast precision, channels-last
convolutions, the next batch read while this one is encoded) and :class:`FeatureStore`, the one cache of
an analysis process that every op shares (map, retrieval, evaluation, downstream, invariance)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_STORE_MB = 1024  # features kept by a FeatureStore (SSLWB_FEATURE_CACHE_MB overrides)


def _autocast(device: torch.device, amp_dtype):
    if amp_dtype is None or amp_dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype)


def _uses_channels_last(device: torch.device, channels_last: bool) -> bool:
    return bool(channels_last) and device.type in ("cpu", "cuda")


def prepare_encoder(encoder: nn.Module, device, channels_last: bool = True) -> nn.Module:
    """``encoder`` on ``device`` with channels-last convolution weights where that layout is faster (CPUs,
    CUDA): the same numbers, about a third less time per convolution."""
    device = torch.device(device)
    encoder = encoder.to(device)
    if _uses_channels_last(device, channels_last):
        encoder = encoder.to(memory_format=torch.channels_last)
    return encoder


def _device_for(encoder: nn.Module, device) -> torch.device:
    """``device`` as a torch device, or where the encoder's parameters are when None."""
    return torch.device(device) if device is not None else next(encoder.parameters()).device


def to_input(x_u8: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """uint8 images ``(n, 3, H, W)`` as the encoder's float input in [0, 1]: moved as uint8 (a quarter of the
    bytes), converted on the device in one pass."""
    x = x_u8.to(device, non_blocking=True)
    if _uses_channels_last(device, channels_last) and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.to(torch.float32).div_(255)


@torch.no_grad()
def encode(encoder: nn.Module, x_u8: torch.Tensor, device=None, amp_dtype=None, normalize: bool = True,
           channels_last: bool = False) -> torch.Tensor:
    """Features of a batch of uint8 images (float32, on the CPU); the encoder must be in eval mode."""
    device = _device_for(encoder, device)
    with _autocast(device, amp_dtype):
        f = encoder(to_input(x_u8, device, channels_last)).float()
    if normalize:
        f = F.normalize(f, dim=1)
    return f.cpu()


@torch.no_grad()
def extract_features(encoder: nn.Module, data, indices=None, batch_size: int = 512, device=None,
                     normalize: bool = True, progress: Callable[[int, int], None] | None = None,
                     cancel=None, amp_dtype=None, channels_last: bool = False) -> torch.Tensor:
    """Features ``(N, D)`` float32 on the CPU for ``indices`` of ``data`` (all when None).

    The encoder is put in eval mode (BatchNorm uses running statistics) and restored after. ``amp_dtype``
    (bf16, fp16): the forward pass under autocast, as in training; ``channels_last``: images in the
    channels-last layout (give the encoder :func:`prepare_encoder` first). The next batch is read from the
    data (a streamed set reads it from disk) while this one is encoded.
    """
    device = _device_for(encoder, device)
    was_training = encoder.training
    encoder.eval()
    idx = np.arange(len(data)) if indices is None else np.asarray(indices)
    starts = list(range(0, len(idx), batch_size))
    out = []
    pool = ThreadPoolExecutor(1, thread_name_prefix="features-read") if len(starts) > 1 else None
    try:
        def read(s):
            return data.get(idx[s:s + batch_size])

        nxt = pool.submit(read, starts[0]) if pool and starts else None
        for i, s in enumerate(starts):
            if cancel is not None and cancel.is_set():
                from engine.data.base import Cancelled

                raise Cancelled("feature extraction was cancelled")
            x = nxt.result() if nxt is not None else read(s)
            nxt = pool.submit(read, starts[i + 1]) if pool and i + 1 < len(starts) else None
            out.append(encode(encoder, x, device, amp_dtype, normalize, channels_last))
            if progress:
                progress(min(s + batch_size, len(idx)), len(idx))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        encoder.train(was_training)
    if not out:
        return torch.zeros(0, getattr(encoder, "feature_dim", 1))
    return torch.cat(out)


@torch.no_grad()
def refit_batchnorm(encoder: nn.Module, data, batches: int = 20, batch_size: int = 256, seed: int = 0,
                    device=None) -> int:
    """Re-estimate the BatchNorm running statistics of ``encoder``, in place, on ``batches`` random batches of
    ``data``'s whole images (no gradients; the plain average over the batches). An untrained encoder's are
    those of its initialisation (mean 0, variance 1), a patch method's those of its patches: refitting both
    says how much of a trained encoder's lead comes from its weights and how much from its statistics alone.
    The number of BatchNorm layers refitted (0: the encoder has none and is unchanged)."""
    norms = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms or not len(data) or batches < 1:
        return 0
    device = _device_for(encoder, device)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: every batch counts the same
    was_training = encoder.training
    encoder.train()
    g = torch.Generator().manual_seed(seed)
    try:
        for _ in range(batches):
            idx = torch.randint(0, len(data), (min(batch_size, len(data)),), generator=g).numpy()
            encoder(to_input(data.get(idx), device))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        encoder.train(was_training)
    return len(norms)


def raw_pixel_features(data, indices=None, size: int = 16) -> torch.Tensor:
    """Raw pixels (downscaled to ``size``), centred and L2-normalised: the trivial baseline."""
    idx = np.arange(len(data)) if indices is None else np.asarray(indices)
    out = []
    for s in range(0, len(idx), 2048):
        x = data.get(idx[s:s + 2048]).cpu().float().div_(255)
        if x.shape[-1] > size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = x.flatten(1)
        x = x - x.mean(1, keepdim=True)
        out.append(F.normalize(x, dim=1))
    return torch.cat(out)


# -- the shared cache ---------------------------------------------------------------------------------------
def data_identity(data) -> str:
    """What names ``data``'s images for the cache (see ``ImageData.identity``)."""
    ident = getattr(data, "identity", None)
    if callable(ident):
        return str(ident())
    return f"{getattr(data, 'source', '')}|{getattr(data, 'name', '')}|{len(data)}"


class _Entry:
    """The features one encoder gave for some images of one dataset: sorted indices and their rows."""

    def __init__(self):
        self.indices = np.zeros(0, np.int64)
        self.rows: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return 0 if self.rows is None else int(self.rows.nbytes)

    def where(self, want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in ``rows``, found mask) of ``want``."""
        pos = np.searchsorted(self.indices, want)
        pos = np.minimum(pos, max(0, len(self.indices) - 1))
        found = (self.indices[pos] == want) if len(self.indices) else np.zeros(len(want), bool)
        return pos, found

    def add(self, idx: np.ndarray, rows: np.ndarray) -> None:
        if not len(idx):
            return
        idx, first = np.unique(idx, return_index=True)
        rows = rows[first]
        _, found = self.where(idx)
        idx, rows = idx[~found], rows[~found]
        if self.rows is None:
            self.indices, self.rows = idx, np.ascontiguousarray(rows, np.float32)
            return
        allidx = np.concatenate([self.indices, idx])
        order = np.argsort(allidx, kind="stable")
        self.indices = allidx[order]
        self.rows = np.concatenate([self.rows, rows.astype(np.float32)])[order]


class FeatureStore:
    """Raw (not normalised) float32 features per (encoder, precision, dataset), kept per image: a request
    extracts only the images no earlier request did, so a map's sample, the retrieval bank, the evaluation's
    bank and test set and the downstream sets reuse each other's work. The encoder is named by a key its
    caller gives (a run's checkpoint file, time and size; a baseline's architecture and seed); the data by
    its identity (a folder's files, a subset's parent and indices). Least recently used entries go when the
    store holds more than ``max_mb``. Safe to use from several threads (extraction runs outside the lock)."""

    def __init__(self, max_mb: float | None = None):
        if max_mb is None:
            try:
                max_mb = float(os.environ.get("SSLWB_FEATURE_CACHE_MB", DEFAULT_STORE_MB))
            except ValueError:
                max_mb = DEFAULT_STORE_MB
        self.max_bytes = int(max_mb * 2**20)
        self.lock = threading.RLock()
        self.entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self.extracted = 0  # images encoded
        self.reused = 0  # images served from the store

    @staticmethod
    def key(encoder_key: str, data, amp_dtype=None) -> tuple:
        return (str(encoder_key), str(amp_dtype or torch.float32).replace("torch.", ""), data_identity(data))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def nbytes(self) -> int:
        with self.lock:
            return sum(e.nbytes for e in self.entries.values())

    def has(self, encoder_key: str, data, indices=None, amp_dtype=None) -> bool:
        want = np.arange(len(data)) if indices is None else np.asarray(indices, np.int64)
        with self.lock:
            entry = self.entries.get(self.key(encoder_key, data, amp_dtype))
            return entry is not None and bool(entry.where(want)[1].all())

    def drop(self, encoder_key: str) -> None:
        """Forget every entry of one encoder (its weights changed)."""
        with self.lock:
            for k in [k for k in self.entries if k[0] == str(encoder_key)]:
                del self.entries[k]

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()

    def features(self, encoder_key: str, encoder: nn.Module | Callable[[], nn.Module], data, indices=None, *,
                 device=None, amp_dtype=None, normalize: bool = True, batch_size: int = 512,
                 channels_last: bool = True, progress: Callable[[int, int], None] | None = None,
                 cancel=None) -> np.ndarray:
        """Features ``(n, D)`` float32 of ``indices`` of ``data`` (all when None), L2-normalised unless
        ``normalize`` is False. ``encoder``: the module, or a function that builds it (called only when
        something must be extracted). ``progress(done, total)`` counts the images of this request."""
        want = np.arange(len(data), dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
        key = self.key(encoder_key, data, amp_dtype)
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                entry = self.entries[key] = _Entry()
            self.entries.move_to_end(key)
            _, found = entry.where(want)
        missing = np.unique(want[~found])
        if len(missing) and getattr(data, "streaming", False) and hasattr(data, "reading_order"):
            # a streamed set is read in its own order (each shard of a decoded cache read once)
            missing = np.asarray(data.reading_order(torch.from_numpy(missing)), dtype=np.int64)
        if len(missing):
            enc = encoder if isinstance(encoder, nn.Module) else encoder()
            device = torch.device(device) if device is not None else next(enc.parameters()).device
            enc = prepare_encoder(enc, device, channels_last)
            done0 = len(want) - int((~found).sum())

            def prog(done, total):
                if progress:
                    progress(min(len(want), done0 + done), len(want))

            rows = extract_features(enc, data, missing, batch_size=batch_size, device=device, normalize=False,
                                    progress=prog, cancel=cancel, amp_dtype=amp_dtype,
                                    channels_last=channels_last).numpy()
            with self.lock:
                entry = self.entries.setdefault(key, entry)
                entry.add(missing, rows)
                self.extracted += len(missing)
                self._evict(keep=key)
        elif progress:
            progress(len(want), len(want))
        with self.lock:
            pos, found = entry.where(want)
            out = entry.rows[pos] if len(want) else np.zeros((0, 0 if entry.rows is None else entry.rows.shape[1]),
                                                              np.float32)
            self.reused += len(want) - len(missing)
        if normalize and len(out):
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32, copy=False)

    def _evict(self, keep: tuple) -> None:
        total = sum(e.nbytes for e in self.entries.values())
        for k in list(self.entries):
            if total <= self.max_bytes:
                break
            if k != keep:
                total -= self.entries.pop(k).nbytes
