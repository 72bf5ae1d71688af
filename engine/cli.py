"""The headless command line: ``python main.py train|eval|embed|methods ...``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from engine.commands import config_to_command, slurm_script, torchrun_command  # noqa: F401 - re-exported
from engine.errors import EXIT_INTERRUPTED, EXIT_USAGE, WorkbenchError, exit_code_for, run_exit_code


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (what went wrong and what is allowed) and exit status 2."""

    def error(self, message: str):  # noqa: D401
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _batch_size(text: str) -> int:
    """``--batch-size``: a number, or ``auto`` (0)."""
    if text.strip().lower() == "auto":
        return 0
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of images (or auto)") from None


def usage_error(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def check_run_folder(path: str | Path, flag: str = "--run") -> Path:
    """``path`` as a run folder, or a :class:`UsageError` saying what it is instead."""
    from engine.errors import UsageError

    path = Path(path).expanduser()
    if not path.exists():
        raise UsageError(f"{flag} {path} does not exist; give a run folder that `python main.py train` wrote")
    if not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a run folder; give the folder that holds config.json")
    if not (path / "config.json").is_file():
        raise UsageError(f"{flag} {path} is not a run folder (it has no config.json); give a folder that "
                         "`python main.py train` wrote")
    return path


def check_run_config(cfg) -> None:
    """Refuse a bad dataset, device or backbone before any run folder is made, so that bad input
    never leaves a stub run behind (raises DataError/ConfigError; cheap: a folder scan, one
    decoded image, the backbone built on the meta device)."""
    import torch

    from engine.data import check_dataset
    from engine.methods import get_method_class
    from engine.models import build_backbone, default_backbone
    from engine.params import ConfigError
    from engine.training.device import resolve_device

    cls = get_method_class(cfg.method)
    if not cfg.epochs and not cfg.minutes:
        raise ConfigError("epochs", "set a budget: --epochs E or --minutes M (one must be above 0)")
    device = resolve_device(cfg.device)
    name = cfg.backbone
    if name == "auto":
        name = default_backbone(device.type, "vit" if cls.backbone_kind == "vit" else "cnn")
    with torch.device("meta"):
        kind = getattr(build_backbone(name, cfg.data.image_size), "kind", "cnn")
    if cls.backbone_kind != "any" and kind != cls.backbone_kind:
        raise ConfigError("backbone", f"{cfg.method} needs a {'ViT' if cls.backbone_kind == 'vit' else 'CNN'} "
                                      f"backbone, not {name}; choose another --backbone or auto")
    info = check_dataset(cfg.data.spec, cfg.data.image_size)
    if cfg.data.eval_spec:
        check_dataset(cfg.data.eval_spec, cfg.data.image_size)
    if cls.needs_labels and info.get("labelled") is False:
        raise ConfigError("method", f"{cfg.method} needs labels, and {cfg.data.spec} is unlabeled; "
                                    "choose a dataset with class folders or another method")


def _add_common_data(p):
    p.add_argument("--image-size", type=int, default=None, metavar="PX",
                   help="resize images to PX x PX (default: the config's, 32)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="where to compute (default: auto = CUDA, then MPS, then CPU)")


def build_parser() -> argparse.ArgumentParser:
    from engine.methods import method_names
    from engine.models import backbone_names

    parser = Parser(prog="main.py", description="SSL Workbench: explore visual self-supervised learning. "
                    "Without a command it opens the workbench window.")
    parser.add_argument("--screenshot", metavar="PATH", help="open the window, save a PNG of it to PATH, exit")
    parser.add_argument("--view", metavar="NAME", help="with --screenshot: the view to show (data, pretext, "
                        "run, curves, embedding, inspector, history)")
    parser.add_argument("--data", metavar="SPEC", help="with the window: the dataset to open")
    parser.add_argument("--open", metavar="RUN_DIR", help="with the window: show a run folder's curves "
                        "(live while it trains)")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)

    t = sub.add_parser("train", help="train a self-supervised encoder headless",
                       description="Train a self-supervised encoder. Progress is printed; Ctrl-C stops "
                       "cleanly with a checkpoint (resume with --resume).")
    t.add_argument("--method", choices=method_names(), metavar="NAME",
                   help=f"the method: {', '.join(method_names())} (default: simclr)")
    t.add_argument("--data", metavar="SPEC", help="builtin:shapes[:N][?shortcut=colour] (default; the "
                   "shortcut variant gives every image its own colours), an image folder, "
                   "or torchvision:NAME[@SPLIT][:ROOT]")
    t.add_argument("--eval-data", metavar="SPEC", help="labelled data for kNN/linear evaluation "
                   "(default: the dataset's test split, or a held-out part)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, metavar="M", help="train for M minutes of training time")
    budget.add_argument("--epochs", type=int, metavar="E", help="train for E epochs")
    t.add_argument("--batch-size", type=_batch_size, metavar="B", help="images per step over all processes, or "
                   "auto (the default): the method's batch on a CPU; on a GPU a larger one sized to its free "
                   "memory, with the learning rate scaled to it")
    t.add_argument("--lr", type=float, metavar="LR", help="peak learning rate (default: the method's)")
    t.add_argument("--backbone", metavar="NAME", help=f"auto (default), {', '.join(backbone_names())}")
    _add_common_data(t)
    t.add_argument("--seed", type=int, help="random seed (default 0)")
    t.add_argument("--run-dir", metavar="DIR", help="write the run to DIR (default: a new folder in runs/)")
    t.add_argument("--runs-root", metavar="DIR", help="folder for new run folders (default: runs)")
    t.add_argument("--name", help="a name for the run folder")
    t.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last checkpoint")
    t.add_argument("--config", metavar="FILE", help="start from a saved config JSON (flags override it)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="set any config value, e.g. --set temperature=0.5 (a method option) or "
                        "--set optim.weight_decay=0.01 or --set eval.knn_every_epochs=2")
    t.add_argument("--download", action="store_true", help="allow torchvision datasets to be downloaded")
    t.add_argument("--no-final-eval", action="store_true", help="skip kNN and the linear probe at the end")
    t.add_argument("--compile", action="store_true", help="compile the training step with torch.compile "
                   "(GPU speed; the first steps are slow while it compiles)")
    t.add_argument("--no-gather", action="store_true", help="under torchrun: each process's loss sees only its "
                   "own batch (default: contrastive negatives, cross-correlations, variances and DINO's centre "
                   "over the global batch, gathered from every process; config key: gather)")
    t.add_argument("--sync-bn", choices=["auto", "on", "off"], help="under torchrun: BatchNorm statistics over "
                   "the global batch (default auto: on GPUs)")
    t.add_argument("--quiet", action="store_true", help="print only the final summary")

    e = sub.add_parser("eval", help="kNN and linear-probe accuracy of a run's encoder, with baselines",
                       description="Evaluate a run's encoder with kNN and a linear probe, next to a random-init "
                       "encoder of the same backbone and raw pixels. The last line is one JSON object.")
    e.add_argument("--run", required=True, metavar="DIR", help="the run folder")
    e.add_argument("--train-data", required=True, metavar="SPEC", help="labelled data for the kNN bank / probe")
    e.add_argument("--test-data", required=True, metavar="SPEC", help="labelled data to score")
    _add_common_data(e)
    e.add_argument("--k", type=int, default=20, help="neighbours for kNN (default 20)")
    e.add_argument("--temperature", type=float, default=0.07, help="kNN temperature (default 0.07)")
    e.add_argument("--probe-epochs", type=int, default=100, help="linear-probe epochs (default 100)")
    e.add_argument("--no-baselines", action="store_true", help="skip the random-init and raw-pixel baselines")

    m = sub.add_parser("embed", help="export a run's embeddings (features, 2-D map, labels, paths)",
                       description="Extract features of a dataset with a run's encoder and write them with a 2-D "
                       "projection as .npz and .csv.")
    m.add_argument("--run", required=True, metavar="DIR", help="the run folder")
    m.add_argument("--data", required=True, metavar="SPEC", help="the images to embed")
    m.add_argument("--out", metavar="PATH", help="output path without extension (default: RUN/export/embedding)")
    m.add_argument("--projection", default="umap", choices=["umap", "pca", "tsne", "none"],
                   help="2-D projection (default umap)")
    m.add_argument("--max-images", type=int, default=5000, help="embed at most this many images (default 5000)")
    _add_common_data(m)

    from engine.cli_downstream import add_parsers as add_downstream_parsers

    add_downstream_parsers(sub, _add_common_data)

    ms = sub.add_parser("methods", help="list the registered methods, one a line")
    ms.add_argument("--long", action="store_true", help="with their one-line summaries")
    return parser


# -- train -----------------------------------------------------------------------------------------
def _set_path(d: dict, key: str, value: str) -> None:
    """``--set a.b=v``: a dotted path into the config dict; a bare key is a method option
    unless it names a top-level field."""
    from engine.config import RunConfig

    top = set(RunConfig().to_dict())
    parts = key.split(".")
    if len(parts) == 1 and parts[0] not in top:
        parts = ["method_options", parts[0]]
    cur = d
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
        if not isinstance(cur, dict):
            raise ValueError(f"{key}: {p} is not a section")
    try:
        cur[parts[-1]] = json.loads(value)
    except ValueError:
        cur[parts[-1]] = value


def config_from_args(args):
    from engine.config import RunConfig, default_config

    if args.config:
        base = RunConfig.load(args.config).to_dict()
        if args.method and args.method != base["method"]:
            base = default_config(args.method, data={"spec": args.data or base["data"]["spec"]}).to_dict() | \
                {"data": base["data"], "eval": base["eval"]}
    else:
        base = default_config(args.method or "simclr", **({"data": {"spec": args.data}} if args.data else {})).to_dict()
    if args.data:
        base["data"]["spec"] = args.data
    if args.eval_data:
        base["data"]["eval_spec"] = args.eval_data
    if args.image_size is not None:
        base["data"]["image_size"] = args.image_size
    if args.download:
        base["data"]["download"] = True
    if args.minutes is not None:
        base["minutes"], base["epochs"] = args.minutes, 0
    elif args.epochs is not None:
        base["epochs"], base["minutes"] = args.epochs, 0.0
    elif not base.get("epochs") and not base.get("minutes"):
        base["minutes"] = 2.0
    for flag, section, key in (("batch_size", "optim", "batch_size"), ("lr", "optim", "lr")):
        v = getattr(args, flag)
        if v is not None:
            base[section][key] = v
    for flag in ("backbone", "seed", "name", "runs_root"):
        v = getattr(args, flag)
        if v is not None:
            base[flag] = v
    base["device"] = args.device
    if args.no_final_eval:
        base["eval"]["final_eval"] = False
    if args.compile:
        base["compile"] = True
    if args.no_gather:
        base["gather"] = False
    if args.sync_bn:
        base["sync_bn"] = args.sync_bn
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        _set_path(base, k.strip(), v.strip())
    return RunConfig.from_dict(base)


# -- config -> command line (the GUI's "copy as command") ----------------------------------------
class ProgressPrinter:
    """Prints a one-line progress bar (redrawn in place on a terminal, a line every 10 s otherwise)."""

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = 0.0
        self.width = 28

    def __call__(self, msg) -> None:
        from engine import messages as M

        if isinstance(msg, M.RunStarted):
            self._line(f"run {msg.run_dir} on {msg.device_name}: {msg.num_images} images, "
                       f"{msg.steps_per_epoch} steps/epoch" + (f" (resumed at step {msg.start_step})"
                                                               if msg.resumed else ""))
        elif isinstance(msg, M.Warning):
            self._line(f"note: {msg.text}")
        elif isinstance(msg, M.Collapse):
            self._line(f"warning (step {msg.step}): {msg.text}")
        elif isinstance(msg, M.StepMetrics) and not self.quiet:
            now = time.monotonic()
            if not self.tty and now - self.last < 10:
                return
            self.last = now
            filled = int(self.width * msg.progress)
            bar = "#" * filled + "-" * (self.width - filled)
            eta = f" ETA {_fmt_s(msg.eta_s)}" if msg.eta_s is not None else ""
            extra = "".join(f" {k} {v:.3f}" for k, v in msg.values.items() if k in ("pretext_acc", "train_acc"))
            text = (f"[{bar}] {msg.progress:5.1%} step {msg.step} ep {msg.epoch:.2f} loss {msg.values['loss']:.4f}"
                    f"{extra} {msg.values.get('images_per_s', 0):.0f} img/s{eta}")
            if self.tty:
                self.stream.write("\r" + text[:160].ljust(100))
                self.stream.flush()
            else:
                self._line(text)
        elif isinstance(msg, M.EvalResult) and msg.kind_name == "knn_monitor":
            vals = " ".join(f"{k} {v:.3f}" for k, v in msg.values.items())
            self._line(f"epoch {int(msg.epoch)}: {vals}")
        elif isinstance(msg, M.StateChanged) and msg.state == "evaluating":
            self._line("evaluating: kNN and linear probe ...")
        elif isinstance(msg, M.RunFailed):
            self._line(f"error: {msg.error}")

    def _line(self, text: str) -> None:
        if self.quiet and not text.startswith("error"):
            return
        if self.tty:
            self.stream.write("\r" + " " * 110 + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


# flags a --resume may carry: (attribute, config key, flag text)
_RESUME_FLAGS = (("method", "method", "--method"), ("data", "data.spec", "--data"),
                 ("eval_data", "data.eval_spec", "--eval-data"), ("image_size", "data.image_size", "--image-size"),
                 ("minutes", "minutes", "--minutes"), ("epochs", "epochs", "--epochs"),
                 ("batch_size", "optim.batch_size", "--batch-size"), ("lr", "optim.lr", "--lr"),
                 ("backbone", "backbone", "--backbone"), ("seed", "seed", "--seed"), ("name", "name", "--name"),
                 ("runs_root", "runs_root", "--runs-root"))


def resume_changes(args) -> tuple[dict, dict]:
    """The config changes a ``train --resume`` command line asks for: ({dotted key: value},
    {dotted key: the flag that asked}). Every flag given is in it: none is silently ignored."""
    from engine.errors import UsageError
    from engine.training.resume import flatten

    for attr, flag in (("config", "--config"), ("run_dir", "--run-dir")):
        if getattr(args, attr):
            raise UsageError(f"{flag} cannot be combined with --resume (a resumed run keeps its own folder and "
                             "config.json); leave it out, or start a new run")
    changes, names = {}, {}
    for attr, key, flag in _RESUME_FLAGS:
        v = getattr(args, attr)
        if v is not None:
            changes[key], names[key] = v, flag
    if args.minutes is not None:
        changes["epochs"], names["epochs"] = 0, "--minutes"  # a budget flag names the whole budget
    elif args.epochs is not None:
        changes["minutes"], names["minutes"] = 0.0, "--epochs"
    if args.device != "auto":
        changes["device"], names["device"] = args.device, "--device"
    if args.download:
        changes["data.download"], names["data.download"] = True, "--download"
    if args.no_final_eval:
        changes["eval.final_eval"], names["eval.final_eval"] = False, "--no-final-eval"
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        d: dict = {}
        _set_path(d, k.strip(), v.strip())
        for key, value in flatten(d).items():
            changes[key], names[key] = value, f"--set {item}"
    return changes, names


def cmd_train(args) -> int:
    from engine.data import DataError
    from engine.params import ConfigError
    from engine.session import FlagControl, Session, resume_config
    from engine.training.resume import apply_resume_changes

    resume = False
    run_dir = None
    try:
        if args.resume:
            run_dir = check_run_folder(args.resume, "--resume")
            cfg = resume_config(run_dir)
            if not (run_dir / "checkpoints" / "last.pt").is_file():
                return usage_error(f"{run_dir} has no checkpoint to resume from (checkpoints/last.pt is "
                                   "missing); start a new run")
            changes, names = resume_changes(args)
            cfg = apply_resume_changes(cfg, changes, names)  # the session saves it, under the run's lock
            check_run_config(cfg)
            resume = True
        else:
            cfg = config_from_args(args)
            if args.run_dir:
                run_dir = Path(args.run_dir)
                if (run_dir / "config.json").exists():
                    return usage_error(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                                       "or choose another --run-dir")
            check_run_config(cfg)
    except (ConfigError, DataError, ValueError) as exc:
        return usage_error(str(exc))
    # the session claims the run folder (one writer) before it writes anything, and holds it to the end
    return _train(args, cfg, run_dir, resume, Session, FlagControl)


def _train(args, cfg, run_dir, resume, Session, FlagControl) -> int:
    control = FlagControl()
    printer = ProgressPrinter(quiet=args.quiet or int(os.environ.get("RANK", 0)) != 0)

    def on_signal(signum, frame):
        # Ctrl-C, or SIGTERM from a cluster scheduler (it sends SIGKILL a while later): stop with a checkpoint
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        printer._line(f"stopping ({name}): writing a checkpoint ({name} again to abort)")
        control.send("stop")
        signal.signal(signum, _abort)

    def _abort(signum, frame):
        raise KeyboardInterrupt

    handled = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    old = {sig: signal.signal(sig, on_signal) for sig in handled}
    try:
        summary = Session(cfg, printer, control, run_dir=run_dir, resume=resume).run()
    finally:
        for sig in old:  # the run has ended: a late Ctrl-C or SIGTERM changes nothing now, and is not a crash
            signal.signal(sig, signal.SIG_IGN)
    try:
        return _report_run(summary)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _report_run(summary: dict) -> int:
    code = run_exit_code(summary)
    if summary.get("reason") == "failed":
        return code
    if int(os.environ.get("RANK", 0)) != 0:
        return code  # under torchrun only rank 0 reports
    from engine.runs import skipped_files

    skipped = skipped_files(summary.get("run_dir", ""))
    if skipped:
        summary["skipped"] = len(skipped)
    print(_summary_text(summary, skipped), file=sys.stderr)
    print(json.dumps(summary))
    return code


SHOW_SKIPPED = 5


def _summary_text(s: dict, skipped: list[tuple[str, str]] = ()) -> str:
    lines = [f"finished ({s['reason']}) after {s['step']} steps, {s['epoch']} epochs, "
             f"{_fmt_s(s.get('train_time_s'))} of training", f"run folder: {s['run_dir']}"]
    if "knn_top1" in s:
        lines.append(f"kNN top-1 {s['knn_top1']:.4f}" + (f", linear probe top-1 {s['linear_top1']:.4f}"
                                                         if "linear_top1" in s else ""))
    if skipped:
        shown = "; ".join(f"{p} ({r})" for p, r in skipped[:SHOW_SKIPPED])
        more = len(skipped) - SHOW_SKIPPED
        lines.append(f"skipped {len(skipped)} file(s) that could not be used: {shown}"
                     + (f"; and {more} more (see {Path(s['run_dir']) / 'data.json'})" if more > 0 else ""))
    if s["reason"] == "stopped":
        lines.append(f"continue with: python main.py train --resume {s['run_dir']}")
    return "\n".join(lines)


# -- eval ------------------------------------------------------------------------------------------
def cmd_eval(args) -> int:
    import torch

    from engine.data import DataError, load_dataset
    from engine.eval import extract_features, knn_accuracy, linear_probe, raw_pixel_features
    from engine.models import build_backbone
    from engine.params import ConfigError
    from engine.training.checkpoints import load_run_encoder
    from engine.training.device import resolve_device

    try:
        check_run_folder(args.run)
        device = resolve_device(args.device)
        enc, cfg, bname = load_run_encoder(args.run, device)
        size = args.image_size or cfg.data.image_size
        train = load_dataset(args.train_data, size)
        test = load_dataset(args.test_data, size)
    except (ConfigError, DataError) as exc:
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
    out = {"run": str(args.run), "method": cfg.method, "backbone": bname, "num_train": len(train),
           "num_test": len(test), "k": args.k}

    def score(ftr, fte, prefix):
        top1, top5 = knn_accuracy(ftr, ytr, fte, yte, c, args.k, args.temperature)
        out[f"{prefix}knn_top1"] = round(top1, 4)
        if top5 is not None:
            out[f"{prefix}knn_top5"] = round(top5, 4)
        if args.probe_epochs:
            out[f"{prefix}linear_top1"] = round(linear_probe(ftr, ytr, fte, yte, c, epochs=args.probe_epochs), 4)

    t0 = time.time()
    score(extract_features(enc, train, device=device), extract_features(enc, test, device=device), "")
    if not args.no_baselines:
        torch.manual_seed(cfg.seed)
        rand = build_backbone(bname, size).to(device).eval()
        score(extract_features(rand, train, device=device), extract_features(rand, test, device=device),
              "random_init_")
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
    from engine.eval import extract_features
    from engine.eval.projection import project
    from engine.params import ConfigError
    from engine.training.checkpoints import load_run_encoder
    from engine.training.device import resolve_device

    try:
        check_run_folder(args.run)
        device = resolve_device(args.device)
        enc, cfg, _ = load_run_encoder(args.run, device)
        data = load_dataset(args.data, args.image_size or cfg.data.image_size)
    except (ConfigError, DataError) as exc:
        return usage_error(str(exc))
    idx = np.arange(len(data))
    if len(idx) > args.max_images:
        idx = np.sort(np.random.default_rng(0).choice(len(idx), args.max_images, replace=False))
    feats = extract_features(enc, data, idx, device=device).numpy()
    coords = project(feats, args.projection) if args.projection != "none" else np.zeros((len(feats), 2), np.float32)
    labels = data.get_labels(idx)
    labels = labels.cpu().numpy() if labels is not None else np.full(len(idx), -1)
    out = Path(args.out) if args.out else Path(args.run) / "export" / "embedding"
    from engine.eval.export import write_embedding

    paths = write_embedding(out, feats, coords, labels, idx, data)
    print(json.dumps({"npz": str(paths[0]), "csv": str(paths[1]), "num_images": len(idx),
                      "feature_dim": int(feats.shape[1])}))
    return 0


def cmd_methods(args) -> int:
    from engine.methods import METHODS

    for name, cls in METHODS.items():
        print(f"{name:16s} {cls.summary}" if args.long else name)
    return 0


COMMANDS = {"train": "cmd_train", "eval": "cmd_eval", "embed": "cmd_embed", "methods": "cmd_methods"}


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM (a cluster scheduler, ``kill``) ends a command like Ctrl-C: during start-up at once with
    nothing written, during a run with a checkpoint (see ``_train``)."""
    def on_term(signum, frame):
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, on_term)
    except (ValueError, OSError, AttributeError):  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status says how it ended (see :mod:`engine.errors`):
    0 done, 1 the run failed, 2 usage or bad input, 130 interrupted."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command in ("downstream", "invariance"):  # their own module (engine/cli_downstream.py)
            from engine import cli_downstream

            return getattr(cli_downstream, f"cmd_{args.command}")(args)
        if args.command not in COMMANDS:
            return -1  # no command: the caller opens the GUI
        with _sigterm_interrupts():
            return globals()[COMMANDS[args.command]](args)
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except WorkbenchError as exc:  # raised with a message for the user, e.g. UsageError, RunBusy
        print(f"error: {exc}", file=sys.stderr)
        return exit_code_for(exc)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
