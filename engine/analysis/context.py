"""Per-run state of the analysis process: a run's config, data and encoder; its features come from the
process's one :class:`engine.eval.features.FeatureStore`, shared by every op."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

DEFAULT_SAMPLE = 5000
PREVIEW_SIZE = 2000  # a map from the checkpoint shows this many images first, while the rest are extracted
THUMB_SIZE = 48


IDLE_CORES_FROM = 4096  # images to extract from which a request looks for idle cores


@contextmanager
def idle_cores(device):
    """A large extraction on the CPU uses the cores other processes leave idle (the analysis process keeps one
    thread on small machines so that it never slows training or the window): with nothing else running, a
    map of 50,000 images is extracted on every core; beside a training run, on the one it had.
    ``SSLWB_ANALYSIS_THREADS`` fixes the count."""
    import torch

    if getattr(device, "type", str(device)) != "cpu" or os.environ.get("SSLWB_ANALYSIS_THREADS"):
        yield
        return
    from engine.training.threads import spare_cores

    before = torch.get_num_threads()
    spare = spare_cores() or 0
    if spare > before:
        torch.set_num_threads(spare)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- per-run state ----------------------------------------------------------------------------------
class RunContext:
    """A run folder's config, data splits, encoder and full model, loaded once and refreshed when
    the checkpoint changes (a live run writes a new one every few minutes)."""

    def __init__(self, run_dir: str | Path, device, data: str = "", store=None):
        """``data``: another dataset to look at with the run's encoder (at the run's image size) instead of
        the run's own (its evaluation split is a held-out part of it when it is labelled); ``store``: the
        process's feature store (a store of its own when None)."""
        from engine.eval.features import FeatureStore
        from engine.runs import encoder_entry
        from engine.session import resume_config

        self.run_dir = Path(run_dir)
        self.cfg = resume_config(self.run_dir)
        if data:
            self.cfg.data.spec, self.cfg.data.eval_spec, self.cfg.data.max_images = str(data), "", 0
        self.entry = encoder_entry(self.run_dir)  # an opened encoder's encoder.json, None for a trained run
        self.device = device
        self.lock = threading.RLock()
        self._datasets: dict | None = None
        self._encoder = None
        self._encoder_key = None
        self._method = None
        self._method_key = None
        self.store = store if store is not None else FeatureStore()
        self.backbone = None

    def _ckpt_key(self):
        from engine.runs import checkpoint_path, encoder_path

        for p in (checkpoint_path(self.run_dir), encoder_path(self.run_dir)):
            try:
                st = p.stat()
                return (str(p), st.st_mtime_ns, st.st_size)
            except OSError:
                continue
        return None

    @property
    def data_loaded(self) -> bool:
        """Is the run's data in memory already (a map can show its thumbnails at once)?"""
        return self._datasets is not None

    @property
    def encoder_key(self):
        """What identifies the encoder weights loaded now (the checkpoint file, its time and size)."""
        return self._encoder_key

    def datasets(self, job=None) -> dict:
        with self.lock:
            if self._datasets is None:
                from engine.training.rundata import prepare_data

                if job:
                    job.progress(0, 1, f"reading the dataset {self.cfg.data.spec}")
                self._datasets = prepare_data(self.cfg, download=False, tolerate_missing_eval=True)
            return self._datasets

    def source(self, split: str = "eval", job=None):
        ds = self.datasets(job)
        return ds["data"] if split == "train" else ds["embed_source"]

    def encoder(self):
        with self.lock:
            key = self._ckpt_key()
            if self._encoder is None or key != self._encoder_key:
                from engine.training.checkpoints import load_run_encoder

                old = self.feature_key if self._encoder is not None else None
                self._encoder, _, self.backbone = load_run_encoder(self.run_dir, self.device)
                self._encoder_key = key
                if old is not None and old != self.feature_key:
                    self.store.drop(old)  # the old weights' features are of no use any more
            return self._encoder

    def method(self):
        with self.lock:
            key = self._ckpt_key()
            if self._method is None or key != self._method_key:
                from engine.training.checkpoints import load_run_method

                self._method, _, self.backbone = load_run_method(self.run_dir, self.device)
                self._method_key = key
            return self._method

    @property
    def feature_key(self) -> str:
        """What names the encoder in the feature store: the run folder and its weights file's time and size."""
        return f"run:{self.run_dir.resolve()}:{self._encoder_key}"

    @property
    def amp_dtype(self):
        """The run's training precision on this process's device (None: float32): features are extracted
        in it, as the training saw them."""
        from engine.training.device import autocast_dtype

        return autocast_dtype(self.device, getattr(self.cfg, "precision", "auto"))

    def has_features(self, split: str, indices) -> bool:
        self.encoder()
        return self.store.has(self.feature_key, self.source(split), indices, self.amp_dtype)

    def features(self, split: str, indices: np.ndarray, job=None, data=None) -> np.ndarray:
        """L2-normalised features of ``indices`` of the split (or of ``data``), from the feature store: only
        images no earlier request extracted are encoded."""
        enc = self.encoder()
        data = data if data is not None else self.source(split, job)

        def prog(done, total):
            if job:
                job.progress(done, total, f"extracting features ({done:,} of {total:,} images)")

        n = len(data) if indices is None else len(indices)
        many = n >= IDLE_CORES_FROM and not self.store.has(self.feature_key, data, indices, self.amp_dtype)
        with idle_cores(self.device) if many else nullcontext():
            return self.store.features(self.feature_key, enc, data, indices, device=self.device,
                                       amp_dtype=self.amp_dtype, progress=prog, cancel=job.cancel if job else None)

    def extractor(self, cancel=None):
        """``extract(data, indices)`` -> torch features of this run's encoder from the store, in float32: the
        evaluation's (its numbers are the run's final evaluation's, which scores in float32)."""
        return store_extractor(self.store, self.feature_key, self.encoder(), self.device, None, cancel)

    @property
    def title(self) -> str:
        """What the encoder is called in rows and lists: the run's method, or the opened encoder's name."""
        if self.entry:
            return str(self.entry.get("name") or self.entry.get("spec") or "encoder")
        return self.cfg.method

    def adopt(self, encoder) -> None:
        """Use ``encoder`` (just loaded from what the folder's weights were written from) as the folder's."""
        with self.lock:
            if self._encoder is not None:
                self.store.drop(self.feature_key)
            self._encoder, self._encoder_key = encoder, self._ckpt_key()

    def backbone_name(self) -> str:
        if self.backbone is None:
            from engine.eval.protocol import run_backbone_name

            self.backbone = run_backbone_name(self.run_dir, self.cfg)
        return self.backbone


def list_snapshots(run_dir: str | Path) -> list[dict]:
    """The run's embedding snapshots (embeddings/step_XXXXXXXX.npz), oldest first."""
    out = []
    for p in sorted((Path(run_dir) / "embeddings").glob("step_*.npz")):
        try:
            step = int(p.stem.split("_")[1])
        except (IndexError, ValueError):
            continue
        epoch = None
        try:
            with np.load(p) as z:
                epoch = float(z["epoch"]) if "epoch" in z.files else None
        except Exception:  # a snapshot being written or damaged: list it without its epoch
            pass
        out.append({"step": step, "epoch": epoch, "path": str(p)})
    return out



def store_extractor(store, key: str, encoder, device, amp_dtype=None, cancel=None):
    """``extract(data, indices)`` -> L2-normalised torch features of ``encoder`` (named ``key``) from ``store``."""
    import torch

    def extract(data, indices):
        return torch.from_numpy(store.features(key, encoder, data, indices, device=device, amp_dtype=amp_dtype,
                                               cancel=cancel))

    return extract


def random_init_key(backbone: str, image_size: int, seed: int) -> str:
    """The store's name of a random-init encoder (the evaluation's and the downstream baseline's are one)."""
    return f"random_init:{backbone}:{image_size}:seed{seed}"


def thumbs(data, indices, size: int = THUMB_SIZE) -> np.ndarray:
    from engine.eval.protocol import thumbnails

    return thumbnails(data, indices, size)


def kmeans(feats: np.ndarray, k: int) -> np.ndarray:
    k = max(1, min(int(k), len(feats)))
    if k == 1:
        return np.zeros(len(feats), np.int64)
    try:
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=k, n_init=1, random_state=0, max_iter=100).fit_predict(feats).astype(np.int64)
    except Exception:  # pragma: no cover - scikit-learn missing: a few Lloyd steps in numpy
        rng = np.random.default_rng(0)
        cent = feats[rng.choice(len(feats), k, replace=False)]
        for _ in range(20):
            lab = np.argmax(feats @ cent.T, axis=1)
            for c in range(k):
                if (lab == c).any():
                    cent[c] = feats[lab == c].mean(0)
        return lab.astype(np.int64)
