"""``python main.py eval ...`` (kNN and linear probe with baselines) and ``python main.py embed ...`` (features
and a 2-D map), of a run's encoder or of any encoder (``--encoder SPEC``, :mod:`engine.cli_encoders`).

Kept apart from :mod:`engine.cli` so that module only registers the parsers and dispatches.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from engine.cli_encoders import add_source_args, choose_encoder, random_like, usage_error


def add_parsers(sub, add_common_data) -> None:
    e = sub.add_parser("eval", help="kNN and linear-probe accuracy of a run's (or any) encoder, with baselines",
                       description="Evaluate a run's encoder, or any encoder (--encoder), with kNN and a linear probe, "
                       "next to a random-init encoder of the same architecture and raw pixels. The last line is one "
                       "JSON object.")
    add_source_args(e)
    e.add_argument("--train-data", required=True, metavar="SPEC", help="labelled data for the kNN bank / probe")
    e.add_argument("--test-data", required=True, metavar="SPEC", help="labelled data to score")
    add_common_data(e)
    e.add_argument("--k", type=int, default=20, help="neighbours for kNN (default 20)")
    e.add_argument("--temperature", type=float, default=0.07, help="kNN temperature (default 0.07)")
    e.add_argument("--probe-epochs", type=int, default=100, help="linear-probe epochs (default 100)")
    e.add_argument("--no-baselines", action="store_true", help="skip the random-init and raw-pixel baselines")
    e.add_argument("--refit-norm", type=int, default=0, metavar="BATCHES",
                   help="also score the encoder and the random-init baseline with their BatchNorm statistics "
                   "re-estimated on BATCHES random batches of 256 --train-data images (keys refit_...): how much "
                   "of the lead is the weights and how much the statistics alone (default 0: not done)")

    m = sub.add_parser("embed", help="export the embeddings of a run's (or any) encoder (features, 2-D map, "
                       "labels, paths)",
                       description="Extract features of a dataset with a run's encoder, or any encoder (--encoder), "
                       "and write them with a 2-D projection as .npz and .csv (rows in data order).")
    add_source_args(m)
    m.add_argument("--data", required=True, metavar="SPEC", help="the images to embed")
    m.add_argument("--out", metavar="PATH", help="output path without extension (default: RUN/export/embedding; "
                   "needed with --encoder)")
    m.add_argument("--projection", default="umap", choices=["umap", "pca", "tsne", "none"],
                   help="2-D projection (default umap)")
    m.add_argument("--max-images", type=int, default=5000, help="embed at most this many images (default 5000)")
    m.add_argument("--format", default="files", choices=["files", "tensorboard"],
                   help="files: PATH.npz, PATH.csv and .npy files (default); tensorboard: the folder PATH in "
                   "TensorBoard projector's format (tensors, metadata, a sprite of thumbnails): "
                   "tensorboard --logdir PATH")
    add_common_data(m)


# -- eval ------------------------------------------------------------------------------------------
def cmd_eval(args) -> int:
    from engine.data import DataError, load_dataset
    from engine.errors import EncoderError
    from engine.eval import extract_features, knn_accuracy, linear_probe, raw_pixel_features, refit_batchnorm
    from engine.params import ConfigError
    from engine.training.device import resolve_device

    if args.refit_norm < 0:
        return usage_error(f"--refit-norm {args.refit_norm}: give a number of batches, 1 or more (0: no refit)")

    try:
        device = resolve_device(args.device)
        choice = choose_encoder(args, device)
        size = choice.image_size
        train = load_dataset(args.train_data, size)
        test = load_dataset(args.test_data, size)
    except (ConfigError, DataError, EncoderError) as exc:
        return usage_error(str(exc))
    for flag, part in (("--train-data", train), ("--test-data", test)):
        if not part.labelled:
            from engine.data import why_unlabelled

            return usage_error(f"{flag} {part.source} {why_unlabelled(part)}; eval needs labelled --train-data and "
                               "--test-data")
    if train.class_names != test.class_names:
        return usage_error(f"the classes of --train-data ({len(train.class_names)}) and --test-data "
                           f"({len(test.class_names)}) differ; use two splits of the same dataset")
    c = train.num_classes
    ytr, yte = train.labels, test.labels
    out = {**choice.about, "num_train": len(train), "num_test": len(test), "k": args.k}

    def score(ftr, fte, prefix):
        top1, top5 = knn_accuracy(ftr, ytr, fte, yte, c, args.k, args.temperature)
        out[f"{prefix}knn_top1"] = round(top1, 4)
        if top5 is not None:
            out[f"{prefix}knn_top5"] = round(top5, 4)
        if args.probe_epochs:
            out[f"{prefix}linear_top1"] = round(linear_probe(ftr, ytr, fte, yte, c, epochs=args.probe_epochs), 4)

    def score_encoder(enc, prefix):
        def features():
            return extract_features(enc, train, device=device), extract_features(enc, test, device=device)

        score(*features(), prefix)
        if args.refit_norm:
            if refit_batchnorm(enc, train, args.refit_norm, seed=choice.seed, device=device):
                score(*features(), f"refit_{prefix}")
            else:
                out[f"refit_{prefix}note"] = "no BatchNorm layers: nothing to refit"

    t0 = time.time()
    score_encoder(choice.encoder, "")
    if not args.no_baselines:
        score_encoder(random_like(choice, device), "random_init_")
        score(raw_pixel_features(train), raw_pixel_features(test), "raw_pixels_")
    out["eval_s"] = round(time.time() - t0, 1)
    for k, v in out.items():
        if k.endswith("_top1"):
            print(f"{k:28s} {v:.4f}", file=sys.stderr)
    print(json.dumps(out))
    return 0


# -- embed -----------------------------------------------------------------------------------------
def cmd_embed(args) -> int:
    import numpy as np

    from engine.data import DataError, load_dataset
    from engine.errors import EncoderError
    from engine.eval import extract_features
    from engine.eval.projection import project
    from engine.params import ConfigError
    from engine.training.device import resolve_device

    if not args.out and not args.run:
        return usage_error("with --encoder, say where to write the embedding: --out PATH (PATH.npz and PATH.csv)")
    if args.max_images < 1:
        return usage_error(f"--max-images must be at least 1, got {args.max_images}")
    try:
        device = resolve_device(args.device)
        choice = choose_encoder(args, device)
        data = load_dataset(args.data, choice.image_size)
    except (ConfigError, DataError, EncoderError) as exc:
        return usage_error(str(exc))
    idx = np.arange(len(data))
    if len(idx) > args.max_images:
        idx = np.sort(np.random.default_rng(0).choice(len(idx), args.max_images, replace=False))
    feats = extract_features(choice.encoder, data, idx, device=device).numpy()
    labels = data.get_labels(idx)
    labels = labels.cpu().numpy() if labels is not None else np.full(len(idx), -1)
    out = Path(args.out) if args.out else Path(args.run) / "export" / "embedding"
    if args.format == "tensorboard":
        from engine.eval.export import write_projector
        from engine.eval.protocol import thumbnails

        all_paths = getattr(data, "paths", None)
        folder = write_projector(out, feats, labels, idx, thumbnails(data, idx, 32),
                                 class_names=getattr(data, "class_names", None),
                                 paths=[all_paths[i] for i in idx] if all_paths else None)
        print(json.dumps({"projector": str(folder), "num_images": len(idx), "feature_dim": int(feats.shape[1]),
                          "view": f"tensorboard --logdir {folder}"}))
        return 0
    from engine.eval.export import write_embedding

    coords = project(feats, args.projection) if args.projection != "none" else np.zeros((len(feats), 2), np.float32)
    paths = write_embedding(out, feats, coords, labels, idx, data)
    print(json.dumps({"npz": str(paths[0]), "csv": str(paths[1]), "num_images": len(idx),
                      "feature_dim": int(feats.shape[1])}))
    return 0


__all__ = ["add_parsers", "cmd_eval", "cmd_embed"]
