"""The analysis worker: feature extraction, projections and evaluation for the GUI, Qt-free.

It runs as a long-lived process (``multiprocessing`` spawn; :func:`serve` is its entry point)
next to the GUI and the training engine. At start it warms up umap-learn's numba compilation in a
background thread (about 10 s on a first call), so the first real UMAP costs only its own work.

Protocol: the GUI sends :class:`Request` (id, op, args); the worker answers with :class:`Reply`
objects (id, op, kind, data) where kind is ``progress``, ``partial`` (a stage of the result, e.g.
the PCA map before the UMAP one), ``result``, ``error`` or ``cancelled``. Id 0 carries worker
status (``ready``, ``warm``). Everything that crosses is plain python and numpy.

Requests run in two lanes (threads): ``fast`` (maps, retrieval, filters, exports) and ``slow``
(evaluation, run comparison, training a supervised baseline), so a minute-long evaluation never
holds a map back. ``{"op": "cancel", "args": {"id": N}}`` cancels a request; a request with
``supersede="name"`` cancels the running and pending requests of that name (a newer map wins).
"""

from __future__ import annotations

import collections
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_SAMPLE = 5000
PREVIEW_SIZE = 500  # a map from the checkpoint shows this many images first, while the rest are extracted
THUMB_SIZE = 48


@dataclass(frozen=True)
class Request:
    id: int
    op: str
    args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    id: int
    op: str
    kind: str  # "progress", "partial", "result", "error", "cancelled", "status"
    data: dict = field(default_factory=dict)


class Cancelled(RuntimeError):
    pass


class Job:
    def __init__(self, request: Request, emit: Callable[[Reply], None]):
        self.request = request
        self.cancel = threading.Event()
        self._emit = emit

    @property
    def args(self) -> dict:
        return self.request.args

    def send(self, kind: str, data: dict | None = None) -> None:
        self._emit(Reply(self.request.id, self.request.op, kind, data or {}))

    def progress(self, done: int, total: int, text: str = "") -> None:
        self.send("progress", {"done": int(done), "total": int(total), "text": text})

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("cancelled")


# -- per-run state ----------------------------------------------------------------------------------
class RunContext:
    """A run folder's config, data splits, encoder and full model, loaded once and refreshed when
    the checkpoint changes (a live run writes a new one every few minutes)."""

    def __init__(self, run_dir: str | Path, device):
        from engine.session import resume_config

        self.run_dir = Path(run_dir)
        self.cfg = resume_config(self.run_dir)
        self.device = device
        self.lock = threading.RLock()
        self._datasets: dict | None = None
        self._encoder = None
        self._encoder_key = None
        self._method = None
        self._method_key = None
        self._features: dict = {}
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

    def datasets(self, job: Job | None = None) -> dict:
        with self.lock:
            if self._datasets is None:
                from engine.training.rundata import prepare_data

                if job:
                    job.progress(0, 1, f"reading the dataset {self.cfg.data.spec}")
                self._datasets = prepare_data(self.cfg, download=False, tolerate_missing_eval=True)
            return self._datasets

    def source(self, split: str = "eval", job: Job | None = None):
        ds = self.datasets(job)
        return ds["data"] if split == "train" else ds["embed_source"]

    def encoder(self):
        with self.lock:
            key = self._ckpt_key()
            if self._encoder is None or key != self._encoder_key:
                from engine.training.checkpoints import load_run_encoder

                self._encoder, _, self.backbone = load_run_encoder(self.run_dir, self.device)
                self._encoder_key = key
                self._features.clear()
            return self._encoder

    def method(self):
        with self.lock:
            key = self._ckpt_key()
            if self._method is None or key != self._method_key:
                from engine.training.checkpoints import load_run_method

                self._method, _, self.backbone = load_run_method(self.run_dir, self.device)
                self._method_key = key
            return self._method

    def _feature_key(self, split: str, indices) -> tuple:
        return (split, len(indices), hash(np.asarray(indices).tobytes()), self._encoder_key)

    def has_features(self, split: str, indices) -> bool:
        with self.lock:
            return self._feature_key(split, indices) in self._features

    def store_features(self, split: str, indices, feats: np.ndarray) -> None:
        with self.lock:
            if len(self._features) > 6:
                self._features.clear()
            self._features[self._feature_key(split, indices)] = feats

    def features(self, split: str, indices: np.ndarray, job: Job | None = None) -> np.ndarray:
        from engine.eval.features import extract_features

        enc = self.encoder()
        key = self._feature_key(split, indices)
        with self.lock:
            hit = self._features.get(key)
        if hit is not None:
            return hit
        data = self.source(split, job)

        def prog(done, total):
            if job:
                job.progress(done, total, "extracting features")

        f = extract_features(enc, data, indices, device=self.device, progress=prog,
                             cancel=job.cancel if job else None).numpy().astype(np.float32)
        with self.lock:
            if len(self._features) > 6:
                self._features.clear()
            self._features[key] = f
        return f

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


# -- the worker ----------------------------------------------------------------------------------------
FAST, SLOW = "fast", "slow"


class AnalysisWorker:
    """Serves requests. ``handle(request)`` runs one synchronously (tests call it directly)."""

    LANES = {"evaluate": SLOW, "compare": SLOW, "train_supervised": SLOW}

    def __init__(self, emit: Callable[[Reply], None], device: str = "cpu", runs_roots: tuple = ()):
        self.emit = emit
        self.device_name = device
        self._device = None
        self.runs_roots = tuple(runs_roots)
        self.contexts: dict[str, RunContext] = {}
        self.lock = threading.RLock()
        self.warm = threading.Event()

    @property
    def device(self):
        if self._device is None:
            from engine.session import resolve_device

            self._device = resolve_device(self.device_name)
        return self._device

    def warmup(self) -> None:
        from engine.eval.projection import warmup

        try:
            t0 = time.perf_counter()
            import torch  # off the critical path of the first request

            torch.set_num_threads(analysis_threads())
            seconds = warmup() + (time.perf_counter() - t0)
            self.emit(Reply(0, "warmup", "status", {"state": "warm", "seconds": round(seconds, 2)}))
        except Exception as exc:  # the map still works (PCA); UMAP will compile on first use
            self.emit(Reply(0, "warmup", "status", {"state": "warm", "error": str(exc)}))
        finally:
            self.warm.set()

    def context(self, run_dir) -> RunContext:
        key = str(Path(run_dir).resolve())
        with self.lock:
            ctx = self.contexts.get(key)
            if ctx is None:
                ctx = self.contexts[key] = RunContext(run_dir, self.device)
            return ctx

    def handle(self, request: Request, job: Job | None = None) -> None:
        job = job or Job(request, self.emit)
        fn = getattr(self, f"op_{request.op}", None)
        if fn is None:
            job.send("error", {"error": f"unknown request {request.op!r}"})
            return
        try:
            result = fn(job)
            job.check()
            job.send("result", result or {})
        except Exception as exc:
            from engine.data.base import Cancelled as DataCancelled
            from engine.eval.projection import ProjectionCancelled
            from engine.eval.protocol import EvalCancelled

            if isinstance(exc, (Cancelled, ProjectionCancelled, EvalCancelled, DataCancelled)) or job.cancel.is_set():
                job.send("cancelled", {})
                return
            job.send("error", {"error": _user_message(exc), "traceback": traceback.format_exc()})

    # -- maps -----------------------------------------------------------------------------------------
    def op_ping(self, job: Job) -> dict:
        return {"pid": os.getpid(), "warm": self.warm.is_set()}

    def op_snapshots(self, job: Job) -> dict:
        return {"run_dir": job.args["run_dir"], "snapshots": list_snapshots(job.args["run_dir"])}

    def op_map(self, job: Job) -> dict:
        """A map in stages: ``partial`` stage "first" (features, labels, thumbnails and the PCA layout:
        enough to draw at once), stage "extras" (k-means clusters, neighbour agreement, image
        properties), stage "layout" (UMAP/t-SNE in progress), then ``result`` (the final layout).

        args: features/labels/indices (a live Embedding message) or run_dir with snapshot (a step,
        "latest") or a fresh extraction from the checkpoint (split "eval"|"train", sample N);
        projection "umap"|"pca"|"tsne"; init + init_indices (the layout shown now); thumbs (bool);
        clusters (k, 0: the number of classes or 8); key (echoed back).
        """
        from engine.eval.projection import PROJECTIONS, project

        a = job.args
        t0 = time.perf_counter()
        projection = a.get("projection", "umap")
        if projection not in PROJECTIONS:
            raise ValueError(f"unknown projection {projection!r}; choose one of: {', '.join(PROJECTIONS)}")
        run_dir = a.get("run_dir")
        split = a.get("split", "eval")
        step, epoch = a.get("step"), a.get("epoch")
        labels = None
        if a.get("features") is not None:
            feats = np.asarray(a["features"], dtype=np.float32)
            indices = np.asarray(a.get("indices", np.arange(len(feats))), dtype=np.int64)
            labels = a.get("labels")
            source_kind = "live"
        elif run_dir and a.get("snapshot") is not None:
            snaps = list_snapshots(run_dir)
            if not snaps:
                raise FileNotFoundError(f"{run_dir} has no embedding snapshots yet (embeddings/step_*.npz); "
                                        "set eval.embed_every_epochs or extract from the checkpoint")
            want = a["snapshot"]
            snap = snaps[-1] if want == "latest" else next((s for s in snaps if s["step"] == int(want)), None)
            if snap is None:
                raise FileNotFoundError(f"no embedding snapshot at step {want} in {run_dir}")
            with np.load(snap["path"]) as z:
                feats = z["features"].astype(np.float32)
                indices = z["indices"].astype(np.int64)
                labels = z["labels"] if len(z["labels"]) else None
            step, epoch = snap["step"], snap["epoch"]
            source_kind = "snapshot"
        elif run_dir:
            ctx = self.context(run_dir)
            data = ctx.source(split, job)
            job.check()
            from engine.eval.protocol import sample_indices

            # the eval split's sample is drawn like the session's snapshots: the same points at the same size
            n = int(a.get("sample", DEFAULT_SAMPLE))
            indices = sample_indices(len(data), n, seed=ctx.cfg.seed + (5 if split == "eval" else 7))
            lab = data.get_labels(indices)
            labels = None if lab is None else lab.cpu().numpy()
            from engine.runs import read_json

            st = read_json(Path(run_dir) / "status.json", {}) or {}
            step, epoch = st.get("step"), st.get("epoch")
            source_kind = "checkpoint"
            preview = int(a.get("preview", PREVIEW_SIZE))
            ctx.encoder()  # (re)loads a newer checkpoint, so the cache check below is current
            if preview and len(indices) > 2 * preview and not ctx.has_features(split, indices):
                # extraction takes seconds on a CPU: a map of an evenly spread part of the sample first
                pick = np.linspace(0, len(indices) - 1, preview).round().astype(np.int64)
                fsub = ctx.features(split, indices[pick], job)
                job.send("partial", {"stage": "preview", "features": fsub, "indices": indices[pick],
                                     "labels": None if labels is None else labels[pick],
                                     "coords": project(fsub, "pca"), "key": a.get("key"), "step": step,
                                     "epoch": epoch, "split": split, "total": len(indices),
                                     **self._map_meta(job, run_dir, split, indices[pick], None)})
                rest = np.setdiff1d(np.arange(len(indices)), pick)
                frest = ctx.features(split, indices[rest], job)
                feats = np.empty((len(indices), fsub.shape[1]), np.float32)
                feats[pick], feats[rest] = fsub, frest
                ctx.store_features(split, indices, feats)
            else:
                feats = ctx.features(split, indices, job)
        else:
            raise ValueError("a map needs features or a run folder")
        job.check()
        if len(feats) == 0:
            raise ValueError("there are no images to map")
        labels = None if labels is None or len(labels) == 0 else np.asarray(labels, dtype=np.int64)

        init = a.get("init")
        init_idx = a.get("init_indices")
        if init is not None and (init_idx is None or len(init_idx) != len(indices)
                                 or not np.array_equal(np.asarray(init_idx), indices)):
            init = None  # a different set of points: no warm start
        pca = project(feats, "pca", init=init)
        first = {"features": feats, "labels": labels, "indices": indices, "coords": pca, "projection": "pca",
                 "final": projection == "pca", "step": step, "epoch": epoch, "source": source_kind,
                 "key": a.get("key"), "run_dir": run_dir, "split": split}

        # thumbnails, class names and paths come from the run's data: with the first map when the data is
        # in memory already, else in a "meta" stage right after it (the map shows before the data is read)
        want_meta = bool(run_dir) and a.get("thumbs", True)
        ready = want_meta and self.context(run_dir)._datasets is not None
        if ready:
            first.update(self._map_meta(job, run_dir, split, indices, labels))
            labels = first.get("labels")
        first["seconds"] = round(time.perf_counter() - t0, 3)
        job.send("partial", {"stage": "first", **first})
        if want_meta and not ready:
            meta = self._map_meta(job, run_dir, split, indices, labels)
            labels = meta.get("labels", labels)
            job.send("partial", {"stage": "meta", "key": a.get("key"), **meta})
            first.update(meta)

        # extras: clusters, neighbour agreement, image properties
        job.check()
        from engine.eval.neighbors import image_properties, neighbor_agreement
        from engine.eval.projection import UMAP_NEIGHBORS, knn_graph

        knn = knn_graph(feats, UMAP_NEIGHBORS)
        extras = {"stage": "extras", "key": a.get("key"),
                  "clusters": _kmeans(feats, int(a.get("clusters", 0)) or
                                      (len(first.get("class_names") or []) if labels is not None else 0) or 8)}
        agree = neighbor_agreement(knn[0], labels)
        props = {}
        if agree is not None:
            props["neighbour agreement"] = agree
        if "thumbs" in first:
            props.update(image_properties(first["thumbs"]))
        extras["properties"] = props
        job.send("partial", extras)

        if projection == "pca":
            return {"coords": pca, "projection": "pca", "key": a.get("key"),
                    "seconds": round(time.perf_counter() - t0, 3)}
        if projection == "umap" and not self.warm.is_set():
            job.progress(0, 1, "waiting for UMAP to compile (once per session)")
            while not self.warm.wait(0.1):
                job.check()
        job.progress(0, 100, f"computing {projection.upper()}")
        t1 = time.perf_counter()

        def partial(coords, fraction):
            job.check()
            job.send("partial", {"stage": "layout", "coords": coords, "fraction": fraction,
                                 "projection": projection, "key": a.get("key")})
            job.progress(int(fraction * 100), 100, f"computing {projection.upper()}")

        kw = {"knn": knn} if projection == "umap" else {}
        coords = project(feats, projection, init=init if init is not None else pca, seed=a.get("seed"),
                         cancel=job.cancel, partial=partial if projection == "umap" else None, **kw)
        return {"coords": coords, "projection": projection, "key": a.get("key"),
                "seconds": round(time.perf_counter() - t0, 3), "projection_s": round(time.perf_counter() - t1, 3)}

    def _map_meta(self, job: Job, run_dir, split: str, indices: np.ndarray, labels) -> dict:
        out: dict = {}
        try:
            ctx = self.context(run_dir)
            data = ctx.source(split, job)
            if len(indices) and int(indices.max()) >= len(data):
                raise ValueError(f"the snapshot's indices go up to {int(indices.max())}, the dataset has "
                                 f"{len(data)} images")
            out["thumbs"] = _thumbs(data, indices)
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
            out["note"] = f"thumbnails unavailable: {_user_message(exc)}"
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

    # -- retrieval ---------------------------------------------------------------------------------------
    def op_retrieve(self, job: Job) -> dict:
        """Nearest neighbours in feature space over the run's images for a dataset image or a file.

        args: run_dir, index (into the split) | path (an image file) | image (uint8 HxWx3); k; split;
        bank_max (cap on the images searched, default 20000).
        """
        import torch

        from engine.eval.neighbors import nearest_neighbors
        from engine.eval.protocol import sample_indices

        a = job.args
        ctx = self.context(a["run_dir"])
        split = a.get("split", "eval")
        data = ctx.source(split, job)
        bank_idx = sample_indices(len(data), int(a.get("bank_max", 20000)), seed=3)
        bank = ctx.features(split, bank_idx, job)
        k = int(a.get("k", 12))
        size = ctx.cfg.data.image_size
        exclude = None
        if a.get("index") is not None:
            i = int(a["index"])
            if not 0 <= i < len(data):
                raise IndexError(f"image {i} is out of range; the set has {len(data)} images")
            pos = np.flatnonzero(bank_idx == i)
            if len(pos):
                q, exclude = bank[pos[0]], int(pos[0])
            else:
                q = ctx.features(split, np.array([i]), job)[0]
            query_thumb = _thumbs(data, [i])[0]
            query_label = None if data.labels is None else int(data.get_labels([i])[0])
        else:
            if a.get("path"):
                from engine.data.decode import decode_image

                try:
                    img = decode_image(a["path"], size)
                except Exception as exc:
                    raise ValueError(f"{a['path']} cannot be read as an image ({exc}); choose a JPEG or PNG "
                                     "file") from None
            else:
                img = np.asarray(a["image"], dtype=np.uint8)
            x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)[None]
            if x.shape[-1] != size or x.shape[-2] != size:
                from engine.data.base import resize_uint8

                x = resize_uint8(x, size)
            enc = ctx.encoder()
            with torch.no_grad():
                q = torch.nn.functional.normalize(enc(x.to(ctx.device).float().div(255)).float(), dim=1)[0]
            q = q.cpu().numpy()
            query_thumb = x[0].permute(1, 2, 0).numpy()
            query_label = None
        nn_pos, sims = nearest_neighbors(bank, q, k, exclude=exclude)
        idx = bank_idx[nn_pos]
        labels = data.get_labels(idx)
        paths = getattr(data, "paths", None)
        return {"indices": idx, "similarities": sims, "thumbs": _thumbs(data, idx, size=64),
                "labels": None if labels is None else labels.cpu().numpy(),
                "paths": [str(paths[i]) for i in idx.tolist()] if paths else None,
                "class_names": list(data.class_names or []), "query_thumb": query_thumb,
                "query_label": query_label, "bank_size": int(len(bank_idx))}

    # -- inspector ------------------------------------------------------------------------------------------
    def op_filters(self, job: Job) -> dict:
        import torch

        from engine.eval.pretext_errors import first_layer_filters
        from engine.models import build_backbone

        ctx = self.context(job.args["run_dir"])
        out = first_layer_filters(ctx.encoder(), int(job.args.get("max_filters", 64)))
        torch.manual_seed(ctx.cfg.seed)
        rand = first_layer_filters(build_backbone(ctx.backbone_name(), ctx.cfg.data.image_size),
                                   int(job.args.get("max_filters", 64)))
        out["random_filters"] = rand.get("filters")
        out["backbone"] = ctx.backbone_name()
        return out

    def op_pretext(self, job: Job) -> dict:
        from engine.eval.protocol import sample_indices
        from engine.seeds import PRETEXT_SAMPLE_SEED

        ctx = self.context(job.args["run_dir"])
        method = ctx.method()
        data = ctx.source("eval", job)
        idx = sample_indices(len(data), int(job.args.get("n", 512)), seed=PRETEXT_SAMPLE_SEED)
        lab = data.get_labels(idx)
        job.progress(0, 1, "scoring the pretext task")
        out = method.pretext_errors(data.get(idx).to(ctx.device).float().div(255),
                                    None if lab is None else lab.cpu().numpy(), data.class_names)
        if out is None:  # the method's hook: no pretext classifier to score
            return {"method": ctx.cfg.method, "note": f"pretext error analysis applies to methods that classify "
                                                      f"their pretext task (RotNet, Jigsaw); this run is {ctx.cfg.method}"}
        return out

    def op_reconstruct(self, job: Job) -> dict:
        from engine.eval.pretext_errors import reconstruction_triplets

        ctx = self.context(job.args["run_dir"])
        data = ctx.source("eval", job)
        from engine.seeds import snapshot_rng

        rng = snapshot_rng(ctx.cfg.seed)
        idx = rng.choice(len(data), size=min(int(job.args.get("n", 8)), len(data)), replace=False)
        out = reconstruction_triplets(ctx.method(), data.get(idx).cpu(), device=ctx.device)
        from engine.runs import read_json

        st = read_json(ctx.run_dir / "status.json", {}) or {}
        out.update({"step": st.get("step"), "epoch": st.get("epoch")})
        return out

    def op_evaluate(self, job: Job) -> dict:
        """kNN + linear probe of the run, a random-init encoder and a supervised encoder (same backbone).

        args: run_dir; supervised: "auto" (the newest finished supervised run of the same backbone and
        data), a run folder, "train" (train one for supervised_minutes) or "none"; probe_epochs;
        max_bank; max_test; k.
        """
        import torch

        from engine.bounds import find_supervised_runs, train_supervised
        from engine.eval.protocol import Readout, run_summary
        from engine.models import build_backbone

        a = job.args
        ctx = self.context(a["run_dir"])
        ds = ctx.datasets(job)
        readout = Readout(ctx.cfg, ds, int(a.get("max_bank", 5000)), int(a.get("max_test", 2000)))
        kw = {"k": int(a.get("k", ctx.cfg.eval.knn_k)), "temperature": ctx.cfg.eval.knn_temperature,
              "probe_epochs": int(a.get("probe_epochs", 50)), "cancel": job.cancel}
        rows = []
        base = {"class_names": readout.class_names, "num_bank": len(readout.bank_idx),
                "num_test": len(readout.test_idx), "notes": list(ds["notes"])}

        def add(row):
            rows.append(row)
            job.send("partial", {**base, "rows": list(rows)})

        bname = ctx.backbone_name()
        job.progress(0, 3, "scoring this run")
        add({**run_summary(ctx.run_dir), "name": f"this run ({ctx.cfg.method})", "kind": "run",
             **readout.score(ctx.encoder(), ctx.device, **kw)})
        job.check()
        job.progress(1, 3, "scoring a random-init encoder")
        torch.manual_seed(ctx.cfg.seed)
        rand = build_backbone(bname, ctx.cfg.data.image_size).to(ctx.device).eval()
        add({"name": f"random init ({bname})", "kind": "random_init", "backbone": bname,
             **readout.score(rand, ctx.device, **kw)})
        job.check()
        sup = a.get("supervised", "auto")
        sup_dir = None
        if sup == "auto":
            roots = [ctx.run_dir.parent, *a.get("roots", []), *self.runs_roots]
            found = [r for r in find_supervised_runs(roots, bname, ctx.cfg.data.spec, ctx.cfg.data.image_size)
                     if Path(r["path"]).resolve() != ctx.run_dir.resolve()]
            sup_dir = found[0]["path"] if found else None
            if sup_dir is None:
                base["notes"].append(f"no finished supervised run of {bname} on {ctx.cfg.data.spec} was found: "
                                     "choose 'train a short supervised run' (or a run folder) as the upper bound")
        elif sup == "train":
            minutes = float(a.get("supervised_minutes", 2.0))
            job.progress(2, 3, f"training a supervised {bname} for {minutes:g} min")

            def fwd(msg):
                p = getattr(msg, "progress", None)
                if p is not None:
                    job.progress(int(200 + 100 * p), 300, f"training a supervised {bname}")

            sup_dir = train_supervised(ctx.cfg, bname, minutes, a.get("runs_root") or ctx.run_dir.parent, fwd,
                                       job.cancel)
        elif sup and sup != "none":
            sup_dir = sup
        if sup_dir is not None and Path(sup_dir).resolve() == ctx.run_dir.resolve():
            base["notes"].append("this run is itself the supervised upper bound")
        elif sup_dir is not None:
            job.progress(2, 3, "scoring the supervised encoder")
            sctx = self.context(sup_dir)
            if sctx.backbone_name() != bname:
                base["notes"].append(f"the supervised run {sup_dir} uses {sctx.backbone_name()}, not {bname}")
            add({**run_summary(sup_dir), "name": f"supervised ({sctx.backbone_name()})", "kind": "supervised",
                 **readout.score(sctx.encoder(), ctx.device, **kw)})
        return {**base, "rows": rows}

    def op_compare(self, job: Job) -> dict:
        """Several runs scored on one readout (the first run's evaluation split): kNN and linear probe."""
        from engine.eval.protocol import Readout, run_summary

        a = job.args
        runs = list(a.get("run_dirs") or [])
        if not runs:
            raise ValueError("choose at least one run to compare")
        ref = self.context(a.get("reference") or runs[0])
        ds = ref.datasets(job)
        readout = Readout(ref.cfg, ds, int(a.get("max_bank", 5000)), int(a.get("max_test", 2000)))
        rows, notes = [], []
        for i, r in enumerate(runs):
            job.check()
            job.progress(i, len(runs), f"scoring {Path(r).name}")
            row = run_summary(r)
            try:
                ctx = self.context(r)
                if ctx.cfg.data.image_size != ref.cfg.data.image_size:
                    raise ValueError(f"trained at {ctx.cfg.data.image_size} px, the readout is "
                                     f"{ref.cfg.data.image_size} px")
                row.update(readout.score(ctx.encoder(), ref.device, k=int(a.get("k", 20)),
                                         probe_epochs=int(a.get("probe_epochs", 30)), cancel=job.cancel))
            except Exception as exc:
                if job.cancel.is_set():
                    raise
                row["error"] = _user_message(exc)
            rows.append(row)
            job.send("partial", {"rows": list(rows), "readout": ref.cfg.data.spec})
        return {"rows": rows, "readout": ref.cfg.data.spec, "class_names": readout.class_names,
                "num_bank": len(readout.bank_idx), "num_test": len(readout.test_idx), "notes": notes}

    def op_supervised_runs(self, job: Job) -> dict:
        from engine.bounds import find_supervised_runs

        ctx = self.context(job.args["run_dir"])
        roots = [ctx.run_dir.parent, *job.args.get("roots", []), *self.runs_roots]
        return {"runs": find_supervised_runs(roots, ctx.backbone_name(), ctx.cfg.data.spec, ctx.cfg.data.image_size)}

    # -- export ------------------------------------------------------------------------------------------------
    def op_export_encoder(self, job: Job) -> dict:
        from engine.eval.export import export_encoder

        a = job.args
        ctx = self.context(a["run_dir"])
        fmt = a.get("format", "own")
        path, example = export_encoder(ctx.encoder(), a["path"], ctx.backbone_name(), ctx.cfg.data.image_size,
                                       ctx.cfg.method, fmt)
        return {"path": str(path), "example": example, "format": fmt, "backbone": ctx.backbone_name()}

    def op_loading_example(self, job: Job) -> dict:
        from engine.eval.export import TORCHVISION_RESNETS, loading_example

        ctx = self.context(job.args["run_dir"])
        b = ctx.backbone_name()
        path = job.args.get("path") or str(ctx.run_dir / "encoder.safetensors")
        out = {"backbone": b, "own": loading_example(b, ctx.cfg.data.image_size, path, "own")}
        if b in TORCHVISION_RESNETS:
            out["torchvision"] = loading_example(b, ctx.cfg.data.image_size, path, "torchvision")
        return out

    def op_export_embedding(self, job: Job) -> dict:
        from engine.eval.export import NPY_PARTS, write_embedding

        a = job.args
        npz, csv_path = write_embedding(a["path"], a["features"], a["coords"], a.get("labels"), a["indices"],
                                        paths=a.get("paths"), class_names=a.get("class_names"))
        stem = str(npz)[:-4]
        return {"csv": str(csv_path), "npz": str(npz), "npy": [f"{stem}_{p}.npy" for p in NPY_PARTS]}


def _thumbs(data, indices, size: int = THUMB_SIZE) -> np.ndarray:
    from engine.eval.protocol import thumbnails

    return thumbnails(data, indices, size)


def _kmeans(feats: np.ndarray, k: int) -> np.ndarray:
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


def _user_message(exc: BaseException) -> str:
    from engine.data import DataError
    from engine.params import ConfigError

    if isinstance(exc, (ConfigError, DataError, FileNotFoundError, ValueError, IndexError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


# -- lanes and the process entry point ---------------------------------------------------------------------
class Lane:
    """One worker thread with its queue; supports cancelling and superseding."""

    def __init__(self, worker: AnalysisWorker, name: str):
        self.worker = worker
        self.name = name
        self.pending: collections.deque[Job] = collections.deque()
        self.current: Job | None = None
        self.cv = threading.Condition()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name=f"analysis-{name}", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> None:
        tag = job.args.get("supersede")
        with self.cv:
            if tag:
                keep = collections.deque()
                for j in self.pending:
                    if j.args.get("supersede") == tag:
                        j.send("cancelled", {"superseded_by": job.request.id})
                    else:
                        keep.append(j)
                self.pending = keep
                if self.current is not None and self.current.args.get("supersede") == tag:
                    self.current.cancel.set()
            self.pending.append(job)
            self.cv.notify()

    def cancel(self, request_id: int) -> bool:
        with self.cv:
            if self.current is not None and self.current.request.id == request_id:
                self.current.cancel.set()
                return True
            for j in list(self.pending):
                if j.request.id == request_id:
                    self.pending.remove(j)
                    j.send("cancelled", {})
                    return True
        return False

    def stop(self) -> None:
        with self.cv:
            self.stopped = True
            if self.current is not None:
                self.current.cancel.set()
            self.cv.notify()

    def _run(self) -> None:
        while True:
            with self.cv:
                while not self.pending and not self.stopped:
                    self.cv.wait()
                if self.stopped:
                    return
                self.current = self.pending.popleft()
            try:
                self.worker.handle(self.current.request, self.current)
            finally:
                with self.cv:
                    self.current = None


class Dispatcher:
    """Routes requests to lanes (used by :func:`serve` and by in-process clients in tests)."""

    def __init__(self, emit: Callable[[Reply], None], device: str = "cpu", warm: bool = True,
                 runs_roots: tuple = ()):
        self.worker = AnalysisWorker(emit, device, runs_roots)
        self.lanes = {FAST: Lane(self.worker, FAST), SLOW: Lane(self.worker, SLOW)}
        if warm:
            threading.Thread(target=self.worker.warmup, name="analysis-warmup", daemon=True).start()
        else:
            self.worker.warm.set()

    def submit(self, req: Request) -> None:
        if req.op == "cancel":
            rid = int(req.args.get("id", -1))
            for lane in self.lanes.values():
                if lane.cancel(rid):
                    break
            return
        lane = self.lanes[AnalysisWorker.LANES.get(req.op, FAST)]
        lane.submit(Job(req, self.worker.emit))

    def stop(self) -> None:
        for lane in self.lanes.values():
            lane.stop()


def serve(requests, replies, device: str = "cpu", warm: bool = True, runs_roots: tuple = ()) -> None:
    """Entry point of the analysis process: read requests until ``None`` or a ``shutdown`` request."""
    import multiprocessing

    def emit(reply: Reply) -> None:
        try:
            replies.put(reply)
        except (OSError, ValueError):  # the GUI went away
            pass

    limit_threads(analysis_threads())
    try:  # below the window (0), above the training process (the engine client runs it at 10)
        os.nice(int(os.environ.get("SSLWB_ANALYSIS_NICE", "5")))
    except (OSError, ValueError, AttributeError):
        pass
    emit(Reply(0, "start", "status", {"state": "ready", "pid": os.getpid()}))
    dispatcher = Dispatcher(emit, device, warm, runs_roots)
    parent = multiprocessing.parent_process()
    try:
        while True:
            try:
                req = requests.get(timeout=1.0)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    break
                continue
            except (EOFError, OSError):
                break
            if req is None or getattr(req, "op", "") == "shutdown":
                break
            dispatcher.submit(req)
    finally:
        dispatcher.stop()
        try:  # deliver what is queued, then leave without running finalizers in numba/OpenMP threads
            replies.close()
            replies.join_thread()
        except Exception:
            pass
        os._exit(0)


def analysis_threads() -> int:
    """Threads for the analysis process: ``SSLWB_ANALYSIS_THREADS``, else 1 on machines with 4 cores or
    fewer (the training engine and the GUI need them; thread pools that wait on each other on a busy
    2-core machine run 5-20x slower than one thread), else a quarter of the cores."""
    env = os.environ.get("SSLWB_ANALYSIS_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    cores = os.cpu_count() or 1
    return 1 if cores <= 4 else max(1, cores // 4)


def limit_threads(n: int) -> None:
    """BLAS/OpenMP pools of numpy and scikit-learn, torch and numba's UMAP path, all at ``n`` threads."""
    from engine.eval.projection import set_threads

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)  # runtimes loaded from now on (scikit-learn's OpenMP, torch) read these
    set_threads(n)
    try:  # and those already loaded (numpy's OpenBLAS)
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except Exception:  # pragma: no cover - threadpoolctl missing: the pools keep their defaults
        pass
