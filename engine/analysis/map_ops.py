"""Map ops of the analysis process: a run's embedding snapshots, a map in stages, a bare layout."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.analysis.context import DEFAULT_SAMPLE, PREVIEW_SIZE, kmeans, list_snapshots, thumbs
from engine.messages import FeatureSource, MapStage
from engine.rpc import Job, error_fields


@dataclass
class _Points:
    """The features of a map and where they came from."""

    features: np.ndarray
    indices: np.ndarray
    labels: np.ndarray | None
    source: FeatureSource
    step: int | None = None
    epoch: float | None = None
    pair_features: np.ndarray | None = None  # two-view methods' snapshots: (P, 2, D), see engine.messages.Embedding
    pair_rows: np.ndarray | None = None


def _pairs(z) -> dict:
    """The two views of a few sample images a snapshot carries (``z``: its arrays or a request's args), if any."""
    pf, pr = z.get("pair_features"), z.get("pair_rows")
    if pf is None or pr is None:
        return {}
    return {"pair_features": np.asarray(pf, np.float32), "pair_rows": np.asarray(pr, np.int64)}


def knn_records(run_dir) -> list[dict]:
    """The ``knn_monitor`` eval records of the run's metrics.jsonl: step, knn_top1 (and random_init_knn)."""
    from engine.runs import read_metrics

    records = read_metrics(run_dir)
    keep = ("step", "knn_top1", "random_init_knn")
    return [{k: r[k] for k in keep if k in r} for r in records
            if r.get("type") == "eval" and r.get("kind") == "knn_monitor" and "step" in r]


def _own_data(a: dict) -> str | None:
    """A map from the checkpoint may look at another dataset (``data``: a spec) than the run's; snapshots and
    live features index the run's own."""
    return a.get("data") or None if a.get("features") is None and a.get("snapshot") is None else None


class MapOps:
    """``op_snapshots``, ``op_map`` and ``op_project`` (mixed into :class:`engine.analysis.AnalysisWorker`)."""

    def op_snapshots(self, job: Job) -> dict:
        """The run's snapshots, and its online kNN records (the map's headline of a run opened later)."""
        run_dir = job.args["run_dir"]
        return {"run_dir": run_dir, "snapshots": list_snapshots(run_dir), "knn": knn_records(run_dir)}

    def op_map(self, job: Job) -> dict:
        """A map in stages (:class:`engine.messages.MapStage`, each a ``Partial`` reply with ``"stage"``):
        PREVIEW (checkpoint maps only: part of the sample), FIRST (features, labels, thumbnails if the data is
        in memory, the PCA layout: enough to draw), META (thumbnails, class names, paths), EXTRAS (k-means
        clusters, neighbour agreement, image properties), LAYOUT (UMAP in progress), then the final layout.

        args: features/labels/indices (a live Embedding message) or run_dir with snapshot (a step,
        "latest") or a fresh extraction from the checkpoint (split "eval"|"train", sample N; data: another
        dataset spec than the run's, looked at with its encoder);
        projection "umap"|"pca"|"tsne"; init + init_indices (the layout shown now); thumbs (bool);
        clusters (k, 0: the number of classes or 8); key (echoed back).
        """
        from engine.eval.projection import PROJECTIONS, UMAP_NEIGHBORS, knn_graph, project

        a = job.args
        t0 = time.perf_counter()
        projection = a.get("projection", "umap")
        if projection not in PROJECTIONS:
            raise ValueError(f"unknown projection {projection!r}; choose one of: {', '.join(PROJECTIONS)}")
        run_dir, split, key = a.get("run_dir"), a.get("split", "eval"), a.get("key")
        pts = self._map_points(job)
        job.check()
        if len(pts.features) == 0:
            raise ValueError("there are no images to map")
        feats, indices = pts.features, pts.indices
        labels = None if pts.labels is None or len(pts.labels) == 0 else np.asarray(pts.labels, dtype=np.int64)

        init, init_idx = a.get("init"), a.get("init_indices")
        if init is not None and (init_idx is None or len(init_idx) != len(indices)
                                 or not np.array_equal(np.asarray(init_idx), indices)):
            init = None  # a different set of points: no warm start
        pca = project(feats, "pca", init=init)
        first = {"stage": MapStage.FIRST, "features": feats, "labels": labels, "indices": indices, "coords": pca,
                 "projection": "pca", "final": projection == "pca", "step": pts.step, "epoch": pts.epoch,
                 "source": pts.source, "key": key, "run_dir": run_dir, "split": split}
        if pts.pair_features is not None:
            first.update(pair_features=pts.pair_features, pair_rows=pts.pair_rows)
        # thumbnails, class names and paths come from the run's data: with the first map when the data is
        # in memory already, else in a META stage right after it (the map shows before the data is read)
        want_meta = bool(run_dir) and a.get("thumbs", True)
        ready = want_meta and self.context(run_dir, _own_data(a)).data_loaded
        if ready:
            first.update(self._map_meta(job, run_dir, split, indices, labels))
            labels = first.get("labels")
        first["seconds"] = round(time.perf_counter() - t0, 3)
        job.partial(dict(first))  # a copy: META is merged into ``first`` below
        if want_meta and not ready:
            meta = self._map_meta(job, run_dir, split, indices, labels)
            labels = meta.get("labels", labels)
            job.partial({"stage": MapStage.META, "key": key, **meta})
            first.update(meta)

        job.check()
        knn = knn_graph(feats, UMAP_NEIGHBORS)
        job.partial(self._map_extras(feats, knn, labels, first, int(a.get("clusters", 0)), key))

        if projection == "pca":
            return {"coords": pca, "projection": "pca", "key": key, "seconds": round(time.perf_counter() - t0, 3)}
        if projection == "umap" and not self.warm.is_set():
            job.progress(0, 1, "waiting for UMAP to compile (once per session)")
            while not self.warm.wait(0.1):
                job.check()
        job.progress(0, 100, f"computing {projection.upper()}")
        t1 = time.perf_counter()

        def partial(coords, fraction):
            job.check()
            job.partial({"stage": MapStage.LAYOUT, "coords": coords, "fraction": fraction,
                         "projection": projection, "key": key})
            job.progress(int(fraction * 100), 100, f"computing {projection.upper()}")

        kw = {"knn": knn} if projection == "umap" else {}
        coords = project(feats, projection, init=init if init is not None else pca, seed=a.get("seed"),
                         cancel=job.cancel, partial=partial if projection == "umap" else None, **kw)
        return {"coords": coords, "projection": projection, "key": key,
                "seconds": round(time.perf_counter() - t0, 3), "projection_s": round(time.perf_counter() - t1, 3)}

    # -- the three feature sources --------------------------------------------------------------------
    def _map_points(self, job: Job) -> _Points:
        a = job.args
        if a.get("features") is not None:
            feats = np.asarray(a["features"], dtype=np.float32)
            return _Points(feats, np.asarray(a.get("indices", np.arange(len(feats))), dtype=np.int64),
                           a.get("labels"), FeatureSource.LIVE, a.get("step"), a.get("epoch"), **_pairs(a))
        if a.get("run_dir") and a.get("snapshot") is not None:
            return self._snapshot_points(a["run_dir"], a["snapshot"])
        if a.get("run_dir"):
            return self._checkpoint_points(job, a["run_dir"], a.get("split", "eval"))
        raise ValueError("a map needs features or a run folder")

    @staticmethod
    def _snapshot_points(run_dir, want) -> _Points:
        snaps = list_snapshots(run_dir)
        if not snaps:
            raise FileNotFoundError(f"{run_dir} has no embedding snapshots yet (embeddings/step_*.npz); "
                                    "set eval.embed_every_epochs or extract from the checkpoint")
        snap = snaps[-1] if want == "latest" else next((s for s in snaps if s["step"] == int(want)), None)
        if snap is None:
            raise FileNotFoundError(f"no embedding snapshot at step {want} in {run_dir}")
        with np.load(snap["path"]) as z:
            pairs = _pairs({k: z[k] for k in ("pair_features", "pair_rows") if k in z.files})
            return _Points(z["features"].astype(np.float32), z["indices"].astype(np.int64),
                           z["labels"] if len(z["labels"]) else None, FeatureSource.SNAPSHOT,
                           snap["step"], snap["epoch"], **pairs)

    def _checkpoint_points(self, job: Job, run_dir, split: str) -> _Points:
        from engine.eval.projection import project
        from engine.eval.protocol import sample_indices
        from engine.runs import read_json

        a = job.args
        ctx = self.context(run_dir, _own_data(a))
        data = ctx.source(split, job)
        job.check()
        # the eval split's sample is drawn like the session's snapshots: the same points at the same size
        n = int(a.get("sample", DEFAULT_SAMPLE))
        indices = sample_indices(len(data), n, seed=ctx.cfg.seed + (5 if split == "eval" else 7))
        lab = data.get_labels(indices)
        labels = None if lab is None else lab.cpu().numpy()
        st = read_json(Path(run_dir) / "status.json", {}) or {}
        step, epoch = st.get("step"), st.get("epoch")
        preview = int(a.get("preview", PREVIEW_SIZE))
        ctx.encoder()  # (re)loads a newer checkpoint, so the cache check below is current
        if not (preview and len(indices) > 2 * preview and not ctx.has_features(split, indices)):
            return _Points(ctx.features(split, indices, job), indices, labels, FeatureSource.CHECKPOINT, step, epoch)
        # extraction takes seconds on a CPU: a map of an evenly spread part of the sample first
        pick = np.linspace(0, len(indices) - 1, preview).round().astype(np.int64)
        fsub = ctx.features(split, indices[pick], job)
        job.partial({"stage": MapStage.PREVIEW, "features": fsub, "indices": indices[pick],
                     "labels": None if labels is None else labels[pick], "coords": project(fsub, "pca"),
                     "key": a.get("key"), "step": step, "epoch": epoch, "split": split, "total": len(indices),
                     **self._map_meta(job, run_dir, split, indices[pick], None)})
        # the rest streams in batch by batch (progress over the whole sample); the store encodes only the images
        # the preview did not
        feats = ctx.features(split, indices, job)
        return _Points(feats, indices, labels, FeatureSource.CHECKPOINT, step, epoch)

    # -- the later stages -------------------------------------------------------------------------------
    @staticmethod
    def _map_extras(feats, knn, labels, first: dict, clusters: int, key) -> dict:
        from engine.eval.neighbors import image_properties, neighbor_agreement

        k = clusters or (len(first.get("class_names") or []) if labels is not None else 0) or 8
        props = {}
        agree = neighbor_agreement(knn[0], labels)
        if agree is not None:
            props["neighbour agreement"] = agree
        if "thumbs" in first:
            props.update(image_properties(first["thumbs"]))
        return {"stage": MapStage.EXTRAS, "key": key, "clusters": kmeans(feats, k), "properties": props}

    def _map_meta(self, job: Job, run_dir, split: str, indices: np.ndarray, labels) -> dict:
        out: dict = {}
        try:
            ctx = self.context(run_dir, _own_data(job.args))
            data = ctx.source(split, job)
            if len(indices) and int(indices.max()) >= len(data):
                raise ValueError(f"the snapshot's indices go up to {int(indices.max())}, the dataset has "
                                 f"{len(data)} images")
            out["thumbs"] = thumbs(data, indices)
            out["class_names"] = list(data.class_names or [])
            paths = getattr(data, "paths", None)
            out["paths"] = [str(paths[i]) for i in indices.tolist()] if paths else None
            if data.labels is not None:
                mine = data.get_labels(indices).cpu().numpy()
                if labels is None:
                    out["labels"] = mine
                elif not np.array_equal(mine, labels):
                    out["note"] = ("the run's dataset changed since this snapshot was taken: thumbnails may not "
                                   "match the points")
        except Exception as exc:  # the map still works without thumbnails
            if job.cancel.is_set():
                raise
            out["note"] = f"thumbnails unavailable: {error_fields(exc)[0]}"
        return out

    def op_project(self, job: Job) -> dict:
        """Only a layout of given features (no thumbnails, no extras)."""
        from engine.eval.projection import project

        a = job.args
        if a.get("projection", "umap") == "umap":
            self.warm.wait()
        t0 = time.perf_counter()
        coords = project(np.asarray(a["features"], np.float32), a.get("projection", "umap"), init=a.get("init"),
                         seed=a.get("seed"), cancel=job.cancel)
        return {"coords": coords, "key": a.get("key"), "seconds": round(time.perf_counter() - t0, 3)}
