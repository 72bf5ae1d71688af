"""Export ops of the analysis process: the encoder (with a loading example) and a map's embedding."""

from __future__ import annotations

from engine.rpc import Job


class ExportOps:
    """Mixed into :class:`engine.analysis.AnalysisWorker`."""

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
