"""Nearest neighbours in feature space and cheap per-point properties (numpy only: the GUI uses it)."""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def nearest_neighbors(bank: np.ndarray, query: np.ndarray, k: int = 10, exclude: int | None = None,
                      normalized: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar rows of ``bank`` to one ``query`` vector: (indices, similarities),
    most similar first. ``exclude`` leaves one bank row out (the query itself)."""
    bank = np.asarray(bank, dtype=np.float32)
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    if not normalized:
        bank = l2_normalize(bank)
        q = l2_normalize(q)
    sims = bank @ q
    if exclude is not None and 0 <= exclude < len(sims):
        sims[exclude] = -np.inf
    k = max(0, min(k, len(sims) - (1 if exclude is not None else 0)))
    if k == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    part = np.argpartition(-sims, k - 1)[:k]
    order = part[np.argsort(-sims[part], kind="stable")]
    return order.astype(np.int64), sims[order].astype(np.float32)


def neighbor_agreement(knn_idx: np.ndarray, labels: np.ndarray | None) -> np.ndarray | None:
    """For each point, the share of its feature-space neighbours (the point itself excluded) with
    its label: 1 inside a clean class cluster, low where classes mix."""
    if labels is None or knn_idx is None or len(knn_idx) == 0:
        return None
    labels = np.asarray(labels)
    nb = knn_idx[:, 1:] if knn_idx.shape[1] > 1 else knn_idx
    return (labels[nb] == labels[:, None]).mean(1).astype(np.float32)


def image_properties(thumbs: np.ndarray) -> dict[str, np.ndarray]:
    """Brightness and colourfulness (0..1) of uint8 images (N, H, W, 3)."""
    x = np.asarray(thumbs, dtype=np.float32) / 255.0
    if x.ndim != 4 or len(x) == 0:
        return {}
    brightness = x.mean(axis=(1, 2, 3))
    sat = (x.max(axis=3) - x.min(axis=3)).mean(axis=(1, 2))
    return {"brightness": brightness.astype(np.float32), "colourfulness": sat.astype(np.float32)}
