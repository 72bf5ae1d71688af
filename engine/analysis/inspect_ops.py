"""Inspector ops of the analysis process: retrieval, first-layer filters, pretext errors, reconstructions,
evaluation against baselines and run comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.analysis.context import random_init_key, store_extractor, thumbs
from engine.rpc import Job, error_fields


class InspectOps:
    """Mixed into :class:`engine.analysis.AnalysisWorker` (which provides ``context`` and ``runs_roots``)."""

    # -- retrieval ---------------------------------------------------------------------------------------
    def op_retrieve(self, job: Job) -> dict:
        """Nearest neighbours in feature space over the run's images for a dataset image or a file.

        args: run_dir, index (into the split) | path (an image file) | image (uint8 HxWx3); k; split;
        bank_max (cap on the images searched, default 20000); data (another dataset spec than the run's).
        """
        import torch

        from engine.eval.neighbors import nearest_neighbors
        from engine.eval.protocol import sample_indices

        a = job.args
        ctx = self.context(a["run_dir"], a.get("data"))
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
            query_thumb = thumbs(data, [i])[0]
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
            from engine.eval.features import encode

            enc = ctx.encoder()
            was = enc.training
            enc.eval()
            try:  # as the bank was encoded: in the run's precision
                q = encode(enc, x, ctx.device, ctx.amp_dtype)[0].numpy()
            finally:
                enc.train(was)
            query_thumb = x[0].permute(1, 2, 0).numpy()
            query_label = None
        nn_pos, sims = nearest_neighbors(bank, q, k, exclude=exclude)
        idx = bank_idx[nn_pos]
        labels = data.get_labels(idx)
        paths = getattr(data, "paths", None)
        return {"indices": idx, "similarities": sims, "thumbs": thumbs(data, idx, size=64),
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
        max_bank; max_test; k; data (another labelled dataset spec than the run's: a held-out part is scored).
        """
        import torch

        from engine.bounds import find_supervised_runs, train_supervised
        from engine.eval.protocol import run_summary
        from engine.models import build_backbone

        a = job.args
        ctx = self.context(a["run_dir"], a.get("data"))
        ds = ctx.datasets(job)
        readout = _readout(ctx.cfg, ds, a)
        kw = {"probe_epochs": a.get("probe_epochs"), "cancel": job.cancel}
        rows = []
        base = {"class_names": readout.class_names, "num_bank": len(readout.bank_idx),
                "num_test": len(readout.test_idx), "notes": list(ds["notes"]),
                "protocol": readout.protocol(a.get("probe_epochs"))}

        def add(row):
            rows.append(row)
            job.partial({**base, "rows": list(rows)})

        bname = ctx.backbone_name()
        job.progress(0, 3, "scoring this run")
        this = f"this encoder ({ctx.title})" if ctx.entry else f"this run ({ctx.title})"
        add({**run_summary(ctx.run_dir), "name": this, "kind": "run",
             **_score_run(readout, ctx, ctx.device, kw)})
        job.check()
        job.progress(1, 3, "scoring a random-init encoder")
        torch.manual_seed(ctx.cfg.seed)
        rand = build_backbone(bname, ctx.cfg.data.image_size).to(ctx.device).eval()
        extract = store_extractor(self.feature_store, random_init_key(bname, ctx.cfg.data.image_size, ctx.cfg.seed),
                                  rand, ctx.device, None, job.cancel)
        add({"name": f"random init ({bname})", "kind": "random_init", "backbone": bname,
             **readout.score(rand, ctx.device, extract=extract, **kw)})
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
                 **_score_run(readout, sctx, ctx.device, kw)})
        return {**base, "rows": rows}

    def op_compare(self, job: Job) -> dict:
        """Several runs scored on one readout (the first run's evaluation split): kNN and linear probe."""
        from engine.eval.protocol import run_summary

        a = job.args
        runs = list(a.get("run_dirs") or [])
        if not runs:
            raise ValueError("choose at least one run to compare")
        ref = self.context(a.get("reference") or runs[0])
        ds = ref.datasets(job)
        readout = _readout(ref.cfg, ds, a)
        kw = {"probe_epochs": a.get("probe_epochs"), "cancel": job.cancel}
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
                row.update(_score_run(readout, ctx, ref.device, kw))
            except Exception as exc:
                if job.cancel.is_set():
                    raise
                row["error"] = error_fields(exc)[0]
            rows.append(row)
            job.partial({"rows": list(rows), "readout": ref.cfg.data.spec})
        return {"rows": rows, "readout": ref.cfg.data.spec, "class_names": readout.class_names,
                "num_bank": len(readout.bank_idx), "num_test": len(readout.test_idx), "notes": notes,
                "protocol": readout.protocol(a.get("probe_epochs"))}

    def op_supervised_runs(self, job: Job) -> dict:
        from engine.bounds import find_supervised_runs

        ctx = self.context(job.args["run_dir"])
        roots = [ctx.run_dir.parent, *job.args.get("roots", []), *self.runs_roots]
        return {"runs": find_supervised_runs(roots, ctx.backbone_name(), ctx.cfg.data.spec, ctx.cfg.data.image_size)}


def _readout(cfg, datasets, args: dict):
    """The run's evaluation protocol (:class:`engine.eval.protocol.Readout`); ``max_bank`` / ``max_test`` in
    ``args`` narrow it (numbers then differ from the run's final evaluation, and say so in their protocol)."""
    from engine.eval.protocol import Readout

    mb, mt = args.get("max_bank"), args.get("max_test")
    return Readout(cfg, datasets, None if mb is None else int(mb), None if mt is None else int(mt))


def _score_run(readout, ctx, device, kw: dict) -> dict:
    """A run's scores with ``readout``: its final evaluation when that measured the same encoder with the
    same protocol (one number per question), else measured now."""
    from engine.eval.protocol import cached_result

    enc = ctx.encoder()
    same_data = ctx.cfg.data.spec == readout.spec and ctx.cfg.data.image_size == readout.image_size
    if same_data:
        hit = cached_result(ctx.run_dir, readout.protocol(kw.get("probe_epochs")),
                            getattr(enc, "checkpoint_step", None))
        if hit is not None:
            return hit
    return readout.score(enc, device, extract=ctx.extractor(kw.get("cancel")), **kw)
