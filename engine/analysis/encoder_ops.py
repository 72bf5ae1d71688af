"""Encoder ops of the analysis process: open any encoder (``open_encoder``) and where an encoder looks
(``attention``).

``open_encoder`` writes the encoder's folder in the runs folder (:mod:`engine.encoders.entry`): from then on
every op that takes a ``run_dir`` (maps, neighbours, evaluation, label efficiency, invariance, retrieval,
filters, exports, attention) works on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.rpc import Job


class EncoderOps:
    """Mixed into :class:`engine.analysis.AnalysisWorker` (``context``, ``device``, ``runs_roots``)."""

    def op_open_encoder(self, job: Job) -> dict:
        """Open an encoder and write its folder.

        args: spec (torchvision:NAME[:WEIGHTS], timm:NAME[:random], a weights file or a run folder); arch (with a
        file); select (a network of a checkpoint that holds several); data (the dataset to look at; empty: the
        built-in shapes); eval_data; runs_root (default: the first runs folder the process knows, else "runs");
        image_size (default: the model's own); name. Returns run_dir, report (one line), name, arch, kind
        (cnn/vit), feature_dim, image_size, preprocess. A bad spec or file is one error line.
        """
        from engine.encoders import load_encoder, open_encoder

        a = job.args
        spec = str(a.get("spec") or "").strip()
        job.progress(0, 2, f"loading {spec}")
        le = load_encoder(spec, a.get("arch") or "", select=a.get("select") or "",
                          image_size=a.get("image_size") or None, device=self.device)
        job.check()
        job.progress(1, 2, "writing its folder")
        root = a.get("runs_root") or (self.runs_roots[0] if self.runs_roots else "runs")
        run_dir, le = open_encoder(spec, a.get("arch") or "", data=a.get("data") or "", eval_data=a.get("eval_data") or "",
                                   runs_root=root, select=a.get("select") or "", name=a.get("name") or "", encoder=le)
        self.context(run_dir).adopt(le.module)  # the map that follows does not read the weights again
        return {"run_dir": str(run_dir), **le.describe()}

    def op_attention(self, job: Job) -> dict:
        """Where the encoder looks, for a few images of its data.

        args: run_dir (a run or an opened encoder); indices (into the split); split ("eval" | "train"); data
        (another dataset spec); mode "attention" (ViT: the last block's class-token attention per head; CNN: the
        norm of its last feature map) or "similarity" (each location's cosine similarity to ``reference``: an
        index of the split, e.g. a neighbour); keep (the share of the mean map's mass the mask keeps, 0.6).
        Returns attention (n, heads, gh, gw) float32, each map summing to 1; mean (n, gh, gw); mask (n, gh, gw)
        bool; grid; heads; kind; images (uint8 n x S x S x 3); indices; labels; class_names.
        """
        import torch

        from engine.encoders.attention import (
            attention_kind,
            attention_maps,
            mean_map,
            similarity_maps,
            top_mass_mask,
        )

        a = job.args
        ctx = self.context(a["run_dir"], a.get("data"))
        data = ctx.source(a.get("split", "eval"), job)
        idx = np.asarray(a.get("indices") if a.get("indices") is not None else [0], dtype=np.int64).reshape(-1)
        for i in idx.tolist() + ([int(a["reference"])] if a.get("reference") is not None else []):
            if not 0 <= i < len(data):
                raise IndexError(f"image {i} is out of range; the set has {len(data)} images")
        keep = float(a.get("keep", 0.6))
        enc = ctx.encoder()
        mode = a.get("mode", "attention")
        job.progress(0, 1, "computing attention maps")
        x = data.get(idx).to(ctx.device).float().div(255)
        if mode == "similarity":
            if a.get("reference") is None:
                raise ValueError("a similarity map needs a reference image (its index)")
            with torch.no_grad():
                enc.eval()
                ref = enc(data.get([int(a["reference"])]).to(ctx.device).float().div(255))[0]
            maps, kind = similarity_maps(enc, x, ref), "similarity"
        elif mode == "attention":
            maps, kind = attention_maps(enc, x), attention_kind(enc)
        else:
            raise ValueError(f"unknown mode {mode!r}; choose attention or similarity")
        maps = maps.cpu().numpy().astype(np.float32)
        mean = mean_map(maps)
        lab = data.get_labels(idx)
        return {"attention": maps, "mean": mean, "mask": top_mass_mask(mean, keep), "grid": tuple(maps.shape[-2:]),
                "heads": int(maps.shape[1]), "kind": kind, "indices": idx,
                "images": data.get(idx).cpu().permute(0, 2, 3, 1).contiguous().numpy(),
                "labels": None if lab is None else lab.cpu().numpy(), "class_names": list(data.class_names or []),
                "run_dir": str(Path(a["run_dir"])), "key": a.get("key")}


__all__ = ["EncoderOps"]
