"""Benchmark of feature extraction for maps: images per second of the analysis process's extraction, option by
option, and the time a map of N images would spend extracting.

    python bench/extraction.py [--images 4096] [--backbone small_cnn] [--image-size 32] [--device cpu]
                               [--threads 1,0] [--batch-sizes 256,512,1024]

For every thread count (0: all cores), batch size, precision (float32, and bf16 where the device computes it
natively) and memory layout (contiguous, channels-last), the images per second of
:func:`engine.eval.features.extract_features` on ``--images`` random uint8 images (the encoder in eval mode,
random weights: the speed does not depend on them). Prints ONE JSON object on its last stdout line:
``rows`` (one per setting), ``default`` (the setting the analysis process uses: channels-last, batch 512,
the training precision ``auto`` gives), ``best`` and, for a map of ``--map-images`` (default 50,000),
``map_extract_s_default`` / ``map_extract_s_best``. Timings are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _Images:
    """Random uint8 images with the dataset interface extraction reads (``get``)."""

    def __init__(self, n: int, size: int):
        import torch

        self.images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8,
                                    generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.images)

    def get(self, idx):
        import numpy as np
        import torch

        return self.images.index_select(0, torch.as_tensor(np.asarray(idx), dtype=torch.long))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=4096, help="images encoded per measurement")
    ap.add_argument("--map-images", type=int, default=50000, help="the map size the extraction time is given for")
    ap.add_argument("--backbone", default="", help="default: the CPU (or GPU) default backbone")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--threads", default="1,0", help="CPU thread counts to try (0: all cores)")
    ap.add_argument("--batch-sizes", default="256,512,1024")
    args = ap.parse_args(argv)

    import torch

    from engine.eval.features import extract_features, prepare_encoder
    from engine.models import build_backbone, default_backbone
    from engine.training.device import autocast_dtype, resolve_device

    dev = resolve_device(args.device)
    backbone = args.backbone or default_backbone(dev.type)
    data = _Images(args.images, args.image_size)
    auto = autocast_dtype(dev, "auto")
    precisions = [None] + ([auto] if auto is not None else [])
    threads = [int(t) or (os.cpu_count() or 1) for t in args.threads.split(",")] if dev.type == "cpu" else [0]
    batches = [int(b) for b in args.batch_sizes.split(",")]
    rows = []
    for th in dict.fromkeys(threads):
        if dev.type == "cpu":
            torch.set_num_threads(th)
        for bs in batches:
            for amp in precisions:
                for cl in (False, True):
                    torch.manual_seed(0)
                    enc = prepare_encoder(build_backbone(backbone, args.image_size), dev, cl).eval()
                    extract_features(enc, data, range(min(len(data), bs)), batch_size=bs, device=dev,
                                     amp_dtype=amp, channels_last=cl)  # warm-up
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    t = time.perf_counter()
                    extract_features(enc, data, None, batch_size=bs, device=dev, amp_dtype=amp, channels_last=cl)
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    rate = len(data) / (time.perf_counter() - t)
                    row = {"threads": th, "batch_size": bs, "precision": str(amp or "float32").replace("torch.", ""),
                           "channels_last": cl, "images_per_s": round(rate, 1)}
                    rows.append(row)
                    log(json.dumps(row))
    best = max(rows, key=lambda r: r["images_per_s"])
    want = {"batch_size": 512, "precision": str(auto or "float32").replace("torch.", ""), "channels_last": True}
    default = max((r for r in rows if all(r[k] == v for k, v in want.items())), key=lambda r: r["threads"],
                  default=best)
    out = {"machine_cpus": os.cpu_count(), "device": str(dev), "backbone": backbone, "image_size": args.image_size,
           "images": args.images, "rows": rows, "default": default, "best": best,
           "map_extract_s_default": round(args.map_images / default["images_per_s"], 3),
           "map_extract_s_best": round(args.map_images / best["images_per_s"], 3)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
