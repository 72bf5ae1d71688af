"""Label efficiency, timed: the whole curve for a run's encoder and its baselines.

    python bench/downstream.py --run RUNS/simclr --supervised RUNS/supervised
    python bench/downstream.py --run RUNS/simclr --png docs/downstream.png --csv downstream.csv

Three encoders (the run's, a random init of its backbone - fine-tuned, it is training from scratch -
and a supervised run's), 7 label budgets (1, 2, 5, 10, 25, 100, all labels per class), 3 modes
(linear, finetune, knn) and 3 seeds: 189 fits with the engine's CPU defaults
(:func:`engine.eval.downstream.run_downstream`), labels drawn from ``--train-data`` and scored on
``--test-data``. Reports wall time and the process's CPU time (on a shared machine the CPU time
divided by the threads is what an idle machine would take), the headline figures (the run's
linear read-out at 10 labels per class against training from scratch on the same labels) and
every point. ``--png`` draws the curve (pyqtgraph, offscreen; see ``bench/downstream_plot.py``).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "cifar10-small"
BUDGET_S = 600.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bench/downstream.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="the run folder whose encoder is evaluated (e.g. SimCLR)")
    p.add_argument("--supervised", default="", help="a supervised run folder (the third encoder)")
    p.add_argument("--train-data", default=str(DEFAULT_DATA / "train"), help="labelled images for the subsets")
    p.add_argument("--test-data", default=str(DEFAULT_DATA / "val"), help="labelled images to score")
    p.add_argument("--labels-per-class", default="1,2,5,10,25,100,all")
    p.add_argument("--modes", default="linear,finetune,knn")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default 0: torch's choice)")
    p.add_argument("--csv", default="", help="write every point as CSV here")
    p.add_argument("--json", default="", help="write the whole result (points and fits) as JSON here")
    p.add_argument("--png", default="", help="draw the label-efficiency curve here")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from engine.data import load_dataset
    from engine.eval.downstream import (
        DownstreamConfig,
        EncoderSource,
        parse_budgets,
        parse_modes,
        results_table,
        run_downstream,
    )
    from engine.training.checkpoints import load_run_encoder

    enc, cfg, bname = load_run_encoder(args.run)
    size = cfg.data.image_size
    sources = [EncoderSource.from_module(cfg.method, enc, key="run"),
               EncoderSource.random_init(bname, size)]
    if args.supervised:
        senc, scfg, _ = load_run_encoder(args.supervised)
        sources.append(EncoderSource.from_module("supervised", senc, key="supervised"))
    train = load_dataset(args.train_data, size)
    test = load_dataset(args.test_data, size)
    dcfg = DownstreamConfig(labels_per_class=parse_budgets(args.labels_per_class), modes=parse_modes(args.modes),
                            seeds=args.seeds)
    t0, c0 = time.monotonic(), time.process_time()

    def progress(done, total, text):
        print(f"[{done}/{total}] {time.monotonic() - t0:6.1f}s {text}", file=sys.stderr, flush=True)

    res = run_downstream(sources, train, test, dcfg, progress=progress)
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    print(results_table(res.points), file=sys.stderr)
    d = res.to_dict()
    by = {(p["encoder"], p["mode"], p["labels_per_class"]): p for p in d["results"]}
    figures = {}
    lin = by.get((cfg.method, "linear", 10))
    scratch = by.get(("random_init", "finetune", 10))
    if lin and scratch:
        figures = {f"{cfg.method}_linear_10": round(lin["top1_mean"], 4),
                   "scratch_finetune_10": round(scratch["top1_mean"], 4),
                   "gap": round(lin["top1_mean"] - scratch["top1_mean"], 4)}
    threads = torch.get_num_threads()
    title = f"{cfg.method} ({bname}): top-1 on {Path(args.test_data).name} against labels per class"
    mode_s = {}
    for f in res.fits:
        mode_s[f.mode] = mode_s.get(f.mode, 0.0) + f.seconds
    out = {"bench": "downstream", "run": str(args.run), "supervised": args.supervised,
           "encoders": [s.name for s in sources], "num_train": len(train), "num_classes": res.num_classes,
           "title": title, "fits": len(res.fits), "points": len(res.points),
           "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "threads": threads,
           "idle_estimate_s": round(cpu / threads, 1), "budget_s": BUDGET_S,
           "fit_seconds_by_mode": {k: round(v, 1) for k, v in mode_s.items()},
           "finetune_steps": dcfg.finetune.steps, "figures": figures, "notes": res.notes,
           "date": time.strftime("%Y-%m-%d"), "results": d["results"]}
    if args.json:
        Path(args.json).write_text(json.dumps({**out, "fits_detail": d["fits"]}, indent=1))
    if args.csv:
        from bench.downstream_plot import write_csv

        write_csv(d["results"], args.csv)
    if args.png:
        from bench.downstream_plot import plot_png

        plot_png(d["results"], args.png, title=title, num_train=len(train), num_classes=res.num_classes)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
