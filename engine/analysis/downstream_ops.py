"""Downstream ops of the analysis process: label efficiency (``downstream``) and the invariance view
(``invariance``), both on the engine of :mod:`engine.eval.downstream` / :mod:`engine.eval.invariance`.

``downstream`` runs in the slow lane: it sends a ``meta`` partial first (sizes, encoders, budgets), then
one partial per finished fit with the running mean and spread of its point (``complete`` once every
seed is in), so a curve fills in as it is computed; Cancel stops it at the next fit or training step.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from engine.rpc import Job

# the sample of the test set a request scores on (the window keeps fits quick; 0 = every image)
DEFAULT_MAX_TEST = 2000
TEST_SAMPLE_SEED = 11


def parse_baseline_list(items) -> list[str]:
    """``["random_init", "supervised:auto", "supervised:RUN"]`` (or one comma-separated string), checked."""
    if isinstance(items, str):
        items = [p for p in items.split(",")]
    out = []
    for part in (str(p).strip() for p in items or []):
        if not part or part == "none":
            continue
        if part != "random_init" and not (part.startswith("supervised:") and part[len("supervised:"):].strip()):
            raise ValueError(f"unknown baseline {part!r}; use random_init, supervised:auto or supervised:RUN_FOLDER")
        out.append(part)
    return list(dict.fromkeys(out))


class DownstreamOps:
    """Mixed into :class:`engine.analysis.AnalysisWorker` (``context``, ``device``, ``runs_roots``)."""

    def _feature_cache(self, ctx):
        """The process's feature store seen by the downstream engine, in the run's training precision."""
        from engine.eval.downstream import FeatureCache

        return FeatureCache(self.feature_store, ctx.amp_dtype)

    def _downstream_data(self, ctx, a: dict, job: Job):
        """(train, test, description): the run's own labelled splits, or two dataset specs (transfer)."""
        from engine.data import DataError, load_dataset

        size = ctx.cfg.data.image_size
        train_spec, test_spec = (a.get("train_data") or "").strip(), (a.get("test_data") or "").strip()
        if not train_spec and not test_spec:
            ds = ctx.datasets(job)
            train, test = ds["bank_data"], ds["eval_data"]
            if train is None or test is None:
                raise DataError(f"the run's dataset {ctx.cfg.data.spec} has no labelled evaluation split; choose a "
                                "labelled training and test set (class folders or a torchvision set)")
            what = f"the run's own data ({ctx.cfg.data.spec})"
        else:
            if not train_spec or not test_spec:
                raise DataError("give both a training set (the label subsets) and a test set (scored), e.g. "
                                "two class-folder splits or torchvision:cifar10 and torchvision:cifar10-test")
            job.progress(0, 1, f"reading {train_spec}")
            train = load_dataset(train_spec, size, cancel=job.cancel)
            job.progress(0, 1, f"reading {test_spec}")
            test = load_dataset(test_spec, size, cancel=job.cancel)
            what = f"{train_spec} → {test_spec}"
        max_test = int(a.get("max_test", DEFAULT_MAX_TEST))
        if max_test and len(test) > max_test and not getattr(test, "streaming", False):
            from engine.eval.protocol import sample_indices

            sub = test.subset(sample_indices(len(test), max_test, seed=TEST_SAMPLE_SEED))
            sub.source = f"{test.source}#{max_test}"  # its own feature-cache entry
            test = sub
        return train, test, what

    def _downstream_encoders(self, ctx, a: dict, notes: list) -> list:
        from engine.bounds import find_supervised_runs
        from engine.eval.downstream import EncoderSource

        bname = ctx.backbone_name()
        size = ctx.cfg.data.image_size
        taken: set = set()

        def unique(name):
            out, i = name, 2
            while out in taken:
                out, i = f"{name}-{i}", i + 1
            taken.add(out)
            return out

        enc = ctx.encoder()
        sources = [EncoderSource.from_module(unique(ctx.title), enc,
                                             key=ctx.feature_key)]
        for b in parse_baseline_list(a.get("baselines", ["random_init"])):
            if b == "random_init":
                sources.append(EncoderSource.random_init(bname, size, unique("random_init")))
                continue
            path = b[len("supervised:"):].strip()
            if path == "auto":
                roots = [ctx.run_dir.parent, *a.get("roots", []), *self.runs_roots]
                found = [r for r in find_supervised_runs(roots, bname, ctx.cfg.data.spec, size)
                         if Path(r["path"]).resolve() != ctx.run_dir.resolve()]
                if not found:
                    notes.append(f"no finished supervised run of {bname} on {ctx.cfg.data.spec} was found; train "
                                 "one (Evaluation tab) or choose its folder")
                    continue
                path = found[0]["path"]
            sctx = self.context(path)
            if sctx.cfg.data.image_size != size:
                notes.append(f"the supervised run {Path(path).name} is at {sctx.cfg.data.image_size} px, this run at "
                             f"{size} px; it is left out")
                continue
            sources.append(EncoderSource.from_module(unique(sctx.cfg.method), sctx.encoder(),
                                                     key=sctx.feature_key))
        return sources

    def op_downstream(self, job: Job) -> dict:
        """Label efficiency of the run's encoder next to baselines.

        args: run_dir; train_data, test_data (specs; both empty: the run's own labelled splits); labels_per_class
        (list of ints and "all"); modes (linear, finetune, knn); seeds; seed; baselines (random_init,
        supervised:auto, supervised:RUN); finetune_steps; minutes_per_fit; k; max_test.
        """
        from engine.eval.downstream import DownstreamConfig, parse_budgets, parse_modes, run_downstream

        a = job.args
        ctx = self.context(a["run_dir"])
        budgets = parse_budgets(",".join(str(b) for b in a.get("labels_per_class", [1, 10, "all"])))
        modes = parse_modes(",".join(a.get("modes", ["linear"])))
        cfg = DownstreamConfig(labels_per_class=budgets, modes=modes, seeds=int(a.get("seeds", 1)),
                               seed=int(a.get("seed", 0)), k=int(a.get("k", 20)), device=str(ctx.device))
        if a.get("finetune_steps") is not None:
            cfg.finetune.steps = int(a["finetune_steps"])
        cfg.finetune.minutes = float(a.get("minutes_per_fit", 0.0))
        cfg.check()
        notes: list = []
        train, test, what = self._downstream_data(ctx, a, job)
        job.check()
        sources = self._downstream_encoders(ctx, a, notes)
        meta = {"encoders": [s.name for s in sources], "num_train": len(train), "num_test": len(test),
                "num_classes": int(train.num_classes), "data": what, "modes": modes, "seeds": cfg.seeds,
                "labels_per_class": budgets, "notes": list(notes)}
        job.partial({"meta": meta})
        running: dict = {}

        def on_fit(fit):
            key = (fit.encoder, fit.mode, fit.labels_per_class)
            acc = running.setdefault(key, [])
            acc.append(fit.top1)
            arr = np.asarray(acc, dtype=np.float64)
            job.partial({"fit": fit.to_dict(), "point": {
                "encoder": fit.encoder, "mode": fit.mode, "labels_per_class": fit.labels_per_class,
                "top1_mean": float(arr.mean()), "top1_std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                "seeds": len(arr), "top1": arr.round(4).tolist(), "num_labels": fit.num_labels,
                "complete": len(arr) == cfg.seeds}})

        res = run_downstream(sources, train, test, cfg, progress=lambda d, t, s: job.progress(d, t, s),
                             on_fit=on_fit, cancel=job.cancel, cache=self._feature_cache(ctx))
        out = res.to_dict()
        out.update(meta)
        out["notes"] = notes + list(res.notes)
        out["run"] = str(ctx.run_dir)
        return out

    def op_invariance(self, job: Job) -> dict:
        """Cosine similarity under transformations and for same-/different-class pairs: the run's encoder and
        a random-init one. args: run_dir; data (a spec; empty: the run's evaluation images); images; seed;
        baseline (bool, default True)."""
        import torch

        from engine.analysis.context import random_init_key
        from engine.data import load_dataset
        from engine.eval.invariance import invariance
        from engine.models import build_backbone

        a = job.args
        ctx = self.context(a["run_dir"])
        size = ctx.cfg.data.image_size
        spec = (a.get("data") or "").strip()
        data = load_dataset(spec, size, cancel=job.cancel) if spec else ctx.source("eval", job)
        seed = int(a.get("seed", 0))
        encoders = [(ctx.title, copy.deepcopy(ctx.encoder()))]  # a copy: other requests use the run's
        if a.get("baseline", True):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                encoders.append(("random_init", build_backbone(ctx.backbone_name(), size).to(ctx.device)))
        rows: list = []

        def on_row(row):
            rows.append(row.to_dict())
            job.partial({"rows": list(rows)})

        # the untransformed images' features come from the process's store (shared with the map and the rest)
        keys = {ctx.title: ctx.feature_key, "random_init": random_init_key(ctx.backbone_name(), size, seed)}

        def originals(name, enc, idx):
            return torch.from_numpy(self.feature_store.features(keys[name], enc, data, idx, device=ctx.device,
                                                                amp_dtype=ctx.amp_dtype, normalize=False,
                                                                cancel=job.cancel))

        out = invariance(encoders, data, num_images=int(a.get("images", 256)), seed=seed, device=ctx.device,
                         progress=lambda d, t, s: job.progress(d, t, s), on_row=on_row, cancel=job.cancel,
                         amp_dtype=ctx.amp_dtype, originals=originals)
        out["encoders"] = [n for n, _ in encoders]
        out["data"] = spec or f"the run's evaluation images ({ctx.cfg.data.spec})"
        return out
