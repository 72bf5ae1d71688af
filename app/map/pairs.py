"""The attract/repel figure of a two-view method, without Qt: where the two views of a chosen image fall on
the map, how they moved over the last snapshots, and how the other images of their batch moved.

Each snapshot of a two-view method carries two views of a few of its sample images, drawn with the method's
own augmentations and encoded by the encoder of that moment (``MapState.pair_features``: P x 2 x D, and
``pair_rows``: their images' rows). A view is no point of the layout, so it is placed by interpolation: the
mean position of its ``k`` nearest sample images in feature space (cosine). Earlier snapshots' layouts are
aligned onto the map shown (rotation, reflection, scale) before their positions are compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.eval.projection import align_layout

PLACE_K = 5  # sample images whose mean position places a view
TRAIL = 4  # snapshots a view's trail goes back


def place(vectors: np.ndarray, features: np.ndarray, coords: np.ndarray, k: int = PLACE_K) -> np.ndarray:
    """2-D positions (M, 2) of feature ``vectors`` (M, D) on a layout ``coords`` (N, 2) of ``features`` (N, D):
    the mean position of each vector's ``k`` nearest features by cosine."""
    v = np.asarray(vectors, np.float32).reshape(-1, np.asarray(features).shape[1])
    f = np.asarray(features, np.float32)
    c = np.asarray(coords, np.float32)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    k = max(1, min(int(k), len(f)))
    sims = v @ f.T
    near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return c[near].mean(axis=1)


def views_alike(pf: np.ndarray, p: int) -> float:
    """Cosine between the two views of pair ``p``."""
    return float(np.dot(pf[p, 0], pf[p, 1]))


def others_alike(pf: np.ndarray, p: int) -> float:
    """Mean cosine between the views of pair ``p`` and the views of every other image of the batch."""
    others = np.delete(np.arange(len(pf)), p)
    if not len(others):
        return float("nan")
    return float(np.mean(np.einsum("ad,jbd->jab", pf[p], pf[others])))


def has_pairs(state) -> bool:
    return state is not None and state.pair_features is not None and state.pair_rows is not None and \
        len(state.pair_rows) >= 2


@dataclass
class Figure:
    """What the map draws for the chosen image (positions in the layout shown)."""

    pair: int  # which of the snapshot's pairs
    row: int  # its image's row in the map
    image: np.ndarray  # (2,) the image's position
    views: np.ndarray  # (2, 2) its two views' positions
    trails: np.ndarray  # (T, 2, 2) the views' positions over the last T snapshots, oldest first (T >= 1)
    others: np.ndarray  # (P - 1,) rows of the other images of the batch
    others_to: np.ndarray  # (P - 1, 2) their positions now
    others_from: np.ndarray | None  # (P - 1, 2) their positions at the snapshot before (None: none loaded)
    away: np.ndarray | None  # (P - 1,) bool: less alike the chosen image (features, cosine) than before
    caption: str = ""
    steps: list = field(default_factory=list)  # the snapshots' steps the trails go through


def snapshots_with_pairs(store, current) -> list:
    """The loaded snapshot maps of the points shown that carry the same pairs as ``current``, in step order up to
    it."""
    out = []
    for e in store.entries:
        s = store.states.get(e.key)
        if s is current or (has_pairs(s) and s.same_points(current) and s.layouts and s.step is not None
                            and current.step is not None and s.step < current.step
                            and np.array_equal(s.pair_rows, current.pair_rows)):
            out.append(s)
    return out


def snapshots_wanted(store, current) -> list:
    """The timeline's snapshot entries the figure of ``current`` would use and the map has not loaded: the first
    one (the caption's "from") and the ``TRAIL - 1`` before ``current`` (the trails and arrows), nearest first."""
    if not has_pairs(current) or current.step is None:
        return []
    from engine.messages import FeatureSource

    before = [e for e in store.entries if e.kind != FeatureSource.CHECKPOINT and e.step is not None
              and e.step < current.step]
    want = list(reversed(before[-(TRAIL - 1):])) + before[:1]
    seen, out = set(), []
    for e in want:
        if e.key not in seen and e.key not in store.states:
            seen.add(e.key)
            out.append(e)
    return out


def _layout(state, projection: str, reference: np.ndarray) -> np.ndarray:
    lay = state.layouts.get(projection)
    if lay is None:
        lay = next(iter(v for k, v in state.layouts.items() if k != "pca"), state.layouts.get("pca"))
    return align_layout(np.asarray(lay, np.float32), reference)


def figure(store, coords: np.ndarray, projection: str, chosen_row: int = -1) -> Figure | None:
    """The attract/repel figure of the map shown (``coords``: its layout drawn now) for the image of
    ``chosen_row`` when it is one of the pairs, else for the first pair. None when the map has no pairs."""
    cur = store.current
    coords = np.asarray(coords, np.float32)
    if not has_pairs(cur) or len(coords) != len(cur.indices):
        return None
    rows = np.asarray(cur.pair_rows, np.int64)
    hit = np.flatnonzero(rows == chosen_row)
    p = int(hit[0]) if len(hit) else 0
    snaps = snapshots_with_pairs(store, cur)
    if not snaps or snaps[-1] is not cur:
        snaps = [s for s in snaps if s is not cur] + [cur]
    trail = []
    for s in snaps[-TRAIL:]:
        lay = coords if s is cur else _layout(s, projection, coords)
        trail.append(place(s.pair_features[p], s.features, lay))
    views = trail[-1]
    others = np.delete(np.arange(len(rows)), p)
    o_rows = rows[others]
    fig = Figure(p, int(rows[p]), coords[rows[p]], views, np.stack(trail), o_rows, coords[o_rows], None, None,
                 steps=[s.step for s in snaps[-TRAIL:]])
    if len(snaps) >= 2:
        prev = snaps[-2]
        fig.others_from = _layout(prev, projection, coords)[o_rows]
        fig.away = _cos(cur.features, rows[p], o_rows) < _cos(prev.features, rows[p], o_rows)
    fig.caption = caption(snaps, p, fig)
    return fig


def _cos(features: np.ndarray, row: int, rows: np.ndarray) -> np.ndarray:
    f = np.asarray(features, np.float32)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return f[rows] @ f[row]


def caption(snaps: list, p: int, fig: Figure) -> str:
    """One line: what is drawn and the measured cosines, at the first loaded snapshot and now."""
    first, cur = snaps[0], snaps[-1]
    v1, v0 = views_alike(cur.pair_features, p), views_alike(first.pair_features, p)
    o1, o0 = others_alike(cur.pair_features, p), others_alike(first.pair_features, p)
    n = len(fig.others)
    who = f"Image #{int(cur.indices[fig.row])}"
    if first is cur:
        return (f"{who} (step {cur.step}): its two views ◆ {v1:.2f} alike · the other {n} images of its batch "
                f"{o1:.2f} (cosine) · move along the timeline to see them move")
    moved = "" if fig.away is None else \
        f" · since the snapshot before, {int(fig.away.sum())} of {n} moved away (red), {int((~fig.away).sum())} closer (blue)"
    return (f"{who} (step {first.step} → {cur.step}): its two views ◆ {v0:.2f} → {v1:.2f} alike · the other {n} "
            f"images of its batch {o0:.2f} → {o1:.2f} (cosine){moved}")


__all__ = ["Figure", "PLACE_K", "caption", "figure", "has_pairs", "others_alike", "place", "snapshots_wanted",
           "views_alike"]
