"""Matched-step comparison of the video methods with the random init of their backbone.

    python bench/video_steps.py --steps 300 --every 100 --threads 1

Trains each method that trains on clips for the same number of optimiser steps (not the same time:
on a shared machine the step rate varies) on ``builtin:clips`` and scores the encoder by kNN (k=20)
on the shape class: the bank is each training clip's middle frame, the queries are the middle frames
of the test clips (``builtin:clips-test``, another seed). Same seed, same batches order, same
backbone for every method. The random init is scored once (it does not train). Prints one line per
evaluation and the JSON summary on its last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bench/video_steps.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default="all", help="comma-separated clip methods (default: every one)")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps per method (default 300)")
    p.add_argument("--every", type=int, default=100, help="score the encoder every this many steps (default 100)")
    p.add_argument("--batch-size", type=int, default=0, help="clips per step (default: each method's own)")
    p.add_argument("--clips", type=int, default=1200, help="training clips (default 1200)")
    p.add_argument("--test-clips", type=int, default=400, help="test clips (default 400)")
    p.add_argument("--backbone", default="small_cnn")
    p.add_argument("--options", default="{}", help="JSON: method -> options overriding the defaults")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    return p.parse_args(argv)


def score(encoder, bank, test) -> float:
    from engine.eval.features import extract_features
    from engine.eval.knn import knn_accuracy

    fb, ft = extract_features(encoder, bank, device="cpu"), extract_features(encoder, test, device="cpu")
    top1, _ = knn_accuracy(fb, bank.labels, ft, test.labels, len(bank.class_names), k=20)
    return round(top1, 4)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    from engine.data import load_dataset
    from engine.methods import METHODS, DataInfo
    from engine.models import build_backbone
    from engine.params import from_dict
    from engine.seeds import epoch_order, step_generator

    if args.threads:
        torch.set_num_threads(args.threads)
    train = load_dataset(f"builtin:clips:{args.clips}", 32)
    test = load_dataset(f"builtin:clips-test:{args.test_clips}", 32)
    methods = [n for n, c in METHODS.items() if c.input_kind == "clips"] if args.methods == "all" else \
        [m.strip() for m in args.methods.split(",")]
    options = json.loads(args.options)
    torch.manual_seed(args.seed)
    results = {"random_init": score(build_backbone(args.backbone, 32), train, test)}
    print(f"random_init: {results['random_init']}", flush=True)
    curves = {}
    for name in methods:
        cls = METHODS[name]
        torch.manual_seed(args.seed)
        m = cls(from_dict(cls.Config, options.get(name, {})), build_backbone(args.backbone, 32),
                DataInfo(32, len(train.class_names)))
        optim = cls.run_defaults()["optim"]
        bs = args.batch_size or optim.get("batch_size", 64)
        opt = torch.optim.AdamW(m.parameters(), lr=optim.get("lr", 1e-3), weight_decay=optim.get("weight_decay", 0))
        step, epoch, curve, t0 = 0, 0, {}, time.perf_counter()
        while step < args.steps:
            order = epoch_order(len(train), args.seed, epoch)
            for x, _, _ in train.batches(bs, order):
                m.train()
                out = m.training_step(x.float().div(255), None, step_generator(args.seed, step, 0, torch.device("cpu")))
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
                step += 1
                if step % args.every == 0 or step == args.steps:
                    curve[step] = score(m.encoder, train, test)
                    print(f"{name} step {step}: kNN {curve[step]} loss {out.loss.item():.3f} "
                          f"({time.perf_counter() - t0:.0f} s)", flush=True)
                if step >= args.steps:
                    break
            epoch += 1
        curves[name] = curve
        results[name] = curve[args.steps]
    summary = {"steps": args.steps, "clips": args.clips, "test_clips": args.test_clips, "backbone": args.backbone,
               "knn_top1": results, "curves": curves,
               "vs_random_init": {k: round(v - results["random_init"], 4) for k, v in results.items()}}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
