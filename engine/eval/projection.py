"""2-D projections of features: PCA (instant), UMAP (umap-learn) and t-SNE (scikit-learn)."""

from __future__ import annotations

import numpy as np

PROJECTIONS = ("umap", "pca", "tsne")


def pca_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    x = x - x.mean(0, keepdims=True)
    if x.shape[0] < 2:
        return np.zeros((x.shape[0], 2), np.float32)
    # economy SVD of the (D x D) covariance is fast for N >> D
    cov = x.T @ x / max(1, x.shape[0] - 1)
    vals, vecs = np.linalg.eigh(cov)
    comps = vecs[:, ::-1][:, :2]
    out = x @ comps
    if out.shape[1] < 2:
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    return out.astype(np.float32)


def normalize_layout(coords: np.ndarray) -> np.ndarray:
    """Centre and scale a layout to unit spread (so successive maps share a frame)."""
    c = coords - np.median(coords, axis=0, keepdims=True)
    s = np.percentile(np.abs(c), 98) or 1.0
    return (c / s).astype(np.float32)


def umap_2d(x: np.ndarray, init: np.ndarray | None = None, n_neighbors: int = 15, min_dist: float = 0.1,
            seed: int | None = 0, n_epochs: int | None = None) -> np.ndarray:
    import umap

    n = x.shape[0]
    if n < 4:
        return pca_2d(x)
    kw = {}
    if init is not None and init.shape == (n, 2):
        kw["init"] = np.asarray(init, dtype=np.float32)
    reducer = umap.UMAP(n_neighbors=min(n_neighbors, n - 1), min_dist=min_dist, metric="cosine",
                        random_state=seed, n_epochs=n_epochs, low_memory=True, **kw)
    return reducer.fit_transform(np.asarray(x, dtype=np.float32)).astype(np.float32)


def tsne_2d(x: np.ndarray, init: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = x.shape[0]
    if n < 5:
        return pca_2d(x)
    init_arr = init if init is not None and init.shape == (n, 2) else "pca"
    return TSNE(n_components=2, perplexity=min(30, (n - 1) / 3), init=init_arr, random_state=seed,
                metric="cosine").fit_transform(np.asarray(x, dtype=np.float32)).astype(np.float32)


def project(x: np.ndarray, method: str = "umap", init: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    if method == "pca":
        return normalize_layout(pca_2d(x))
    if method == "umap":
        return normalize_layout(umap_2d(x, init=init, seed=seed))
    if method == "tsne":
        return normalize_layout(tsne_2d(x, init=init, seed=seed))
    raise ValueError(f"unknown projection {method!r}; choose one of: {', '.join(PROJECTIONS)}")
