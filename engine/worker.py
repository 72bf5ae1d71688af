"""Process entry points for front ends: the training process and the long-lived service process.

Nothing here imports Qt, and nothing at module level imports torch: a GUI imports this module to
name the targets of its ``multiprocessing`` (spawn) processes without paying for torch itself.

- :func:`train_process` runs one :class:`engine.session.Session`; every message goes to
  ``out_queue``, commands (:class:`engine.messages.Command`) come from ``cmd_queue``.
- :func:`service_main` serves :class:`ServiceHandler` over the request/response protocol of
  :mod:`engine.rpc` (``Request`` in, typed replies out; a ``Status`` reply ``{"state": "ready"}`` once
  the expensive imports are done). Ops:

  ``catalogue``       the methods, backbones, datasets, augmentation fields and the device;
  ``validate_config`` ``{"config": dict}`` -> ``{"ok": bool, "errors": [{"path", "message"}]}``;
  ``load_dataset``    ``{"spec", "image_size", "download", "max_thumbs"}``: decodes the dataset
                      (with progress, cancellable) and writes its images as one uint8
                      ``(N, H, W, 3)`` ``.npy`` file the caller memory-maps;
                      clips also as ``(N, T, H, W, C)`` (``clips_path``, ``frames``; C = 4 with the
                      object's mask);
  ``preview``         ``{"method", "options", "seed", "images" | "clips" | "dataset" + "indices",
                      "backbone"}``: the method's pretext preview as plain dicts (no torch, no
                      engine classes); methods that train on clips take ``clips``;
  ``ping``            answers ``"pong"`` at once (liveness);
  ``sleep``, ``crash`` a request that takes a while, and one that ends the process at once (tests).

Every answer is made of python scalars, strings, lists, dicts and numpy arrays, so the receiving
process never imports torch when it unpickles one.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from pathlib import Path

from engine.rpc import CancelledError, Handler, Job, Status, exit_child, put_quietly, serve_requests

# -- helpers -------------------------------------------------------------------------------------


def _lower_priority(nice: int, training: bool = False) -> None:
    """Make this process yield the CPU to the window's event loop (a 2-core laptop stays smooth): every
    thread of it, torch's pool included (:mod:`engine.priority`). ``SSLWB_TRAIN_BATCH=1`` also marks a
    training process CPU-bound (an experiment's switch)."""
    from engine.priority import lower_priority

    lower_priority(nice, batch=training and os.environ.get("SSLWB_TRAIN_BATCH") == "1")


# -- the training process -------------------------------------------------------------------------


def _parent_watch_control(cmd_queue, parent_pid: int):
    """A QueueControl that also stops the run (with a checkpoint) when the window's process dies,
    so no orphaned training process keeps the machine busy; the run can be resumed later."""
    from engine.messages import STOP, Command
    from engine.session import QueueControl

    class ParentWatch(QueueControl):
        orphaned = False
        terminated = False  # SIGTERM: stop with a checkpoint, like the window's Stop

        def _gone(self) -> bool:
            if os.getppid() != parent_pid:
                self.orphaned = True
            return self.orphaned or self.terminated

        def poll(self):
            cmds = super().poll()
            return cmds + [Command(STOP)] if self._gone() else cmds

        def wait(self, timeout):
            cmd = super().wait(timeout)
            return Command(STOP) if cmd is None and self._gone() else cmd

    return ParentWatch(cmd_queue)


def _stop_on_sigterm(control) -> None:
    import signal

    def on_term(signum, frame):
        control.terminated = True

    try:
        signal.signal(signal.SIGTERM, on_term)
    except (ValueError, OSError, AttributeError):  # not the main thread, or no SIGTERM here
        pass


def train_process(config_dict: dict, run_dir: str | None, resume: bool, out_queue, cmd_queue,
                  nice: int = 0) -> None:
    """Entry point of the engine process: run one session, send every message to ``out_queue``."""
    parent = os.getppid()
    _lower_priority(nice, training=True)
    _train(config_dict, run_dir, resume, out_queue, cmd_queue, parent)


START = "start"  # the standby's one command: Command(START, {"config": ..., "run_dir": ..., "resume": ...})


def train_standby(out_queue, cmd_queue, nice: int = 0) -> None:
    """Entry point of an engine process started ahead of its run: it imports torch and the engine (the
    seconds a start would otherwise wait for) while the user is still choosing, then waits for
    ``Command(START, ...)`` and runs that session exactly as :func:`train_process` does. Anything else
    on the queue (the window's goodbye), or the window's end, ends it."""
    import queue

    parent = os.getppid()
    from engine import messages as M

    try:  # at the window's priority: Start pressed the moment the window is ready waits for this
        _warm_up()
    except BaseException:  # noqa: BLE001 - the run that follows reports it
        pass
    _lower_priority(nice, training=True)  # the run below the window, as a fresh training process is
    while True:
        try:
            item = cmd_queue.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                return
            continue
        except (EOFError, OSError, ValueError):
            return
        if isinstance(item, M.Command) and item.name == START:
            a = item.args
            _train(a.get("config") or {}, a.get("run_dir"), bool(a.get("resume")), out_queue, cmd_queue, parent)
        return


def _warm_up() -> None:
    """What a start would otherwise wait for: torch and the engine imported, torch's lazily imported
    optimiser machinery (``torch._dynamo``, 2 s on a 2-core CPU, pulled in by the first AdamW) and the
    CPU's convolution kernels (a tiny step under the session's precision)."""
    import torch

    import engine.session  # noqa: F401 - torch and the engine
    from engine.training.device import Precision

    conv = torch.nn.Conv2d(3, 8, 3, padding=1).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(conv.parameters(), lr=1e-3)
    precision = Precision(torch.device("cpu"), "auto")
    with precision.autocast():
        loss = conv(torch.rand(2, 3, 16, 16)).float().square().mean()
    precision.backward(loss, opt)
    precision.step(opt)


def _train(config_dict: dict, run_dir: str | None, resume: bool, out_queue, cmd_queue, parent: int) -> None:
    from engine import messages as M

    control = None

    try:
        from engine.config import RunConfig
        from engine.params import ConfigError
        from engine.session import Session, resume_config

        try:
            if resume and run_dir:
                from engine.training.resume import apply_resume_changes, flatten

                # what may change mid-run (budget, learning rate, evaluation, device) is applied and saved
                # by the session under the run's lock; any other change is refused with its name
                cfg = apply_resume_changes(resume_config(run_dir), flatten(config_dict or {}))
            else:
                cfg = RunConfig.from_dict(config_dict)
                cfg.check()
        except ConfigError as exc:
            put_quietly(out_queue, M.RunFailed(str(exc), "", str(run_dir or "")))
            return
        control = _parent_watch_control(cmd_queue, parent)
        _stop_on_sigterm(control)
        Session(cfg, emit=out_queue.put, control=control, run_dir=run_dir, resume=resume).run()
    except BaseException as exc:  # noqa: BLE001 - the front end must hear about anything
        put_quietly(out_queue, M.RunFailed(f"{type(exc).__name__}: {exc}", traceback.format_exc(), str(run_dir or "")))
    finally:
        # let the queue's feeder thread hand everything over before the process ends (unless
        # nobody is left to read it: then a full pipe would hang the exit)
        try:
            if control is not None and control.orphaned:
                out_queue.cancel_join_thread()
            out_queue.close()
            out_queue.join_thread()
        except (OSError, ValueError, AttributeError):
            pass
        exit_child()


# -- the service process --------------------------------------------------------------------------


def catalogue() -> dict:
    """Everything a front end needs to build its pickers and forms, as plain data."""
    import torch

    from engine.augment import PRESETS, AugmentConfig, preset
    from engine.config import DataConfig, EvalConfig, OptimConfig, RunConfig
    from engine.data.tv import DATASETS, SPLITS
    from engine.methods import method_catalogue
    from engine.models.backbones import BACKBONES
    from engine.params import field_specs, to_dict
    from engine.session import device_name, resolve_device

    dev = resolve_device("auto")
    return {
        "methods": method_catalogue(),
        "backbones": [{"name": k, "help": v} for k, v in BACKBONES.items()],
        "datasets": [{"name": k, "splits": list(SPLITS[k]), "files": v[3]} for k, v in DATASETS.items()],
        "augment": field_specs(AugmentConfig),
        # the recipes differ for small images (<= 48 px: no blur) and larger ones
        "augment_presets": {"small": {p: [to_dict(v) for v in preset(p, 32)] for p in PRESETS},
                            "large": {p: [to_dict(v) for v in preset(p, 224)] for p in PRESETS}},
        "sections": {"run": field_specs(RunConfig), "data": field_specs(DataConfig),
                     "optim": field_specs(OptimConfig), "eval": field_specs(EvalConfig)},
        "device": dev.type, "device_name": device_name(dev), "torch": str(torch.__version__),
        "cuda": bool(torch.cuda.is_available()),
    }


def validate_config(config: dict) -> dict:
    """Full validation of a run config (what the training process will accept), without running it."""
    from engine.config import RunConfig
    from engine.methods import get_method_class
    from engine.models.backbones import BACKBONES, vit_patch
    from engine.params import ConfigError

    errors = []
    try:
        cfg = RunConfig.from_dict(config)
        cfg.check()
        if not cfg.epochs and not cfg.minutes:
            raise ConfigError("epochs", "set a budget: epochs or minutes (one must be above 0)")
        cls = get_method_class(cfg.method)
        if cfg.backbone != "auto":
            if cfg.backbone not in BACKBONES:
                raise ConfigError("backbone", f"unknown backbone {cfg.backbone!r}; choose auto or one of: "
                                              f"{', '.join(BACKBONES)}")
            kind = "vit" if cfg.backbone.startswith("vit") else "cnn"
            if cls.backbone_kind != "any" and kind != cls.backbone_kind:
                raise ConfigError("backbone", f"{cfg.method} needs a {cls.backbone_kind.upper()} backbone; "
                                              f"{cfg.backbone} is a {kind.upper()} (choose auto)")
            patch = vit_patch(cfg.backbone, cfg.data.image_size) if kind == "vit" else 1
            if cfg.data.image_size % patch:
                raise ConfigError("data.image_size", f"{cfg.backbone} needs an image size divisible by its patch "
                                                     f"size {patch}")
        spec_error = _check_spec(cfg.data.spec, "data.spec")
        if spec_error:
            raise spec_error
        if cfg.data.eval_spec:
            spec_error = _check_spec(cfg.data.eval_spec, "data.eval_spec")
            if spec_error:
                raise spec_error
        from engine.data import input_mismatch, spec_is_clips

        mismatch = input_mismatch(cfg.method, cls.input_kind, spec_is_clips(cfg.data.spec), cfg.data.spec)
        if mismatch:
            raise ConfigError("method", mismatch)
    except ConfigError as exc:
        errors.append({"path": exc.path, "message": exc.message})
    return {"ok": not errors, "errors": errors}


def _check_spec(spec: str, path: str):
    """A cheap check of a dataset spec (syntax, folder existence), without loading it."""
    from engine.data import DataError, builtin_dataset
    from engine.data import _split_spec as split_spec
    from engine.params import ConfigError

    try:
        kind, rest = split_spec(spec)
        if kind == "builtin":
            builtin_dataset(rest)
        elif kind == "torchvision":
            from engine.data.tv import parse_tv_spec

            parse_tv_spec(rest)
        else:
            p = Path(rest).expanduser()
            what = "clips" if kind == "clips" else "images"
            if not p.is_dir():
                return ConfigError(path, f"folder {p} does not exist" if not p.exists()
                                   else f"{p} is a file, not a folder of {what}")
    except (DataError, ValueError) as exc:
        return ConfigError(path, str(exc))
    return None


def _thumbs_path(spec: str, image_size: int, kind: str = "images") -> Path:
    import hashlib

    from engine.data.folder import cache_dir

    key = hashlib.sha1(f"{spec}|{image_size}".encode()).hexdigest()[:16]
    return cache_dir() / "gui" / f"{kind}-{key}-{image_size}.npy"


def _write_npy(path: Path, shape: tuple, fill, cancel: threading.Event, chunk: int = 0) -> bool:
    """Write a uint8 ``.npy`` of ``shape`` chunk by chunk (``fill(start, stop)`` gives the rows) and move
    it into place at once (a reader that maps the old file keeps its copy); False when cancelled."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    chunk = chunk or max(1, 2048 * 32 * 32 * 3 // max(1, int(np.prod(shape[1:]))))  # ~6 MB a chunk
    for start in range(0, shape[0], chunk):
        if cancel.is_set():
            del out
            tmp.unlink(missing_ok=True)
            return False
        stop = min(shape[0], start + chunk)
        out[start:stop] = fill(start, stop)
    out.flush()
    del out
    os.replace(tmp, path)
    return True


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def load_dataset_for_view(args: dict, job, cancel: threading.Event) -> dict:
    """Decode a dataset and write its images as one ``(N, H, W, 3)`` uint8 ``.npy`` file; ``job`` gets
    ``progress(done, total, detail, task="data")`` calls (an :class:`engine.rpc.Job`)."""
    import numpy as np

    from engine.data import has_clips, load_dataset

    spec = str(args.get("spec", "")).strip()
    size = int(args.get("image_size", 32))
    max_thumbs = int(args.get("max_thumbs", 200_000))

    def progress(done, total, detail):
        if cancel.is_set():
            from engine.data import Cancelled

            raise Cancelled("loading was cancelled")
        job.progress(done, total, detail, task="data")

    data = load_dataset(spec, size, download=bool(args.get("download", False)), progress=progress,
                        cancel=cancel, memory_limit_mb=int(args.get("memory_limit_mb", 2048)),
                        workers=int(args.get("workers", 2)))
    if cancel.is_set():
        return {"cancelled": True}
    n = len(data)
    notes = list(getattr(data, "notes", []))
    count = min(n, max_thumbs)
    if data.streaming:  # the grid's file holds what fits the memory limit, not a second copy of the whole set
        limit = int(args.get("memory_limit_mb", 2048)) * 2**20 // (3 * size * size)
        count = min(count, max(256, limit))
    if count < n:
        notes.append(f"the grid shows the first {count} of {n} images")
    path = _thumbs_path(spec, size)

    def images(start, stop):
        rows = data.get(np.arange(start, stop)).permute(0, 2, 3, 1).cpu().numpy()
        if data.streaming:
            job.progress(stop, count, "reading thumbnails", task="data")
        return rows

    # the same images as the grid's file holds already (a second open of a cached folder): kept as it is
    stamp = path.with_suffix(".source")
    identity = f"{data.identity()}|{count}" if hasattr(data, "identity") else ""
    if not (identity and path.exists() and _read_text(stamp) == identity):
        if not _write_npy(path, (count, size, size, 3), images, cancel, chunk=256 if data.streaming else 0):
            return {"cancelled": True}
        if identity:
            try:
                stamp.write_text(identity, encoding="utf-8")
            except OSError:
                pass
    clips_path, frames = "", 0
    if has_clips(data):  # the clips too, (N, T, H, W, C): what the previews of clip methods take
        frames = data.frames
        clips_path = _thumbs_path(spec, size, "clips")
        shape = (count, frames, size, size, int(data.clips.shape[2]))
        if not _write_npy(clips_path, shape, lambda a, b: data.clips_hwc(np.arange(a, b)), cancel):
            return {"cancelled": True}
    labels = None
    if data.labels is not None:
        labels = data.labels[:count].cpu().numpy().astype(np.int64)
    summary = data.summary()
    return {
        "spec": spec, "image_size": size, "images_path": str(path), "count": count, "total": n,
        "name": data.name, "source": data.source, "labels": labels,
        "class_names": list(data.class_names) if data.class_names else None,
        "labelled": bool(data.labelled), "paths": list(data.paths[:count]) if data.paths else None,
        "skipped": [list(s) for s in getattr(data, "skipped", [])], "notes": notes, "summary": summary,
        "eval_source": getattr(data, "eval_source", ""), "streaming": bool(data.streaming),
        "clips_path": str(clips_path) if clips_path else "", "frames": frames,
    }


def preview_plain(args: dict, datasets: dict) -> dict:
    """The method's pretext preview as plain dicts: rows of tiles (uint8 images, captions, overlays)."""
    import numpy as np

    from engine.data import CLIP_CHOICES
    from engine.methods import get_method_class
    from engine.preview import preview

    clips = get_method_class(args["method"]).input_kind == "clips"
    images = args.get("clips" if clips else "images")
    if images is None:
        key = args.get("dataset")
        if key not in datasets:
            raise ValueError("no dataset is loaded in the service; load one first")
        path = datasets[key].get("clips_path" if clips else "images_path")
        if not path:
            raise ValueError(f"{args['method']} trains on clips, and the loaded dataset holds single images; "
                             f"choose {CLIP_CHOICES}")
        images = np.load(path, mmap_mode="r")[np.asarray(args["indices"], dtype=np.int64)]
    images = np.ascontiguousarray(np.asarray(images, dtype=np.uint8))
    if clips and (images.ndim != 5 or images.shape[-1] not in (3, 4) or len(images) == 0):
        raise ValueError(f"{args['method']} previews clips (N, T, H, W, 3 or 4) uint8, got shape {images.shape}; "
                         f"choose {CLIP_CHOICES}")
    if not clips and (images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0):
        raise ValueError(f"preview needs (N, H, W, 3) uint8 images, got shape {images.shape}")
    t0 = time.perf_counter()
    res = preview(args["method"], images, int(args.get("seed", 0)), options=args.get("options") or None,
                  backbone=args.get("backbone", "auto") or "auto")
    rows = [{"title": r.title, "tiles": [{"image": np.ascontiguousarray(t.image), "caption": t.caption,
                                         "grid": int(t.grid), "boxes": [tuple(b) for b in t.boxes],
                                         "highlight": bool(t.highlight)} for t in r.tiles]}
            for r in res.rows]
    return {"method": res.method, "kind": res.kind, "seed": res.seed, "info": res.info, "rows": rows,
            "seconds": round(time.perf_counter() - t0, 4)}


class ServiceHandler(Handler):
    """The service process's ops. Loads take minutes: they get a lane of their own so previews stay quick."""

    LANES = {"load_dataset": "jobs", "sleep": "jobs"}
    DEFAULT_LANE = "quick"
    INLINE = ("ping", "crash")

    def __init__(self, emit):
        super().__init__(emit)
        self.datasets: dict[str, dict] = {}  # "spec|size" -> the .npy files of its images (and clips)
        self.lock = threading.Lock()

    def cancelled_types(self) -> tuple:
        from engine.data import Cancelled

        return (Cancelled,)

    def op_ping(self, job: Job) -> str:
        return "pong"

    def op_crash(self, job: Job) -> None:
        os._exit(int(job.args.get("code", 3)))

    def op_catalogue(self, job: Job) -> dict:
        return catalogue()

    def op_validate_config(self, job: Job) -> dict:
        return validate_config(job.args.get("config") or {})

    def op_load_dataset(self, job: Job) -> dict:
        out = load_dataset_for_view(job.args, job, job.cancel)
        job.check()
        if out.get("cancelled"):
            raise CancelledError("cancelled")
        with self.lock:
            self.datasets[f"{out['spec']}|{out['image_size']}"] = {"images_path": out["images_path"],
                                                                   "clips_path": out["clips_path"]}
        return out

    def op_preview(self, job: Job) -> dict:
        with self.lock:
            datasets = dict(self.datasets)
        return preview_plain(job.args, datasets)

    def op_sleep(self, job: Job) -> bool:
        end = time.monotonic() + float(job.args.get("seconds", 1.0))
        while time.monotonic() < end:
            job.check()
            time.sleep(0.02)
        return True


def service_main(req_q, resp_q, nice: int = 0) -> None:
    """The long-lived helper process: imports torch once, then answers requests until ``None``."""
    _lower_priority(nice)
    import torch  # noqa: F401 - the expensive import, done once at start

    import engine.methods  # noqa: F401

    try:
        torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    except RuntimeError:
        pass

    def make(emit):
        emit(Status({"state": "ready", "pid": os.getpid()}))
        return ServiceHandler(emit)

    serve_requests(req_q, resp_q, make, join_s=5.0)  # a running job finishes its native calls first


__all__ = ["train_process", "train_standby", "START", "service_main", "ServiceHandler", "catalogue", "validate_config", "load_dataset_for_view",
           "preview_plain"]
