"""Compare every method under the same time budget: kNN top-1 on a labelled validation set.

    python bench/methods.py                       # every method, 3 minutes each, on the CPU
    python bench/methods.py --minutes 0.5 --methods rotnet,simclr,byol
    python bench/methods.py --data builtin:shapes:2000 --minutes 2   # the built-in shapes
    python bench/methods.py --data builtin:clips --minutes 1   # the video methods, on clips

Each method trains with its own recommended settings (``default_config``: its optimiser, learning
rate, batch size and options; backbone ``auto``) on ``--data`` for ``--minutes`` of training time
through the engine's :class:`Session`, exactly as ``main.py train`` does; the encoder is then scored
by weighted kNN (k=20, T=0.07) on ``--eval-data`` with the training images as the memory bank.
A dataset with its own test split (``builtin:shapes[:N]``, torchvision train splits) is scored on
that split unless ``--eval-data`` names another set.
Baselines in the same table: the untrained encoder (random init, the lower bound) of every backbone
the methods used (each method is compared with the random init of its own backbone: MAE's ViT
with a random ViT), raw pixels, and the same encoder trained with labels for the same time
(supervised, the upper bound).

With ``--runs-root DIR`` the run folders are kept, and a later call with the same settings and the
same DIR reuses every run that finished there instead of training it again: an interrupted
comparison goes on where it stopped.

On clips (``--data builtin:clips``, ``clips:FOLDER`` or a folder of videos) the methods are the
ones that train on clips (``input_kind == "clips"``); kNN embeds single frames (each clip's middle
frame) and the evaluation set defaults to the dataset's own (``builtin:clips-test``). The
supervised bound is left out there (it trains on images).

Writes the table as markdown (``--out``, for the README) and prints one JSON object as its last line.
With ``--record`` (the defaults on one of the three sets the workbench measures: ``builtin:shapes``,
``builtin:clips``, ``cifar10-small/train``) each method's row is also kept in ``engine/methods/measured.json``,
from which the Run view and ``main.py methods`` say, before Start, how the method did on such data.
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

DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "cifar10-small"
REFERENCES = ("random_init", "supervised")
# the sets whose rows --record keeps (engine.specs.measured_kind names them), with the margin over an untrained
# encoder each aims at
MEASURED_SETS = {
    "shapes": {"data": "builtin:shapes", "words": "the built-in shapes", "target": 0.15},
    "photos": {"data": "cifar10-small/train", "words": "cifar10-small (32-pixel photographs)", "target": 0.05},
    "clips": {"data": "builtin:clips", "words": "the built-in clips", "target": 0.10},
}


def ssl_methods(kind: str = "images") -> list[str]:
    from engine.methods import METHODS

    return [n for n, cls in METHODS.items() if cls.trains and not cls.needs_labels and cls.input_kind == kind]


def clip_data(spec: str) -> bool:
    """Whether ``spec`` names clips (the video methods' data) rather than images."""
    low = spec.strip().lower()
    if low.startswith(("builtin:clips", "clips")):
        return True
    if ":" in low.split("/")[0]:
        return False
    from engine.data.clip_folder import holds_clips

    return Path(spec).is_dir() and holds_clips(Path(spec))


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bench/methods.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=3.0, help="training time per method (default 3)")
    p.add_argument("--methods", default="all", help="comma-separated methods (default: every self-supervised "
                   "method); random init, raw pixels and supervised are always added")
    p.add_argument("--data", default=str(DEFAULT_DATA / "train"), help="training images: class folders or any "
                   "dataset spec, e.g. builtin:shapes:2000 (default: cifar10-small/train)")
    p.add_argument("--eval-data", default=None, help="labelled images to score (default: the data's own test "
                   "split when it has one, as builtin:shapes does; else cifar10-small/val)")
    p.add_argument("--image-size", type=int, default=32, help="image size in pixels (default 32)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"],
                   help="where to train (default cpu: the table compares the CPU defaults)")
    p.add_argument("--backbone", default="auto", help="encoder for every method (default auto: small_cnn on "
                   "the CPU, vit_mini for ViT-only methods; resnet18 / vit_tiny on a GPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default 0: torch's choice; "
                   "1 is often faster on a CPU that other jobs share)")
    p.add_argument("--probe-epochs", type=int, default=0, help="also run a linear probe of this many epochs "
                   "(default 0: kNN only)")
    p.add_argument("--no-supervised", action="store_true", help="skip the supervised upper bound")
    p.add_argument("--recipe", action="store_true", help="train each method with its recipe that learns on this "
                   "data where it has one (as `main.py train --recipe`: its budget, in minutes or epochs, replaces "
                   "--minutes where longer)")
    p.add_argument("--runs-root", default="", help="keep the run folders here (default: a temporary folder); "
                   "runs that finished there with the same settings are reused, not trained again")
    p.add_argument("--out", default="", help="markdown table to write (default bench/results/methods.md; "
                   "bench/results/methods_shapes.md for the built-in shapes)")
    p.add_argument("--record", action="store_true", help="also keep each method's row in engine/methods/measured.json "
                   "(what the Run view says before Start); only the defaults (no --recipe, --backbone or "
                   "--image-size) on builtin:shapes, builtin:clips or cifar10-small/train, on the CPU")
    args = p.parse_args(argv)
    if args.record:
        why = record_refusal(args)
        if why:
            p.error(why)
    if args.eval_data is None:
        args.eval_data = "" if has_own_test_split(args.data) or clip_data(args.data) else str(DEFAULT_DATA / "val")
    if not args.out:
        name = "methods_shapes.md" if is_builtin(args.data) else "methods.md"
        args.out = str(ROOT / "bench" / "results" / name)
    return args


def is_builtin(spec: str) -> bool:
    from engine.data import describe_spec

    try:
        return describe_spec(spec) == "builtin"
    except Exception:  # noqa: BLE001 - an empty spec is reported later
        return False


def has_own_test_split(spec: str) -> bool:
    """Built-in and torchvision train sets name their test split themselves (``eval_source``)."""
    from engine.data import describe_spec

    try:
        kind = describe_spec(spec)
    except Exception:  # noqa: BLE001
        return False
    return kind == "builtin" or (kind == "torchvision" and "@" not in spec.split(":", 2)[1])


def eval_name(args) -> str:
    """What the table says it scored on."""
    if args.eval_data:
        return Path(args.eval_data).name if not is_builtin(args.eval_data) else args.eval_data
    return "the test split of " + (args.data if is_builtin(args.data) else Path(args.data).name)


SAME_RUN_KEYS = ("method", "backbone", "minutes", "epochs", "device", "seed", "data", "optim", "method_options")


def finished_run(cfg, runs_root: str) -> Path | None:
    """A run folder in ``runs_root`` that trained ``cfg`` to the end (same settings), if any."""
    want = cfg.to_dict()
    auto = not want["optim"]["batch_size"]  # a run took auto's batch (and learning rate) for its device
    for d in sorted(Path(runs_root).glob(f"*-{cfg.name}"), reverse=True):
        try:
            have = json.loads((d / "config.json").read_text())
            status = json.loads((d / "status.json").read_text())
            if not (d / "results.json").exists() or status.get("state") not in ("finished", "completed", None):
                continue
        except (OSError, ValueError):
            continue
        if auto:
            want["optim"].update({k: have.get("optim", {}).get(k) for k in ("batch_size", "lr")})
        if all(have.get(k) == want.get(k) for k in SAME_RUN_KEYS) and \
                have.get("eval", {}).get("linear_probe_epochs") == want["eval"]["linear_probe_epochs"]:
            return d
    return None


def run_method(method: str, args, runs_root: str, backbone: str | None = None, name: str = "",
               image_size: int | None = None) -> dict:
    from engine import messages as M
    from engine.config import default_config
    from engine.session import Session

    cfg = default_config(
        method, minutes=args.minutes, epochs=0, device=args.device, seed=args.seed,
        backbone=backbone or args.backbone, runs_root=runs_root, name=f"bench-{name or method}",
        checkpoint_every_minutes=0.0,
        data={"spec": args.data, "eval_spec": args.eval_data, "image_size": image_size or args.image_size},
        eval={"knn_every_epochs": 0, "embed_every_epochs": 0, "final_eval": True,
              "linear_probe_epochs": args.probe_epochs})
    if args.recipe and method not in REFERENCES:
        from engine.cli import apply_recipe
        from engine.config import RunConfig

        d = cfg.to_dict()
        recipe = apply_recipe(d)
        cfg = RunConfig.from_dict(d)
    else:
        recipe = {}
    done = finished_run(cfg, runs_root) if args.runs_root else None
    if done is not None:
        return {**row_from_run(method, done, cfg, reused=True), "recipe": recipe}
    last: dict = {}

    def emit(msg):
        if isinstance(msg, M.StepMetrics):
            last.update(msg.values)
        elif isinstance(msg, M.RunFailed):
            last["error"] = msg.error

    t0 = time.time()
    summary = Session(cfg, emit).run()
    if summary.get("reason") == "failed":
        return {"method": method, "wall_s": round(time.time() - t0, 1),
                "error": summary.get("error") or last.get("error", "failed")}
    out = row_from_run(method, Path(summary["run_dir"]), cfg)
    out["recipe"] = recipe
    out["wall_s"] = round(time.time() - t0, 1)
    if "loss" in last:
        out["final_loss"] = round(last["loss"], 4)
    if "images_per_s" in last:
        out["images_per_s"] = round(last["images_per_s"], 1)
    return out


def record_kind(data: str) -> str | None:
    """The measured set (a key of MEASURED_SETS) that training data ``data`` is, or None."""
    from engine.specs import measured_kind

    kind = measured_kind(data)
    if kind is None:
        return None
    name = data.strip().replace("\\", "/").rstrip("/")
    want = MEASURED_SETS[kind]["data"]
    # the very set the words name: its whole count, the cifar10-small training folder
    return kind if name == want or (kind == "photos" and name.endswith("/" + want)) else None


def record_refusal(args) -> str:
    """Why --record cannot keep this bench's rows ("" where it can)."""
    if record_kind(args.data) is None:
        return (f"--record keeps rows of {', '.join(s['data'] for s in MEASURED_SETS.values())} only, not "
                f"{args.data}; drop --record")
    if args.recipe or args.backbone != "auto" or args.image_size != 32 or args.device != "cpu":
        return "--record keeps each method's defaults on the CPU: drop --recipe, --backbone, --image-size, --device"
    from engine.methods import MEASURED_FILE

    try:  # found out now, not after the whole bench has trained
        if MEASURED_FILE.exists() and not isinstance(json.loads(MEASURED_FILE.read_text(encoding="utf-8")), dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        return f"--record cannot read {MEASURED_FILE} ({exc}); restore it with git checkout, or drop --record"
    return ""


def measured_json(sets: dict) -> str:
    """engine/methods/measured.json's text: a set's fields on one line, then one line per method."""
    lines = ["{"]
    for i, (kind, s) in enumerate(sets.items()):
        head = json.dumps({k: v for k, v in s.items() if k != "methods"})[1:-1]
        lines.append(f' "{kind}": {{{head}, "methods": {{')
        rows = list((s.get("methods") or {}).items())
        lines += [f'  "{m}": {json.dumps(r)}' + ("," if j < len(rows) - 1 else "") for j, (m, r) in enumerate(rows)]
        lines.append(" }}" + ("," if i < len(sets) - 1 else ""))
    return "\n".join(lines + ["}"]) + "\n"


def record(rows: list[dict], args, base: dict[str, float], default: float | None, path: Path | None = None) -> Path:
    """Keep each trained method's row (kNN and its own untrained encoder's, steps, epochs, minutes, date) in the
    measured file under the data's set; other methods' rows stay."""
    from engine.methods import MEASURED_FILE
    from engine.runs import atomic_write_text

    path = path or MEASURED_FILE
    kind = record_kind(args.data)
    sets = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    s = sets.setdefault(kind, {})
    s.update(MEASURED_SETS[kind])
    out = Path(args.out).resolve()
    s["table"] = out.relative_to(ROOT).as_posix() if out.is_relative_to(ROOT) else out.name
    methods = s.setdefault("methods", {})
    for r in rows:
        ri = own_baseline(r, base, default, args.image_size)
        if r["method"] in REFERENCES + ("raw_pixels",) or r.get("knn_top1") is None or ri is None or "error" in r:
            continue
        methods[r["method"]] = {"backbone": r.get("backbone"), "batch": r.get("batch_size"), "steps": r.get("steps"),
                                "epochs": r.get("epochs"), "knn": round(r["knn_top1"], 3),
                                "random_init": round(ri, 3), "minutes": args.minutes,
                                "date": time.strftime("%Y-%m-%d")}
    atomic_write_text(path, measured_json(sets))  # an interrupted write leaves the old file whole
    return path


def row_from_run(method: str, run_dir: Path, cfg, reused: bool = False) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    status = json.loads((run_dir / "status.json").read_text())
    step = int(results.get("step", status.get("step", 0)) or 0)
    out = {"method": method, "run_dir": str(run_dir)}
    out.update({k: results.get(k) for k in ("backbone", "knn_top1", "knn_top5", "linear_top1")})
    config = json.loads((run_dir / "config.json").read_text())
    optim = config["optim"]  # as the run took it (auto resolved)
    out["image_size"] = int(config.get("data", {}).get("image_size") or cfg.data.image_size)
    bs = optim["batch_size"]
    images = step * min(bs, results.get("num_train") or bs)
    out.update({"steps": step, "train_time_s": results.get("train_time_s", status.get("train_time_s")),
                "epochs": round(images / results["num_train"], 2) if results.get("num_train") else None,
                "batch_size": bs, "optimizer": optim["optimizer"], "lr": optim["lr"]})
    if reused:
        out["reused"] = True
    return out


def raw_pixels(args) -> dict:
    from engine.data import load_dataset
    from engine.eval import knn_accuracy, raw_pixel_features

    train = load_dataset(args.data, args.image_size)
    test = load_dataset(args.eval_data or train.eval_source, args.image_size)
    top1, top5 = knn_accuracy(raw_pixel_features(train), train.labels, raw_pixel_features(test), test.labels,
                              test.num_classes, 20, 0.07)
    return {"method": "raw_pixels", "knn_top1": top1, "knn_top5": top5, "backbone": "-"}


def fmt(v, spec=".3f") -> str:
    return "-" if v is None else format(v, spec)


def baseline_key(row: dict, image_size: int) -> str | None:
    """Which random-init encoder a row is compared with: its backbone's, at the row's image size (a recipe may
    change it; ``image_size`` is the bench's own)."""
    b, size = row.get("backbone"), row.get("image_size")
    return b if not b or size in (None, image_size) else f"{b} at {size} px"


def baselines(rows: list[dict], image_size: int) -> dict[str, float]:
    """kNN top-1 of the random-init encoder of each backbone (and image size other than the bench's)."""
    return {baseline_key(r, image_size): r["knn_top1"] for r in rows
            if r["method"] == "random_init" and r.get("knn_top1") is not None and r.get("backbone")}


def own_baseline(row: dict, base: dict[str, float], default: float | None, image_size: int) -> float | None:
    return base.get(baseline_key(row, image_size), default)


def markdown(rows: list[dict], args, baseline: float | None) -> str:
    from engine.methods import METHODS
    from engine.specs import setting_text

    data = args.data if is_builtin(args.data) else Path(args.data).name
    recipes = args.recipe
    command = f"python bench/methods.py --minutes {args.minutes:g}" + \
        (f" --data {args.data}" if is_builtin(args.data) else "") + (" --recipe" if recipes else "")
    budget = (f"each method with its recipe that learns on this data where it has one (the recipe column), "
              f"else {args.minutes:g} min of training") if recipes else f"{args.minutes:g} min of training per method"
    lines = [f"kNN top-1 on `{eval_name(args)}` (k=20) after {budget} "
             f"on `{data}`, device {args.device}, image size {args.image_size}, seed {args.seed}. "
             f"Made by `{command}`.", "",
             "| method | family | backbone | batch | steps | epochs | kNN top-1 | kNN top-5 | vs random init "
             "(same backbone) |" + (" recipe |" if recipes else ""),
             "|---|---|---|---:|---:|---:|---:|---:|---:|" + ("---|" if recipes else "")]
    base = baselines(rows, args.image_size)
    for r in rows:
        name = r["method"]
        fam = METHODS[name].family if name in METHODS else "reference"
        if "error" in r:
            lines.append(f"| {name} | {fam} | - | - | - | - | failed: {r['error'][:60]} | - | - |"
                         + (" - |" if recipes else ""))
            continue
        ref = own_baseline(r, base, baseline, args.image_size)
        delta = "-" if ref is None or r.get("knn_top1") is None or name == "random_init" else \
            f"{r['knn_top1'] - ref:+.3f}"
        recipe = (" " + (", ".join(f"{k} {setting_text(k, v)}" for k, v in r["recipe"].items()) if r.get("recipe")
                         else "-")
                  + " |") if recipes else ""
        lines.append(f"| {name} | {fam} | {baseline_key(r, args.image_size) or '-'} | {r.get('batch_size', '-')} | "
                     f"{r.get('steps', '-')} | {fmt(r.get('epochs'), '.2f')} | {fmt(r.get('knn_top1'))} | "
                     f"{fmt(r.get('knn_top5'))} | {delta} |{recipe}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from engine.methods import METHODS

    if args.threads:
        torch.set_num_threads(args.threads)

    clips = clip_data(args.data)
    methods = ssl_methods("clips" if clips else "images") if args.methods == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        print(f"error: unknown method(s) {', '.join(unknown)}; choose from: {', '.join(METHODS)}", file=sys.stderr)
        return 2
    for p in (args.data, args.eval_data):
        if p and ":" not in p.split("/")[0] and not Path(p).exists():
            print(f"error: {p} does not exist; pass --data / --eval-data", file=sys.stderr)
            return 2
    refs = ["random_init"] + ([] if args.no_supervised or clips else ["supervised"])
    order = refs[:1] + [m for m in methods if m not in REFERENCES] + refs[1:]
    tmp = None
    runs_root = args.runs_root
    if not runs_root:
        tmp = tempfile.TemporaryDirectory(prefix="sslwb-bench-")
        runs_root = tmp.name
    rows = []
    try:
        for i, m in enumerate(order):
            print(f"[{i + 1}/{len(order) + 1}] {m}: training " + ("(its recipe where it has one) " if args.recipe else
                  f"{args.minutes:g} min ") + "...", file=sys.stderr, flush=True)
            r = run_method(m, args, runs_root)
            rows.append(r)
            print(f"    {m}: kNN top-1 {fmt(r.get('knn_top1'))}" + (f"  ERROR {r['error']}" if "error" in r else ""),
                  file=sys.stderr, flush=True)
        # the lower bound of every other backbone the methods used (MAE's ViT, say), and of another image size a
        # recipe chose: an untrained one
        first = rows[0].get("backbone") if rows and rows[0]["method"] == "random_init" else None
        extra = sorted({(r.get("backbone"), r.get("image_size") or args.image_size) for r in rows
                        if r.get("backbone") not in (None, "-") and r["method"] != "random_init"}
                       - {(first, args.image_size)}) if first else []
        for b, size in extra:
            print(f"    random init of {b}" + (f" at {size} px" if size != args.image_size else ""), file=sys.stderr,
                  flush=True)
            rows.insert(1, run_method("random_init", args, runs_root, backbone=b, image_size=size,
                                      name=f"random_init-{b}" + (f"-{size}px" if size != args.image_size else "")))
        print(f"[{len(order) + 1}/{len(order) + 1}] raw pixels", file=sys.stderr, flush=True)
        rows.insert(1 + len(extra), raw_pixels(args))
    finally:
        if tmp is not None:
            tmp.cleanup()
    baseline = next((r.get("knn_top1") for r in rows if r["method"] == "random_init"), None)
    table = markdown(rows, args, baseline)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    print(table, file=sys.stderr)
    base = baselines(rows, args.image_size)
    not_beating = [r["method"] for r in rows if r["method"] not in ("random_init", "raw_pixels")
                   and own_baseline(r, base, baseline, args.image_size) is not None
                   and (r.get("knn_top1") is None or r["knn_top1"] <= own_baseline(r, base, baseline, args.image_size))]
    if args.record:
        print(f"kept the rows in {record(rows, args, base, baseline)}", file=sys.stderr)
    print(json.dumps({"minutes": args.minutes, "device": args.device, "data": args.data, "eval_data": args.eval_data,
                      "random_init_knn_top1": baseline, "random_init_by_backbone": base,
                      "not_beating_random_init": not_beating,
                      "markdown": str(out), "results": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
