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

from engine.cli_encoders import check_run_folder  # noqa: F401 - re-exported
from engine.commands import config_to_command, slurm_script, torchrun_command  # noqa: F401 - re-exported
from engine.errors import EXIT_INTERRUPTED, EXIT_USAGE, WorkbenchError, exit_code_for, run_exit_code


def version() -> str:
    """The installed distribution's version (``0+unknown`` for a checkout that was never installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("ssl-workbench")
    except PackageNotFoundError:
        return "0+unknown"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (what went wrong and what is allowed) and exit status 2; every command
    answers ``--version``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=f"ssl-workbench {version()}",
                          help="print the version and exit")

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


def check_run_config(cfg, resume: bool = False) -> None:
    """Refuse a bad dataset, device or backbone (or initial weights that do not fit) before any run folder
    is made, so that bad input never leaves a stub run behind (raises DataError/ConfigError/EncoderError;
    cheap: a folder scan, one decoded image, the backbone built on the meta device, the initial weights read
    once)."""
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
        backbone = build_backbone(name, cfg.data.image_size)
    kind = getattr(backbone, "kind", "cnn")
    if cls.backbone_kind != "any" and kind != cls.backbone_kind:
        raise ConfigError("backbone", f"{cfg.method} needs a {'ViT' if cls.backbone_kind == 'vit' else 'CNN'} "
                                      f"backbone, not {name}; choose another --backbone or auto")
    problem = cls.backbone_problem(backbone, name)
    if problem:
        raise ConfigError("backbone", problem)
    if cfg.init and not resume:
        from engine.cli_encoders import check_init

        check_init(cfg)
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
    t.add_argument("--data", metavar="SPEC", help="builtin:shapes[:N][?shortcut=colour|light][&colours=typical] "
                   "(default; shortcut=colour gives every image its own colours, colours=typical each shape "
                   "typical colours), an image folder, "
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
    t.add_argument("--backbone", metavar="NAME", help=f"auto (default), {', '.join(backbone_names())}, or "
                   "torchvision:NAME / timm:NAME (random weights; see --init)")
    t.add_argument("--init", metavar="SPEC", help="start from an encoder's weights: torchvision:NAME:WEIGHTS, timm:NAME, "
                   "a weights file (with --arch) or a run folder; the backbone becomes its architecture and images "
                   "load at its size unless --image-size is given")
    t.add_argument("--arch", metavar="ARCH", help="with --init FILE: its architecture (torchvision:NAME, timm:NAME or a "
                   "workbench backbone)")
    t.add_argument("--select", metavar="PART", help="with --init FILE that holds several networks: which one "
                   "(teacher, student, base_encoder, ...)")
    _add_common_data(t)
    t.add_argument("--recipe", action="store_true", help="train with the method's recipe that learns on this data "
                   "where its defaults fall short (a longer budget, another built-in set; `methods --long` lists "
                   "them); a longer --minutes or --epochs than the recipe's is kept")
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

    from engine.cli_encoders import add_attention_parser
    from engine.cli_eval import add_parsers as add_eval_parsers

    add_eval_parsers(sub, _add_common_data)
    from engine.cli_downstream import add_parsers as add_downstream_parsers

    add_downstream_parsers(sub, _add_common_data)
    add_attention_parser(sub, _add_common_data)

    ms = sub.add_parser("methods", help="list the registered methods, one a line")
    ms.add_argument("--long", action="store_true", help="with their one-line summaries, their recipes and how "
                    "their defaults did on the workbench's measured sets (kNN over an untrained encoder)")
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
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    _put(d, parts, parsed, key)


def _put(d: dict, parts: list[str], value, key: str) -> None:
    """Set ``d[parts[0]][parts[1]]... = value``, making the sections on the way; ``key`` names it in errors."""
    cur = d
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
        if not isinstance(cur, dict):
            raise ValueError(f"{key}: {p} is not a section")
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
    if getattr(args, "recipe", False):
        apply_recipe(base)
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        _set_path(base, k.strip(), v.strip())
    _apply_init(base, args)
    return RunConfig.from_dict(base)


def apply_recipe(base: dict) -> dict:
    """``--recipe``: the method's recipe that learns on the config's data (``engine.specs.recipe_for``) applied to
    the config dict ``base``; a data spec keeps its count, a budget (minutes, epochs) only grows. Returns what
    changed (dotted path -> value); a method without a recipe on this data changes nothing and says so."""
    from engine.methods import get_method_class
    from engine.specs import recipe_changes, recipe_for, setting_text

    spec = str(base.get("data", {}).get("spec") or "")
    entry = get_method_class(base["method"]).recipes()
    recipe = recipe_for(entry, spec)
    if not recipe:
        print(f"note: {base['method']} has no recipe on {spec or 'this data'}: its defaults are the recipe; "
              "--recipe changes nothing", file=sys.stderr)
        return {}
    changed = {path: want for path, (_now, want) in recipe_changes(entry, base).items()}
    for path, want in changed.items():
        _put(base, path.split("."), want, path)
    if changed:
        short = f" (short of the aim: {recipe['why']})" if recipe.get("short") else ""
        print(f"recipe of {base['method']}: " + ", ".join(f"{k} {setting_text(k, v)}" for k, v in changed.items())
              + short, file=sys.stderr)
    return changed


def _apply_init(base: dict, args) -> None:
    """``--init SPEC [--arch ARCH] [--select PART]``: the run starts from the encoder's weights, its backbone is
    the encoder's architecture, its images load at the encoder's size unless --image-size is given."""
    if args.init is not None:
        base.update(init=args.init, init_arch=args.arch or "", init_select=args.select or "")
    elif args.arch or args.select:
        raise ValueError("--arch and --select go with --init (the initial weights of a new run)")
    if not base.get("init"):
        return
    from engine.encoders import resolve

    src = resolve(base["init"], base.get("init_arch", ""), args.image_size)
    if args.backbone not in (None, "auto", src.arch):
        raise ValueError(f"--backbone {args.backbone} is not the architecture of --init ({src.arch}); leave --backbone "
                         "out: the run trains the initial weights' architecture")
    base["backbone"] = src.arch
    if args.image_size is None:
        base["data"]["image_size"] = src.image_size


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
            self.line(f"run {msg.run_dir} on {msg.device_name}: {msg.num_images} images, "
                       f"{msg.steps_per_epoch} steps/epoch" + (f" (resumed at step {msg.start_step})"
                                                               if msg.resumed else ""))
        elif isinstance(msg, M.Warning):
            self.line(f"note: {msg.text}")
        elif isinstance(msg, M.Collapse):
            self.line(f"warning (step {msg.step}): {msg.text}")
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
                self.line(text)
        elif isinstance(msg, M.EvalResult) and msg.kind_name == "knn_monitor":
            vals = " ".join(f"{k} {v:.3f}" for k, v in msg.values.items())
            self.line(f"epoch {int(msg.epoch)}: {vals}")
        elif isinstance(msg, M.StateChanged) and msg.state == "evaluating":
            self.line("evaluating: kNN and linear probe ...")
        elif isinstance(msg, M.RunFailed):
            self.line(f"error: {msg.error}")

    def line(self, text: str) -> None:
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

    for attr, flag in (("config", "--config"), ("run_dir", "--run-dir"), ("init", "--init"), ("arch", "--arch"),
                       ("select", "--select"), ("recipe", "--recipe")):
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
    from engine.runs import encoder_entry
    from engine.session import FlagControl, Session, resume_config
    from engine.training.resume import apply_resume_changes

    resume = False
    run_dir = None
    try:
        if args.resume:
            run_dir = check_run_folder(args.resume, "--resume")
            if encoder_entry(run_dir) is not None:
                return usage_error(f"{run_dir} is an opened encoder, not a run; start a run from its weights with "
                                   f"--init {run_dir}")
            cfg = resume_config(run_dir)
            if not (run_dir / "checkpoints" / "last.pt").is_file():
                return usage_error(f"{run_dir} has no checkpoint to resume from (checkpoints/last.pt is "
                                   "missing); start a new run")
            changes, names = resume_changes(args)
            cfg = apply_resume_changes(cfg, changes, names)  # the session saves it, under the run's lock
            check_run_config(cfg, resume=True)
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
        printer.line(f"stopping ({name}): writing a checkpoint ({name} again to abort)")
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


def _measured_said(row: dict) -> str:
    """"builtin:shapes 2 min +0.079 (+0.15)": one measured row of ``main.py methods --long``; "" for a row its
    writer did not make (the others are still listed)."""
    from engine.specs import row_gain

    got = row_gain(row)
    try:
        return f"{row['data']} {float(row['minutes']):g} min {got[0]:+.3f} ({got[1]:+.2f})" if got else ""
    except (KeyError, TypeError, ValueError):
        return ""


def cmd_methods(args) -> int:
    from engine.methods import METHODS, measured_rows

    measured = measured_rows()
    for name, cls in METHODS.items():
        print(f"{name:16s} {cls.summary}" if args.long else name)
        if not args.long:
            continue
        said = "; ".join(filter(None, (_measured_said(r) for r in (measured.get(name) or {}).values())))
        if said:
            print(f"{'':16s}   measured (kNN vs untrained, the aim): {said}")
        for where, overrides, short in (("on the built-in data", cls.recipe, False),
                                        ("on photographs", cls.photo_recipe, cls.photo_recipe_short)):
            if overrides:
                print(f"{'':16s}   recipe {where} (train --recipe): "
                      + ", ".join(f"{k} {v}" for k, v in overrides.items())
                      + (" (beats random init, short of the aim)" if short else ""))
    return 0


COMMANDS = {"train": "cmd_train", "methods": "cmd_methods"}
# commands in modules of their own: command -> module of engine
OWN_MODULES = {"eval": "cli_eval", "embed": "cli_eval", "downstream": "cli_downstream",
               "invariance": "cli_downstream", "attention": "cli_encoders"}


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


def _import_torch_holding_ctrl_c() -> None:
    """Import torch (and torchvision) with Ctrl-C held back until they are in. A KeyboardInterrupt raised while
    their C++ extensions load is thrown through pybind11 and aborts the process ("terminate called after
    throwing an instance of 'pybind11::error_already_set'", exit -6) instead of ending it with one line; a
    Ctrl-C pressed then is taken once the imports are done, as an interrupt."""
    if "torch" in sys.modules:
        return
    caught: list[int] = []
    try:
        old = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    except ValueError:  # not the main thread (main() called from a thread): nothing to hold back
        return
    try:
        import torch  # noqa: F401
        try:
            import torchvision  # noqa: F401
        except Exception:  # noqa: BLE001 - only loaded early here: the command's own import says what is wrong
            pass
    finally:
        signal.signal(signal.SIGINT, old)
    if caught:
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status says how it ended (see :mod:`engine.errors`):
    0 done, 1 the run failed, 2 usage or bad input, 130 interrupted."""
    try:
        _import_torch_holding_ctrl_c()  # before the parser: it lists the methods, whose modules import torch
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command in OWN_MODULES:
            import importlib

            module = importlib.import_module(f"engine.{OWN_MODULES[args.command]}")
            with _sigterm_interrupts():
                return getattr(module, f"cmd_{args.command}")(args)
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
