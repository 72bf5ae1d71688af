"""``python main.py downstream ...`` (label efficiency) and ``python main.py invariance ...``.

Kept apart from :mod:`engine.cli` so that module only registers the two parsers and dispatches.
"""

from __future__ import annotations

import json
import sys
import time

from engine.cli_encoders import add_source_args, choose_encoder, random_like

EXIT_USAGE = 2

DEFAULT_BUDGETS = "1,2,5,10,25,100,all"


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def add_parsers(sub, add_common_data) -> None:
    d = sub.add_parser("downstream", help="label efficiency: linear, fine-tune and kNN with 1..all labels per "
                       "class, next to training from scratch",
                       description="Score a run's encoder on a labelled task with few labels per class (linear "
                       "probe on frozen features, fine-tuning, kNN), each point over several seeds, next to "
                       "baselines: a random-init encoder (fine-tuned = trained from scratch) and supervised runs. "
                       "Prints progress and a table; the last line is one JSON object with 'results'.")
    add_source_args(d, "the run folder whose encoder is evaluated")
    d.add_argument("--train-data", required=True, metavar="SPEC", help="labelled images the label subsets "
                   "are drawn from")
    d.add_argument("--test-data", required=True, metavar="SPEC", help="labelled images to score (the same "
                   "classes as --train-data; another dataset than the run's is a transfer)")
    d.add_argument("--labels-per-class", default=DEFAULT_BUDGETS, metavar="LIST",
                   help=f"label budgets, comma-separated whole numbers or 'all' (default {DEFAULT_BUDGETS})")
    d.add_argument("--modes", default="linear,finetune,knn", metavar="LIST",
                   help="any of linear, finetune, knn (default: all three)")
    d.add_argument("--seeds", type=int, default=3, metavar="N", help="repeat every point over N subset seeds "
                   "(default 3); mean and standard deviation are reported")
    d.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    d.add_argument("--baselines", default="random_init", metavar="LIST",
                   help="comma-separated: random_init (fine-tuned, it is training from scratch), "
                        "supervised:RUN (a supervised run's encoder), or none (default random_init)")
    d.add_argument("--minutes-per-fit", type=float, default=0.0, metavar="M",
                   help="stop each fine-tuning fit after M minutes (default: by steps only)")
    d.add_argument("--finetune-steps", type=int, default=None, metavar="N",
                   help="optimiser steps per fine-tuning fit (default 100)")
    d.add_argument("--k", type=int, default=20, help="neighbours for kNN (default 20)")
    add_common_data(d)

    v = sub.add_parser("invariance", help="cosine similarity of embeddings under transformations, and of "
                       "same-class / different-class image pairs",
                       description="For the run's encoder and a random-init one: the cosine similarity between "
                       "an image's embedding and its transformed versions (crop, flip, colour jitter, grayscale, "
                       "blur, rotation by 90 degrees, solarize), and between two images of one class and of "
                       "different classes. The last line is one JSON object.")
    add_source_args(v)
    v.add_argument("--data", required=True, metavar="SPEC", help="the images (labelled for the pair rows)")
    v.add_argument("--images", type=int, default=256, metavar="N", help="images to sample (default 256)")
    v.add_argument("--seed", type=int, default=0, help="seed of the sample and transformations (default 0)")
    v.add_argument("--no-baseline", action="store_true", help="leave out the random-init encoder")
    add_common_data(v)


def _load_run(path, device):
    from engine.training.checkpoints import load_run_encoder

    return load_run_encoder(path, device)


def parse_baselines(text: str) -> list[tuple[str, str]]:
    """``"random_init,supervised:RUN"`` -> [("random_init", ""), ("supervised", "RUN")]."""
    out = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part or part == "none":
            continue
        if part == "random_init":
            out.append(("random_init", ""))
        elif part.startswith("supervised:") and part[len("supervised:"):].strip():
            out.append(("supervised", part[len("supervised:"):].strip()))
        else:
            raise ValueError(f"unknown baseline {part!r}; use random_init, supervised:RUN_FOLDER or none")
    return out


def _unique(name: str, taken: set) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}-{i}", i + 1
    taken.add(out)
    return out


def cmd_downstream(args) -> int:
    from pathlib import Path

    from engine.data import DataError, load_dataset
    from engine.eval.downstream import (
        DownstreamConfig,
        EncoderSource,
        parse_budgets,
        parse_modes,
        results_table,
        run_downstream,
    )
    from engine.params import ConfigError
    from engine.session import resolve_device

    try:
        budgets = parse_budgets(args.labels_per_class)
        modes = parse_modes(args.modes)
        baselines = parse_baselines(args.baselines)
        if args.seeds < 1:
            raise ValueError(f"--seeds must be at least 1, got {args.seeds}")
        if args.minutes_per_fit < 0:
            raise ValueError(f"--minutes-per-fit must not be negative, got {args.minutes_per_fit}")
        cfg = DownstreamConfig(labels_per_class=budgets, modes=modes, seeds=args.seeds, seed=args.seed, k=args.k)
        cfg.finetune.minutes = args.minutes_per_fit
        if args.finetune_steps is not None:
            cfg.finetune.steps = args.finetune_steps
        cfg.check()
        device = resolve_device(args.device)
        cfg.device = str(device)
        choice = choose_encoder(args, device)
        bname, size = choice.backbone, choice.image_size
        taken: set = set()
        sources = [EncoderSource.from_module(_unique(choice.name, taken), choice.encoder, key=choice.key)]
        for kind, path in baselines:
            if kind == "random_init":
                sources.append(EncoderSource.random_init(bname, size, _unique("random_init", taken)))
            else:
                senc, scfg, _ = _load_run(path, device)
                sources.append(EncoderSource.from_module(_unique(scfg.method, taken), senc,
                                                         key=f"run:{Path(path).resolve()}"))
        train = load_dataset(args.train_data, size)
        test = load_dataset(args.test_data, size)
    except (ConfigError, DataError, ValueError) as exc:
        return _err(str(exc))

    t0 = time.monotonic()

    def progress(done, total, text):
        print(f"[{done}/{total}] {time.monotonic() - t0:6.1f}s {text}", file=sys.stderr, flush=True)

    try:
        result = run_downstream(sources, train, test, cfg, progress=progress,
                                on_note=lambda note: print(f"note: {note}", file=sys.stderr, flush=True))
    except (DataError, ValueError) as exc:
        return _err(str(exc))
    print(results_table(result.points), file=sys.stderr)
    out = result.to_dict()
    out.pop("fits")
    out = {**choice.about, "train_data": args.train_data, "test_data": args.test_data,
           "encoders": [s.name for s in sources], **out}
    print(json.dumps(out))
    return 0


def cmd_invariance(args) -> int:
    from engine.data import DataError, load_dataset
    from engine.eval.invariance import invariance, invariance_table
    from engine.params import ConfigError
    from engine.session import resolve_device

    try:
        if args.images < 2:
            raise ValueError(f"--images must be at least 2, got {args.images}")
        device = resolve_device(args.device)
        choice = choose_encoder(args, device)
        data = load_dataset(args.data, choice.image_size)
    except (ConfigError, DataError, ValueError) as exc:
        return _err(str(exc))
    taken: set = set()
    encoders = [(_unique(choice.name, taken), choice.encoder)]
    if not args.no_baseline:
        encoders.append((_unique("random_init", taken), random_like(choice, device, args.seed)))
    out = invariance(encoders, data, num_images=args.images, seed=args.seed, device=device)
    for note in out["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(invariance_table(out["rows"]), file=sys.stderr)
    print(json.dumps({**choice.about, "data": args.data, **out}))
    return 0
