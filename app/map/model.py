"""The embedding map's state, without Qt: the run's timeline of maps, each map's points and layouts,
the colouring, the highlighted class, the neighbour query and the selection.

The widgets (app/map/panel.py and the other modules of app/map/) draw what this store holds
and tell it what the user did; the analysis process computes the maps. Plain numpy throughout, so
every rule here is tested without a window (tests/test_map_model.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.common.measures import collapse_line, final_text, monitor_text
from app.map.movie import KnnTrack
from engine.eval.neighbors import nearest_neighbors
from engine.messages import FeatureSource

COLOR_CLASS, COLOR_CLUSTER = "class", "k-means cluster"
GRADIENT_LEVELS = 32


@dataclass
class MapState:
    """One map: a set of points (features, labels, thumbnails) and its layouts by projection."""

    key: str
    features: np.ndarray
    indices: np.ndarray
    labels: np.ndarray | None
    class_names: list[str]
    thumbs: np.ndarray | None = None
    paths: list[str] | None = None
    step: int | None = None
    epoch: float | None = None
    split: str = "eval"
    layouts: dict = field(default_factory=dict)
    clusters: np.ndarray | None = None
    properties: dict = field(default_factory=dict)
    note: str = ""
    data: str = ""  # another dataset than the run's, looked at with its encoder ("": the run's own)
    # two views of a few of its images (a two-view method's snapshot): (P, 2, D) features and their rows
    pair_features: np.ndarray | None = None
    pair_rows: np.ndarray | None = None

    @classmethod
    def from_reply(cls, key: str, d: dict, with_meta: bool = False) -> MapState:
        """A map from the analysis process's first stage (``with_meta``: thumbnails and paths too)."""
        return cls(key, d["features"], np.asarray(d["indices"]), d.get("labels"), list(d.get("class_names") or []),
                   thumbs=d.get("thumbs") if with_meta else None, paths=d.get("paths") if with_meta else None,
                   step=d.get("step"), epoch=d.get("epoch"), split=d.get("split", "eval"),
                   pair_features=d.get("pair_features"), pair_rows=d.get("pair_rows"))

    def same_points(self, other: MapState | None) -> bool:
        return other is not None and len(other.indices) == len(self.indices) and \
            np.array_equal(other.indices, self.indices)


@dataclass
class Entry:
    """A timeline entry: an embedding snapshot of the run (from disk or a live message) or a fresh extraction."""

    key: str
    step: int | None
    epoch: float | None
    kind: FeatureSource  # where its features come from: a live message, a snapshot on disk, the checkpoint
    features: np.ndarray | None = None
    labels: np.ndarray | None = None
    indices: np.ndarray | None = None
    split: str = "eval"  # the images a map from the checkpoint shows (snapshots use the evaluation set)
    data: str = ""  # a map from the checkpoint of another dataset (a spec; "": the run's own)
    pair_features: np.ndarray | None = None  # a live snapshot's two views of a few images (MapState's)
    pair_rows: np.ndarray | None = None

    @property
    def title(self) -> str:
        ep = f"epoch {round(self.epoch, 2):g}" if self.epoch is not None else ""
        st = f"step {self.step}" if self.step is not None else ""
        what = {FeatureSource.CHECKPOINT: "from the checkpoint", FeatureSource.LIVE: "live",
                FeatureSource.SNAPSHOT: ""}[FeatureSource(self.kind)]
        if self.data:
            what += f" · {self.data}"
        return " · ".join(s for s in (ep, st, what) if s) or self.kind

    @classmethod
    def snapshot(cls, snap: dict) -> Entry:
        return cls(f"step:{snap['step']}", snap["step"], snap.get("epoch"), FeatureSource.SNAPSHOT)

    @classmethod
    def checkpoint(cls, split: str, sample: int, data: str = "") -> Entry:
        """A map from the checkpoint of ``sample`` images of the run's ``split``, or of another dataset
        (``data``: its spec; its training part)."""
        where = f"data={data}" if data else split
        return cls(f"ckpt:{where}:{sample}", None, None, FeatureSource.CHECKPOINT, split=split, data=data)

    @classmethod
    def live_message(cls, msg) -> Entry:
        """From an ``engine.messages.Embedding`` of the live session."""
        pf, pr = getattr(msg, "pair_features", None), getattr(msg, "pair_rows", None)
        return cls(f"step:{msg.step}", int(msg.step), float(msg.epoch), FeatureSource.LIVE, np.asarray(msg.features),
                   None if msg.labels is None else np.asarray(msg.labels), np.asarray(msg.indices),
                   pair_features=None if pf is None else np.asarray(pf), pair_rows=None if pr is None else np.asarray(pr))


@dataclass
class Coloring:
    """How to colour the points: a colour index per point out of ``n_colors`` and the legend.

    ``kind``: "class" (``n_colors - 1`` classes, the last colour for unlabeled points), "cluster",
    "pending" (clusters not computed yet: one colour) or "gradient" (``GRADIENT_LEVELS`` levels from
    ``lo`` to ``hi``). ``dim``: points drawn faintly (outside the highlighted class or the selection).
    """

    mode: str
    kind: str
    idx: np.ndarray
    n_colors: int
    title: str
    names: list[str] = field(default_factory=list)
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lo: float = 0.0
    hi: float = 0.0
    dim: np.ndarray | None = None


class MapStore:
    """The state of the embedding map of one run."""

    def __init__(self):
        self.thumb_cache: dict[tuple, tuple] = {}  # kept across runs: thumbnails are costly to send
        self.open(None)

    # -- the run ---------------------------------------------------------------------------------------
    def open(self, run_dir: str | None, live: bool = False) -> None:
        """Forget the maps of the run shown before."""
        self.run_dir = str(run_dir) if run_dir else None
        self.live = live
        self.entries: list[Entry] = []
        self.states: dict[str, MapState] = {}
        self.current: MapState | None = None
        self.current_entry: Entry | None = None
        self.clicked_row = -1
        self.neighbor_rows: np.ndarray | None = None
        self.selected_rows = np.zeros(0, np.int64)
        self.isolated: int | None = None
        self.knn = KnnTrack()  # the run's online kNN (live eval records) for the map's headline
        self.final: dict | None = None  # its final evaluation (app.common.measures.final_of), once it has one
        self.monitor: dict | None = None  # what its online monitor scores (data.json's "monitor")
        self.alarms: list[dict] = []  # the collapse signs of the run (step, where, text)

    def set_facts(self, facts: dict) -> None:
        """What app.common.measures.read_run_facts read of the run folder."""
        self.final = facts.get("final")
        self.monitor = facts.get("monitor")
        known = {(a["step"], a["where"]) for a in self.alarms}
        self.alarms += [a for a in facts.get("collapse") or [] if (a["step"], a["where"]) not in known]
        self.alarms.sort(key=lambda a: a["step"])

    def add_alarm(self, step: int, where: str, text: str) -> None:
        if not any(a["step"] == step and a["where"] == where for a in self.alarms):
            self.alarms.append({"step": int(step), "where": str(where), "text": str(text)})

    def alarm_text(self) -> str:
        """The warning over the map when collapse was signalled ("" when not)."""
        return collapse_line(self.alarms)

    @property
    def run_name(self) -> str:
        return Path(self.run_dir).name if self.run_dir else ""

    # -- the timeline ----------------------------------------------------------------------------------
    def add_entry(self, entry: Entry) -> int:
        """Add (or replace, by key) a timeline entry; snapshots stay in step order, extractions last.
        Returns its position."""
        for i, e in enumerate(self.entries):
            if e.key == entry.key:
                self.entries[i] = entry
                return i
        self.entries.append(entry)
        snaps = sorted((e for e in self.entries if e.kind != FeatureSource.CHECKPOINT),
                       key=lambda e: e.step if e.step is not None else -1)
        self.entries = snaps + [e for e in self.entries if e.kind == FeatureSource.CHECKPOINT]
        return self.entries.index(entry)

    def entry(self, key: str) -> Entry | None:
        return next((e for e in self.entries if e.key == key), None)

    def unknown_snapshots(self, snaps: list[dict]) -> list[Entry]:
        """Entries for the snapshots of a listing that the timeline does not have yet."""
        known = {e.key for e in self.entries}
        return [Entry.snapshot(s) for s in snaps if f"step:{s['step']}" not in known]

    def timeline_text(self, i: int) -> str:
        if not self.entries:
            return "no snapshots"
        return f"{self.entries[i].title}  ({i + 1}/{len(self.entries)})"

    # -- maps ------------------------------------------------------------------------------------------
    def cached_layout(self, entry: Entry, projection: str) -> np.ndarray | None:
        state = self.states.get(entry.key)
        return None if state is None else state.layouts.get(projection)

    def map_source(self, entry: Entry, split: str, sample: int) -> dict:
        """What the analysis process maps for ``entry``: known features, a snapshot on disk, or an
        extraction from the checkpoint."""
        state = self.states.get(entry.key)
        if state is not None:
            return dict(features=state.features, labels=state.labels, indices=state.indices, step=state.step,
                        epoch=state.epoch, pair_features=state.pair_features, pair_rows=state.pair_rows)
        if entry.kind == FeatureSource.LIVE:
            return dict(features=entry.features, labels=entry.labels, indices=entry.indices, step=entry.step,
                        epoch=entry.epoch, pair_features=entry.pair_features, pair_rows=entry.pair_rows)
        if entry.kind == FeatureSource.SNAPSHOT:
            return {"snapshot": entry.step}
        if entry.data:
            return {"split": entry.split, "sample": sample, "data": entry.data}
        return {"split": split, "sample": sample}

    def warm_start(self, entry: Entry, shown: np.ndarray | None) -> dict:
        """Start the new layout from the one shown (``shown``: its coordinates) when both show the same
        images, so the map moves instead of jumping. Returns the request's ``init`` arguments (or {})."""
        cur = self.current
        if cur is None or shown is None or len(shown) != len(cur.indices):
            return {}
        state = self.states.get(entry.key)
        indices = state.indices if state is not None else entry.indices
        if indices is not None and len(indices) == len(cur.indices) and np.array_equal(indices, cur.indices):
            return {"init": shown.copy(), "init_indices": cur.indices}
        if indices is None and entry.kind == FeatureSource.SNAPSHOT and cur.key.startswith("step:"):
            return {"init": shown.copy(), "init_indices": cur.indices}  # one run's snapshots share their images
        return {}

    def thumb_key(self, indices, entry: Entry) -> tuple:
        split = "eval" if entry.kind != FeatureSource.CHECKPOINT else entry.split
        return (self.run_dir, split, entry.data, len(indices), hash(np.asarray(indices).tobytes()))

    def needs_thumbs(self, entry: Entry) -> bool:
        state = self.states.get(entry.key)
        indices = state.indices if state is not None else entry.indices
        return indices is None or self.thumb_key(indices, entry) not in self.thumb_cache

    def first_map(self, key: str, d: dict) -> MapState:
        """The first stage of a map arrived: its state (kept), its entry's step, its PCA layout."""
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = MapState.from_reply(key, d)
        entry = self.entry(key)
        if entry is not None:
            state.data = entry.data
        if entry is not None and entry.step is None and d.get("step") is not None:
            entry.step, entry.epoch = d.get("step"), d.get("epoch")
        self.apply_meta(state, d, entry)
        state.layouts["pca"] = np.asarray(d["coords"], np.float32)
        return state

    def apply_meta(self, state: MapState, d: dict, entry: Entry | None) -> None:
        """Thumbnails, class names, paths (and labels of unlabeled snapshots) from a reply, or the cache."""
        tkey = self.thumb_key(state.indices, entry or Entry(state.key, None, None, FeatureSource.SNAPSHOT))
        if d.get("thumbs") is not None:
            self.thumb_cache[tkey] = (d["thumbs"], d.get("class_names") or [], d.get("paths"))
        if tkey in self.thumb_cache:
            thumbs, names, paths = self.thumb_cache[tkey]
            state.thumbs, state.paths = thumbs, paths
            state.class_names = state.class_names or list(names)
        if state.labels is None and d.get("labels") is not None:
            state.labels = np.asarray(d["labels"])
        if d.get("note"):
            state.note = d["note"]

    def show(self, state: MapState, same_points: bool) -> None:
        """``state`` becomes the map shown; unless it shows the same points as before, the clicked point,
        its neighbours and the selection are forgotten."""
        self.current = state
        if not same_points:
            self.clicked_row = -1
            self.neighbor_rows = None
            self.selected_rows = np.zeros(0, np.int64)

    def summary(self, s: MapState) -> str:
        what = f"{len(s.indices):,} images" + (f" of {s.data} (through the run's encoder)" if s.data else "")
        if s.epoch is not None:
            what += f" · epoch {round(s.epoch, 2):g}"
        if s.step is not None:
            what += f" · step {s.step}"
        note = f" · {s.note}" if s.note else ""
        return f"{self.run_name}: {what}{note}"

    def shows_final(self) -> bool:
        """Does the headline show the run's final evaluation: the run has one, and the map shown is its newest
        snapshot or a map from its checkpoint (an earlier snapshot shows the monitor's value of its step)?"""
        s = self.current
        if s is None or self.final is None or self.live or s.data:
            return False
        if s.key.startswith("ckpt:"):
            return True
        snaps = [e.step for e in self.entries if e.kind != FeatureSource.CHECKPOINT and e.step is not None]
        return s.step is not None and (not snaps or s.step >= max(snaps))

    def headline(self) -> str:
        """The kNN of the map shown next to its random-init value and chance (empty when unknown): the run's
        final evaluation on its newest map once it has one, else the online monitor's value at the map's step."""
        s = self.current
        if s is None or s.data:  # another dataset's map: the run's kNN is not about these images
            return ""
        k = len(s.class_names) or (int(np.max(s.labels)) + 1 if s.labels is not None and len(s.labels) else 0)
        if self.shows_final():
            return self.knn.headline(s.step, k, final=self.final["knn_top1"])
        return self.knn.headline(s.step, k)

    def headline_detail(self) -> str:
        """What the headline's kNN is: the final evaluation and its protocol, or the online monitor, its step and
        the images it scores."""
        s = self.current
        if s is None or not self.headline():
            return ""
        if self.shows_final():
            return final_text(self.final, short=True)
        at = self.knn.step_of(s.step)
        snap = at in self.knn.snapshot_steps or any(e.step == at and e.kind != FeatureSource.CHECKPOINT
                                                    for e in self.entries)
        return monitor_text(self.monitor, at, snapshot=snap)

    def movie_frames(self, projection: str) -> list[tuple[np.ndarray, str, str]]:
        """The run's snapshot maps that have a layout (``projection`` first, else another), in step order
        and each aligned to the one before (never mirrored or turned): (coords, caption, headline) for
        :func:`app.map.movie.write_gif`. Only maps of the points shown now."""
        from engine.eval.projection import align_layout

        cur, out, prev = self.current, [], None
        for e in self.entries:
            state = self.states.get(e.key)
            if e.kind == FeatureSource.CHECKPOINT or state is None or cur is None or not state.same_points(cur):
                continue
            lay = state.layouts.get(projection)
            if lay is None:
                lay = next(iter(v for k, v in state.layouts.items() if k != "pca"), state.layouts.get("pca"))
            if lay is None:
                continue
            lay = align_layout(np.asarray(lay, np.float32), prev)
            prev = lay
            k = len(state.class_names)
            caption = f"{self.run_name} · step {state.step}" + \
                (f" · epoch {round(state.epoch, 2):g}" if state.epoch else "")
            out.append((lay, caption, self.knn.headline(state.step, k)))
        return out

    # -- colours ---------------------------------------------------------------------------------------
    def color_choices(self) -> list[str]:
        s = self.current
        items = []
        if s is not None and s.labels is not None and (np.asarray(s.labels) >= 0).any():
            items.append(COLOR_CLASS)
        items.append(COLOR_CLUSTER)
        return items + list(s.properties if s is not None else {})

    def toggle_isolated(self, i: int) -> None:
        """Highlight legend entry ``i`` (a class or cluster); again: show all."""
        self.isolated = None if self.isolated == i else i

    def coloring(self, mode: str) -> Coloring | None:
        s = self.current
        if s is None:
            return None
        n = len(s.indices)
        if mode == COLOR_CLASS and s.labels is not None:
            idx = np.asarray(s.labels, np.int64)
            k = max(len(s.class_names), int(idx.max()) + 1 if n else 0)
            names = list(s.class_names) + [f"class {i}" for i in range(len(s.class_names), k)]
            idx = np.where(idx < 0, k, idx)  # unlabeled: the last colour
            c = Coloring(mode, "class", idx, k + 1, f"Class ({k})", names, np.bincount(idx, minlength=k + 1)[:k])
        elif (mode == COLOR_CLUSTER or mode not in s.properties) and s.clusters is None:
            c = Coloring(COLOR_CLUSTER, "pending", np.zeros(n, np.int64), 1, "k-means clusters (computing…)")
        elif mode == COLOR_CLUSTER or mode not in s.properties:
            idx = np.asarray(s.clusters, np.int64)
            k = int(idx.max()) + 1 if n else 0
            c = Coloring(COLOR_CLUSTER, "cluster", idx, k, f"k-means cluster ({k})",
                         [f"cluster {i + 1}" for i in range(k)], np.bincount(idx, minlength=k))
        else:
            v = np.asarray(s.properties[mode], np.float64)
            lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
            top = GRADIENT_LEVELS - 1
            idx = np.clip(((v - lo) / max(hi - lo, 1e-12) * top).round(), 0, top).astype(np.int64)
            self.isolated = None  # nothing to highlight on a gradient
            c = Coloring(mode, "gradient", idx, GRADIENT_LEVELS, mode, lo=lo, hi=hi)
        dim = None
        if self.isolated is not None and self.isolated < c.n_colors:
            dim = c.idx != self.isolated
        if len(self.selected_rows):
            outside = np.ones(n, bool)
            outside[self.selected_rows[self.selected_rows < n]] = False
            dim = outside if dim is None else (dim | outside)
        c.dim = dim
        return c

    # -- points ----------------------------------------------------------------------------------------
    def label_text(self, row: int) -> str:
        s = self.current
        if s is None or s.labels is None:
            return ""
        lab = int(s.labels[row])
        if 0 <= lab < len(s.class_names):
            return s.class_names[lab]
        return "unlabeled" if lab < 0 else f"class {lab}"

    def describe(self, row: int) -> str:
        """The hover card's text (HTML) for a point."""
        s = self.current
        if s is None:
            return ""
        parts = []
        lab = self.label_text(row)
        if lab:
            parts.append(f"<b>{lab}</b>")
        parts.append(f"image #{int(s.indices[row])}")
        if s.clusters is not None:
            parts.append(f"cluster {int(s.clusters[row]) + 1}")
        if s.paths:
            parts.append(f"<span style='color:#666'>{os.path.basename(s.paths[row])}</span>")
        return "<br>".join(parts)

    # -- the neighbour query ---------------------------------------------------------------------------
    def neighbors_of(self, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the ``k`` nearest neighbours of ``row`` in feature space (cosine) and their similarities."""
        s = self.current
        return nearest_neighbors(s.features, s.features[row], k, exclude=row)

    def query(self, row: int, k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The user picked ``row``: remember it and its neighbours."""
        s = self.current
        if s is None or not 0 <= row < len(s.indices):
            return None
        self.clicked_row = row
        rows, sims = self.neighbors_of(row, k)
        self.neighbor_rows = rows
        return rows, sims

    def same_class_share(self, row: int, rows: np.ndarray) -> float | None:
        s = self.current
        if s is None or s.labels is None or not len(rows):
            return None
        return float(np.mean(np.asarray(s.labels)[rows] == s.labels[row]))

    # -- the selection ---------------------------------------------------------------------------------
    def select(self, rows) -> None:
        self.selected_rows = np.asarray(rows, np.int64)

    def selection_histogram(self) -> tuple[list[str], list[int], str] | None:
        """Labels (or clusters) in the selection, most frequent first: (names, counts, title)."""
        s, rows = self.current, self.selected_rows
        if s is None or not len(rows):
            return None
        if s.labels is not None and s.class_names:
            counts = np.bincount(np.asarray(s.labels)[rows].clip(0), minlength=len(s.class_names))
            order = np.argsort(-counts, kind="stable")
            order = order[counts[order] > 0]
            return [s.class_names[i] for i in order], counts[order].tolist(), "Labels in the selection"
        if s.clusters is not None:
            counts = np.bincount(np.asarray(s.clusters)[rows])
            order = np.flatnonzero(counts)
            return [f"cluster {i + 1}" for i in order], counts[order].tolist(), "Clusters in the selection"
        return None
