"""Opened encoders, timed: features per second of a 224-px ResNet-50 and ViT-S/16 on the CPU, and the time from
"Open encoder" to the first map of 5,000 images.

    python bench/encoders.py
    python bench/encoders.py --threads 4 --batch 64
    python bench/encoders.py --batches 1 --batch 2 --sample 50 --data builtin:shapes:60 \\
        --open 'torchvision:resnet18?input_size=64'                      (a smoke test)

Features per second: each model (random weights: ``--resnet``, ``--vit``) encodes ``--batches`` timed batches of
``--batch`` images after one warm-up batch, in eval mode without gradients, through the engine's wrapper: uint8
images at the model's resize size (256 px for a 224-px ResNet-50, 248 for timm's ViT-S/16) become floats, are
centre-cropped to 224 and normalised, as the map and evaluations do.

Open to first map: an analysis worker in this process (as the window's analysis process) answers ``open_encoder``
(``--open``, random weights; the folder goes to a temporary runs folder) and then ``map`` of the opened encoder
from its weights over ``--sample`` images of the training split of ``--data`` (PCA layout, thumbnails): the time
from the open request to the map's preview (its first 500 points) and to its FIRST stage (every point drawn).
Reading and decoding the dataset at the model's size is part of it, as it is for the user.

The last line is one JSON object: ``resnet50_images_per_s``, ``vit_s16_images_per_s`` (features per second),
``open_s`` (open_encoder alone), ``open_to_preview_s``, ``open_to_first_map_s``, ``map_images`` (points in the
first map), and what was run (``threads``, ``batch``, ``device``, ``torch``, the specs, ``data``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "cifar10-small" / "train"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bench/encoders.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--resnet", default="torchvision:resnet50", help="the CNN timed (default torchvision:resnet50)")
    p.add_argument("--vit", default="timm:vit_small_patch16_224:random", help="the ViT timed (default timm's ViT-S/16)")
    p.add_argument("--batch", type=int, default=32, help="images per batch (default 32)")
    p.add_argument("--batches", type=int, default=4, help="timed batches per model (default 4)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")
    p.add_argument("--device", default="cpu", help="where to compute (default cpu)")
    p.add_argument("--open", default="torchvision:resnet50", help="the encoder opened for the map")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="the dataset the map looks at (default CIFAR-10 small)")
    p.add_argument("--sample", type=int, default=5000, help="points in the map (default 5000)")
    p.add_argument("--skip-map", action="store_true", help="time only the features per second")
    return p.parse_args(argv)


def images_per_s(spec: str, batch: int, batches: int, device) -> dict:
    import torch

    from engine.encoders import load_encoder

    le = load_encoder(spec, device=device)
    size = le.image_size
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
    with torch.no_grad():
        le.module(x.float().div(255))  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(batches):
            le.module(x.float().div(255))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        took = time.perf_counter() - t0
    print(f"{spec}: {batch * batches / took:.1f} images/s ({batches} batches of {batch} at {size} px -> "
          f"{le.module.preprocess.input_size} px)", file=sys.stderr)
    return {"images_per_s": round(batch * batches / took, 2), "load_px": size,
            "input_px": le.module.preprocess.input_size}


def open_to_map(spec: str, data: str, sample: int, device: str) -> dict:
    from engine.analysis import AnalysisWorker, Request
    from engine.messages import MapStage

    marks: dict = {}
    t0 = time.perf_counter()

    def emit(reply):
        stage = reply.data.get("stage") if reply.kind == "partial" else None
        if stage == MapStage.PREVIEW and "preview" not in marks:
            marks["preview"] = time.perf_counter() - t0
        if stage == MapStage.FIRST and "first" not in marks:
            marks["first"] = time.perf_counter() - t0
            marks["points"] = len(reply.data["indices"])
        if reply.kind in ("result", "error"):
            marks.setdefault("replies", []).append(reply)

    worker = AnalysisWorker(emit, device)
    worker.warm.set()  # PCA only: UMAP's compilation is not part of it
    with tempfile.TemporaryDirectory() as root:
        worker.handle(Request(1, "open_encoder", {"spec": spec, "data": data, "runs_root": root}))
        opened = marks["replies"][-1]
        if opened.kind != "result":
            raise SystemExit(f"open_encoder failed: {opened.data.get('message')}")
        marks["open"] = time.perf_counter() - t0
        print(f"opened {spec} in {marks['open']:.1f} s: {opened.data['report']}", file=sys.stderr)
        worker.handle(Request(2, "map", {"run_dir": opened.data["run_dir"], "split": "train", "sample": sample,
                                         "projection": "pca"}))
        done = marks["replies"][-1]
        if done.kind != "result":
            raise SystemExit(f"map failed: {done.data.get('message')}")
    print(f"first map of {marks.get('points')} images {marks.get('first', float('nan')):.1f} s after the open "
          f"request (preview {marks.get('preview', float('nan')):.1f} s)", file=sys.stderr)
    return {"open_s": round(marks["open"], 2), "open_to_preview_s": round(marks["preview"], 2) if "preview" in marks
            else None, "open_to_first_map_s": round(marks["first"], 2), "map_images": marks.get("points")}


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    out = {"threads": torch.get_num_threads(), "batch": args.batch, "batches": args.batches, "device": str(device),
           "torch": torch.__version__, "resnet": args.resnet, "vit": args.vit}
    r = images_per_s(args.resnet, args.batch, args.batches, device)
    v = images_per_s(args.vit, args.batch, args.batches, device)
    out.update({"resnet50_images_per_s": r["images_per_s"], "vit_s16_images_per_s": v["images_per_s"],
                "resnet_px": [r["load_px"], r["input_px"]], "vit_px": [v["load_px"], v["input_px"]]})
    if not args.skip_map:
        out.update({"open": args.open, "data": args.data, "sample": args.sample})
        out.update(open_to_map(args.open, args.data, args.sample, args.device))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
