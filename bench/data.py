"""Benchmark of large image folders: the first open, the cached open, and streaming beside a training step.

    python bench/data.py --data FOLDER [--image-size 32] [--batch-size 0] [--batches 40] [--steps 6]
                         [--stream-limit-mb 0]

Prints progress to stderr and ONE JSON object on its last stdout line:
- ``images``: the images of the folder;
- ``first_open_s``: the first open with an empty cache (scan + decode of every file into memory);
  ``SSLWB_CACHE_DIR`` points at a fresh temporary folder for the whole bench unless it is set already
  (then the first open is only "first" if that cache is empty: ``cache_was_empty`` says);
- ``cached_open_s``: the second open of the same folder (read from the decoded cache, in a fresh process,
  as when the program is started again);
- ``shard_build_s``: the first open of the folder as a streamed set (its memory limit below the folder's
  decoded size: ``stream_limit_mb``, default a quarter of it), decoding it into shards;
- ``stream_images_per_s``: images per second the streamed set hands to training (shard by shard, read
  ahead by its background thread, nothing else running), over ``--batches`` batches;
- ``step_images_per_s``: images per second a training step consumes (SimCLR's CPU defaults, the batch from
  memory), and ``stream_to_step_ratio`` (above 1: the stream keeps up with the step); also
  ``streamed_step_images_per_s``: the same step fed by the stream;
- ``peak_shards_held`` / ``peak_mb_held``: what the streamed set held in memory at most.
Timings are only meaningful on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed_open(folder: str, size: int, limit_mb: int = 0):
    """(data, seconds) of one open of ``folder`` (in-memory unless ``limit_mb`` is below its decoded size)."""
    from engine.data import load_dataset

    last = [0.0]

    def progress(done, total, detail=""):
        now = time.perf_counter()
        if now - last[0] > 5:
            last[0] = now
            log(f"  {detail} {done}/{total}")

    t = time.perf_counter()
    data = load_dataset(folder, size, progress=progress, memory_limit_mb=limit_mb)
    return data, time.perf_counter() - t


def cached_open_child(folder: str, size: int) -> None:
    """In a fresh process: the time of an open that finds the decoded cache (one JSON line)."""
    data, seconds = timed_open(folder, size)
    print(json.dumps({"cached_open_s": round(seconds, 3), "images": len(data)}))


def make_step(size: int, batch_size: int):
    """SimCLR's CPU training step (as the session runs it) and its batch size: ``step(x_uint8)``."""
    import torch

    from engine.config import default_config
    from engine.methods import DataInfo, get_method_class
    from engine.models import build_backbone, default_backbone
    from engine.seeds import step_generator
    from engine.training.batch import cpu_batch
    from engine.training.device import Precision, place_model
    from engine.training.distributed import wrap_step
    from engine.training.optim import build_optimizer

    dev = torch.device("cpu")
    cfg = default_config("simclr")
    cls = get_method_class("simclr")
    bs = batch_size or cpu_batch(cls)
    torch.manual_seed(0)
    method = place_model(cls(cfg.method_config(), build_backbone(default_backbone("cpu"), size), DataInfo(size, 0)),
                         dev)
    method.train()
    opt = build_optimizer(method, cfg)
    precision = Precision(dev, "auto")
    step_fn = wrap_step(method, dev, 1)
    k = [0]

    def step(x_u8):
        x = x_u8.float().div_(255)
        with precision.autocast():
            loss, _ = step_fn(x, None, step_generator(0, k[0], 0, dev))
        opt.zero_grad(set_to_none=True)
        precision.backward(loss, opt)
        precision.step(opt)
        k[0] += 1

    return step, bs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="an image folder (class sub-folders or a train/ split)")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=0, help="default: SimCLR's CPU default")
    ap.add_argument("--batches", type=int, default=40, help="batches read from the stream (0: one epoch)")
    ap.add_argument("--steps", type=int, default=6, help="timed training steps")
    ap.add_argument("--stream-limit-mb", type=float, default=0,
                    help="memory limit of the streamed open (default: a quarter of the decoded size)")
    ap.add_argument("--cached-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cached_child:
        cached_open_child(args.data, args.image_size)
        return 0
    if not Path(args.data).expanduser().is_dir():
        print(f"{args.data} is not a folder; give an image folder with --data", file=sys.stderr)
        return 2

    own_cache = not os.environ.get("SSLWB_CACHE_DIR")
    cache = Path(tempfile.mkdtemp(prefix="sslwb-bench-cache-")) if own_cache else Path(os.environ["SSLWB_CACHE_DIR"])
    os.environ["SSLWB_CACHE_DIR"] = str(cache)
    out: dict = {"machine_cpus": os.cpu_count(), "data": str(args.data), "image_size": args.image_size,
                 "cache_was_empty": not any(cache.iterdir()) if cache.exists() else True}
    t_start = time.perf_counter()
    try:
        import torch

        # 1. the first open (empty cache) and the cached one (a fresh process) -----------------------------
        log(f"first open of {args.data} (cache {cache}) ...")
        data, seconds = timed_open(args.data, args.image_size)
        out["images"] = len(data)
        out["first_open_s"] = round(seconds, 3)
        log(f"first open: {len(data)} images in {seconds:.1f} s")
        decoded_mb = len(data) * 3 * args.image_size ** 2 / 2**20
        out["decoded_mb"] = round(decoded_mb, 1)
        r = subprocess.run([sys.executable, __file__, "--cached-child", "--data", args.data, "--image-size",
                            str(args.image_size)], capture_output=True, text=True, cwd=ROOT, timeout=600)
        try:
            out["cached_open_s"] = json.loads(r.stdout.strip().splitlines()[-1])["cached_open_s"]
        except (ValueError, IndexError, KeyError):
            raise SystemExit(f"the cached open failed: {r.stderr[-1000:]}") from None
        log(f"cached open: {out['cached_open_s']} s")

        # 2. the training step's consumption rate (its batch from memory) ----------------------------------
        step, bs = make_step(args.image_size, args.batch_size)
        out["batch_size"] = bs
        gen = torch.Generator().manual_seed(0)
        order = torch.randperm(len(data), generator=gen)
        batch = data.get(order[:bs].numpy())
        step(batch)  # warm-up
        t = time.perf_counter()
        for _ in range(max(1, args.steps)):
            step(batch)
        out["step_images_per_s"] = round(bs * max(1, args.steps) / (time.perf_counter() - t), 1)
        log(f"training step: {out['step_images_per_s']} images/s (batch {bs})")
        del data, batch

        # 3. the streamed set: shards built once, then read shard by shard ---------------------------------
        limit = args.stream_limit_mb or round(decoded_mb / 4, 3)
        out["stream_limit_mb"] = limit
        log(f"streamed open (memory limit {limit} MB): building the shards ...")
        sdata, seconds = timed_open(args.data, args.image_size, limit)
        out["shard_build_s"] = round(seconds, 3)
        out["streaming"] = bool(getattr(sdata, "streaming", False))
        if not out["streaming"]:
            raise SystemExit(f"the folder ({decoded_mb:.0f} MB decoded) was not streamed at a {limit} MB limit")
        n_batches = args.batches or len(sdata) // bs
        order = sdata.reading_order(torch.randperm(len(sdata), generator=gen))[:n_batches * bs]
        images = 0
        t = time.perf_counter()
        for x, _, _ in sdata.batches(bs, order):
            images += len(x)
        out["stream_images_per_s"] = round(images / (time.perf_counter() - t), 1)
        out["stream_batches"] = images // bs
        out["stream_to_step_ratio"] = round(out["stream_images_per_s"] / out["step_images_per_s"], 2)
        log(f"stream: {out['stream_images_per_s']} images/s over {images} images "
            f"({out['stream_to_step_ratio']}x the step's rate)")
        images, steps = 0, max(1, args.steps)
        t = time.perf_counter()
        for x, _, _ in sdata.batches(bs, order[:steps * bs]):
            step(x)
            images += len(x)
        out["streamed_step_images_per_s"] = round(images / (time.perf_counter() - t), 1)
        out["peak_shards_held"] = int(getattr(sdata, "peak_shards_held", 0))
        out["peak_mb_held"] = round(getattr(sdata, "peak_bytes_held", 0) / 2**20, 1)
        log(f"training fed by the stream: {out['streamed_step_images_per_s']} images/s; at most "
            f"{out['peak_shards_held']} shards ({out['peak_mb_held']} MB) held")
    finally:
        if own_cache:
            shutil.rmtree(cache, ignore_errors=True)
    out["bench_s"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
