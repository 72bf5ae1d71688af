"""The training session: device, data, method, optimiser, loop, evaluation, checkpoints, messages.

One code path for the GUI's engine process, the headless CLI and ``torchrun``. The session talks
to the outside only through ``emit(message)`` and a ``control`` object that yields commands
(pause, resume, stop, snapshot, embed), and through the run folder it writes.

Reproducibility: the order of every epoch comes from a generator seeded by (seed, epoch) and
the random draws of every step (augmentations, masks, permutations) from one seeded by
(seed, step, rank). A resumed run therefore continues exactly where it stopped: on the CPU,
stop + resume gives the same weights as an uninterrupted run.
"""

from __future__ import annotations

import math
import os
import queue
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from engine import messages as M
from engine.config import RunConfig
from engine.data import DataError, load_dataset, stratified_split
from engine.data.base import Cancelled
from engine.methods import DataInfo, get_method_class
from engine.models import build_backbone, default_backbone
from engine.params import ConfigError
from engine.runs import (
    MetricsLog,
    atomic_write_bytes,
    new_run_dir,
    read_json,
    write_json,
)

EMIT_EVERY_S = 0.25
STATUS_EVERY_S = 5.0


# -- control -------------------------------------------------------------------------------------
class Control:
    """Where commands come from. ``poll`` never blocks; ``wait`` blocks up to ``timeout``."""

    def poll(self) -> list[M.Command]:
        return []

    def wait(self, timeout: float) -> M.Command | None:
        time.sleep(timeout)
        return None


class QueueControl(Control):
    def __init__(self, q):
        self.q = q

    def poll(self) -> list[M.Command]:
        out = []
        while True:
            try:
                out.append(self.q.get_nowait())
            except (queue.Empty, EOFError, OSError):
                return out

    def wait(self, timeout: float) -> M.Command | None:
        try:
            return self.q.get(timeout=timeout)
        except (queue.Empty, EOFError, OSError):
            return None


class FlagControl(Control):
    """Commands set from another thread or a signal handler (the CLI's Ctrl-C)."""

    def __init__(self):
        self.pending: list[M.Command] = []

    def send(self, name: str, **args) -> None:
        self.pending.append(M.Command(name, args))

    def poll(self) -> list[M.Command]:
        out, self.pending = self.pending, []
        return out

    def wait(self, timeout: float) -> M.Command | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.pending:
                return self.pending.pop(0)
            time.sleep(0.01)
        return None


# -- helpers -------------------------------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device", "CUDA is not available on this machine; use --device cpu (or auto)")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if name == "mps":
        if not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
            raise ConfigError("device", "Apple MPS is not available on this machine; use --device cpu (or auto)")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError("device", f"unknown device {name!r}; choose auto, cpu, cuda or mps")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    if precision == "fp32" or device.type == "cpu" and precision == "auto":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    # auto on a GPU
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return None


def step_generator(seed: int, step: int, rank: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device if device.type in ("cuda", "mps") else "cpu")
    g.manual_seed((seed * 1_000_003 + step * 7919 + rank * 104_729 + 12345) % (2**63 - 1))
    return g


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch * 31337 + 7) % (2**63 - 1))
    return torch.randperm(n, generator=g)


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) over SGD with momentum; groups with ``lars_exclude`` skip adaptation."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust: float = 0.001):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "trust": trust,
                                  "lars_exclude": False})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if group["weight_decay"]:
                    d = d.add(p, alpha=group["weight_decay"])
                if not group["lars_exclude"]:
                    pn, dn = torch.norm(p), torch.norm(d)
                    q = torch.where((pn > 0) & (dn > 0), group["trust"] * pn / dn, torch.ones_like(pn))
                    d = d.mul(q)
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = torch.clone(d).detach()
                else:
                    buf.mul_(group["momentum"]).add_(d)
                p.add_(buf, alpha=-group["lr"])


def place_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model to the training device, convolution weights in channels-last layout (about 30%
    faster convolutions on CPUs and tensor cores; other weights are unaffected)."""
    model = model.to(device)
    if device.type in ("cpu", "cuda"):
        model = model.to(memory_format=torch.channels_last)
    return model


def build_optimizer(method, cfg) -> torch.optim.Optimizer:
    o = cfg.optim
    groups = method.param_groups(o.weight_decay)
    groups = [g for g in groups if g["params"]]
    if not groups:
        return None
    if o.optimizer == "adamw":
        clean = [{k: v for k, v in g.items() if k != "lars_exclude"} for g in groups]
        return torch.optim.AdamW(clean, lr=o.lr, betas=(0.9, 0.999))
    if o.optimizer == "sgd":
        clean = [{k: v for k, v in g.items() if k != "lars_exclude"} for g in groups]
        return torch.optim.SGD(clean, lr=o.lr, momentum=o.momentum, nesterov=False)
    if o.optimizer == "lars":
        return LARS(groups, lr=o.lr, momentum=o.momentum)
    raise ConfigError("optim.optimizer", f"unknown optimiser {o.optimizer!r}; choose adamw, sgd or lars")


def lr_at(progress: float, cfg) -> float:
    o = cfg.optim
    p = min(max(progress, 0.0), 1.0)
    if o.warmup_fraction > 0 and p < o.warmup_fraction:
        return o.lr * (0.1 + 0.9 * p / o.warmup_fraction)
    if o.schedule == "constant":
        return o.lr
    q = (p - o.warmup_fraction) / max(1e-8, 1 - o.warmup_fraction)
    return o.lr * (0.002 + 0.998 * 0.5 * (1 + math.cos(math.pi * q)))


def _to_float(v) -> float:
    return float(v.detach().float().item()) if isinstance(v, torch.Tensor) else float(v)


# -- the session ---------------------------------------------------------------------------------
class Session:
    """Runs one training run. ``run()`` returns the summary dict and never raises for bad input:
    failures become a :class:`messages.RunFailed` (and a ``failed`` status in the run folder)."""

    def __init__(self, config: RunConfig, emit: Callable[[M.Message], None] | None = None,
                 control: Control | None = None, run_dir: str | Path | None = None, resume: bool = False,
                 distributed: bool | None = None):
        self.cfg = config
        self.emit_fn = emit or (lambda m: None)
        self.control = control or Control()
        self.run_dir = Path(run_dir) if run_dir else None
        self.resume = resume
        self.world = int(os.environ.get("WORLD_SIZE", 1)) if distributed is not False else 1
        self.rank = int(os.environ.get("RANK", 0)) if self.world > 1 else 0
        self.is_main = self.rank == 0
        self.state = "loading"
        self.log: MetricsLog | None = None
        self._status: dict = {}
        self._last_status = 0.0
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.train_time = 0.0
        self.last_knn: float | None = None
        self.stop_requested = False
        self.paused = False

    # -- plumbing --------------------------------------------------------------------------
    def emit(self, msg: M.Message) -> None:
        if self.is_main:
            try:
                self.emit_fn(msg)
            except Exception:  # a broken consumer must never kill training
                pass

    def set_state(self, state: str, detail: str = "") -> None:
        self.state = state
        self.emit(M.StateChanged(state, detail))
        self.write_status(force=True)

    def write_status(self, force: bool = False, **extra) -> None:
        if not self.is_main or self.run_dir is None:
            return
        now = time.time()
        if not force and now - self._last_status < STATUS_EVERY_S:
            return
        self._last_status = now
        self._status.update({
            "state": self.state, "pid": os.getpid(), "host": socket.gethostname(), "updated": now,
            "step": self.step, "epoch": self.epoch, "elapsed_s": round(self.train_time, 2),
            "last_knn": self.last_knn, **extra})
        self._status.setdefault("started", now)
        try:
            write_json(self.run_dir / "status.json", self._status)
        except OSError:
            pass

    def _handle_commands(self) -> None:
        for cmd in self.control.poll():
            self._apply(cmd)
        while self.paused and not self.stop_requested:
            self.write_status()
            cmd = self.control.wait(0.2)
            if cmd is not None:
                self._apply(cmd)

    def _apply(self, cmd: M.Command) -> None:
        if cmd.name == M.STOP:
            self.stop_requested = True
            self.paused = False
        elif cmd.name == M.PAUSE and not self.paused:
            self.paused = True
            self.save_checkpoint()  # a paused run is safe to close
            self.set_state("paused")
        elif cmd.name == M.RESUME and self.paused:
            self.paused = False
            self.set_state("running")
        elif cmd.name == M.SNAPSHOT:
            self.save_checkpoint()
        elif cmd.name == M.EMBED:
            self.embed_snapshot()

    # -- set-up ----------------------------------------------------------------------------
    def _progress(self, done: int, total: int, detail: str) -> None:
        self.emit(M.Progress("data", done, total, detail))

    def setup(self) -> None:
        cfg = self.cfg
        if not cfg.epochs and not cfg.minutes:
            raise ConfigError("epochs", "set a budget: --epochs E or --minutes M (one must be above 0)")
        self.method_cls = get_method_class(cfg.method)
        method_cfg = cfg.method_config()
        self.device = resolve_device(cfg.device)
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            torch.distributed.init_process_group(backend)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)

        # run folder
        if self.is_main:
            if self.run_dir is None:
                self.run_dir = new_run_dir(cfg.runs_root, cfg.method, cfg.data.spec, cfg.name)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if not self.resume:
                cfg.save(self.run_dir / "config.json")
            old = read_json(self.run_dir / "status.json", {}) or {}
            self._status = {"started": old.get("started", time.time())}
            self.log = MetricsLog(self.run_dir / "metrics.jsonl")
            self.set_state("loading", "reading the dataset")

        # data
        dc = cfg.data
        data = load_dataset(dc.spec, dc.image_size, download=dc.download, progress=self._progress,
                            max_images=dc.max_images, memory_limit_mb=dc.in_memory_limit_mb, workers=dc.workers,
                            seed=0)
        notes = list(getattr(data, "notes", []))
        if len(data) < 2:
            raise DataError(f"the dataset {dc.spec} has {len(data)} image(s); training needs at least 2")
        eval_data = None
        eval_spec = dc.eval_spec or data.eval_source
        if eval_spec:
            eval_data = load_dataset(eval_spec, dc.image_size, download=dc.download, seed=0,
                                     memory_limit_mb=dc.in_memory_limit_mb)
            if not eval_data.labelled:
                notes.append(f"the evaluation set {eval_spec} is unlabeled: kNN and the linear probe are skipped")
                eval_data = None
            elif data.labelled and eval_data.class_names != data.class_names:
                notes.append("the evaluation set's classes differ from the training set's: "
                             "the kNN bank and probe use the evaluation set's own labels split in two")
        elif data.labelled and dc.holdout_fraction > 0 and not data.streaming:
            train_idx, hold_idx = stratified_split(data.labels, len(data), dc.holdout_fraction, seed=1234)
            if len(hold_idx) >= 2:
                eval_data = data.subset(hold_idx)
                data = data.subset(train_idx)
                notes.append(f"held out {len(hold_idx)} labelled images for evaluation "
                             f"({dc.holdout_fraction:.0%}); training on {len(data)}")
        if not data.labelled and eval_data is None:
            notes.append("no labels: kNN accuracy and the linear probe are skipped; the loss and the "
                         "collapse indicator still show progress")
        if self.method_cls.needs_labels and not data.labelled:
            raise ConfigError("method", f"{cfg.method} needs labels, and {dc.spec} is unlabeled; "
                                        "choose a dataset with class folders or another method")
        self.data, self.eval_data, self.notes = data, eval_data, notes
        self.bank_data = data if data.labelled and (eval_data is None or eval_data.class_names == data.class_names) \
            else None
        if eval_data is not None and self.bank_data is None:
            # labels only in the eval set: split it into a bank and a query half
            tr, te = stratified_split(eval_data.labels, len(eval_data), 0.5, seed=99)
            self.bank_data, self.eval_data = eval_data.subset(tr), eval_data.subset(te)

        # place the data: small datasets live on the training device as one uint8 tensor
        if not data.streaming:
            size_mb = data.images.numel() / 2**20
            if self.device.type != "cpu" and size_mb <= dc.in_memory_limit_mb:
                data.to(self.device)

        # model
        bname = cfg.backbone
        if bname == "auto":
            bname = default_backbone(self.device.type, "vit" if self.method_cls.backbone_kind == "vit" else "cnn")
        self.backbone_name = bname
        backbone = build_backbone(bname, dc.image_size)
        info = DataInfo(image_size=dc.image_size, num_classes=data.num_classes if data.labelled else 0)
        self.method = place_model(self.method_cls(method_cfg, backbone, info), self.device)
        if self.world > 1 and self.device.type == "cuda":
            self.method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.method)
        self.optimizer = build_optimizer(self.method, cfg) if self.method_cls.trains else None
        self.amp_dtype = autocast_dtype(self.device, cfg.precision)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 \
            and self.device.type == "cuda" else None

        bs = cfg.optim.batch_size
        per_rank = len(data) // self.world
        if bs > per_rank:
            self.notes.append(f"batch size {bs} is larger than the dataset ({per_rank} images per process); "
                              f"using {per_rank}")
            bs = per_rank
        self.batch_size = max(2, bs)
        self.steps_per_epoch = max(1, per_rank // self.batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch if cfg.epochs else 0
        self.budget_s = cfg.minutes * 60.0

        # fixed samples for embedding and reconstruction snapshots
        rng = np.random.default_rng(cfg.seed + 5)
        src = self.eval_data if self.eval_data is not None else self.data
        self.embed_source = src
        self.embed_idx = np.sort(rng.choice(len(src), size=min(cfg.eval.embed_size, len(src)), replace=False))
        self.recon_idx = rng.choice(len(src), size=min(8, len(src)), replace=False)

        if self.resume:
            self.load_checkpoint()
        if self.is_main:
            summary = data.summary()
            summary["skipped_files"] = [list(s) for s in getattr(data, "skipped", [])[:1000]]
            summary["notes"] = self.notes
            summary["eval"] = self.eval_data.summary() if self.eval_data is not None else None
            summary["backbone"] = bname
            write_json(self.run_dir / "data.json", summary)

    # -- checkpoints -----------------------------------------------------------------------
    def _progress_fraction(self) -> float:
        if self.total_steps:
            p = self.step / self.total_steps
            if self.budget_s:
                p = max(p, self.train_time / self.budget_s)
            return p
        return self.train_time / self.budget_s if self.budget_s else 0.0

    def checkpoint_state(self) -> dict:
        return {
            "format": 1,
            "model": {k: v.detach().cpu() for k, v in self.method.state_dict().items()},
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else {},
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "train_time": self.train_time, "method": self.cfg.method, "backbone": self.backbone_name,
            "config": self.cfg.to_dict(),
        }

    def save_checkpoint(self, keep_epoch: bool = False) -> Path | None:
        if not self.is_main or self.run_dir is None or not hasattr(self, "method"):
            return None
        import io

        buf = io.BytesIO()
        torch.save(self.checkpoint_state(), buf)
        data = buf.getvalue()
        path = self.run_dir / "checkpoints" / "last.pt"
        atomic_write_bytes(path, data)
        if keep_epoch:
            atomic_write_bytes(self.run_dir / "checkpoints" / f"epoch_{self.epoch:04d}.pt", data)
        self._last_ckpt = time.monotonic()
        if self.log:
            self.log.flush()
        self.emit(M.CheckpointSaved(str(path), self.step, float(self.epoch)))
        self.write_status(force=True)
        return path

    def load_checkpoint(self) -> None:
        path = self.run_dir / "checkpoints" / "last.pt" if self.run_dir else None
        if path is None or not path.exists():
            raise ConfigError("resume", f"no checkpoint to resume from in {self.run_dir} "
                                        "(checkpoints/last.pt is missing)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ConfigError("resume", f"the checkpoint {path} cannot be read ({exc}); "
                                        "it may be damaged: start a new run") from None
        self.method.load_state_dict(state["model"])
        if self.optimizer is not None and state.get("optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state.get("batch_in_epoch", 0))
        self.train_time = float(state.get("train_time", 0.0))
        if self.log:
            self.log.write({"type": "resume", "step": self.step, "epoch": self.epoch, "time": time.time()})

    # -- evaluation ------------------------------------------------------------------------
    def _features(self, data, indices=None):
        from engine.eval import extract_features

        return extract_features(self.method.encoder, data, indices, batch_size=512, device=self.device)

    def knn_monitor(self) -> dict:
        """Online kNN on held-out images and the collapse indicator."""
        from engine.eval import collapse_std, knn_accuracy

        e = self.cfg.eval
        values = {}
        rng = np.random.default_rng(self.cfg.seed + 11)
        if self.bank_data is not None and self.eval_data is not None:
            bank_idx = np.sort(rng.choice(len(self.bank_data), min(e.bank_size, len(self.bank_data)), replace=False))
            test_idx = np.sort(rng.choice(len(self.eval_data), min(e.monitor_size, len(self.eval_data)),
                                          replace=False))
            fb = self._features(self.bank_data, bank_idx)
            ft = self._features(self.eval_data, test_idx)
            yb = self.bank_data.get_labels(bank_idx).cpu()
            yt = self.eval_data.get_labels(test_idx).cpu()
            top1, top5 = knn_accuracy(fb, yb, ft, yt, self.eval_data.num_classes, e.knn_k, e.knn_temperature)
            values["knn_top1"] = top1
            if top5 is not None:
                values["knn_top5"] = top5
            values["collapse_std"] = collapse_std(ft)
            self.last_knn = top1
        else:
            idx = np.sort(rng.choice(len(self.data), min(e.monitor_size, len(self.data)), replace=False))
            values["collapse_std"] = collapse_std(self._features(self.data, idx))
        return values

    def final_eval(self) -> dict:
        from engine.eval import confusion_matrix, knn_accuracy, linear_probe, per_class_accuracy

        e = self.cfg.eval
        results: dict = {"method": self.cfg.method, "backbone": self.backbone_name, "step": self.step,
                         "epoch": self.epoch, "train_time_s": round(self.train_time, 1)}
        if self.bank_data is None or self.eval_data is None:
            results["note"] = "no labelled evaluation data: kNN and linear probe skipped"
            return results
        self.set_state("evaluating", "kNN and linear probe")
        fb = self._features(self.bank_data)
        ft = self._features(self.eval_data)
        yb, yt = self.bank_data.labels.cpu(), self.eval_data.labels.cpu()
        c = self.eval_data.num_classes
        top1, top5, pred = knn_accuracy(fb, yb, ft, yt, c, e.knn_k, e.knn_temperature, return_predictions=True)
        results.update({"knn_top1": top1, "knn_top5": top5, "num_train": len(fb), "num_test": len(ft),
                        "class_names": self.eval_data.class_names})
        conf = confusion_matrix(pred, yt, c)
        results["knn_per_class"] = per_class_accuracy(conf)
        results["knn_confusion"] = conf.tolist()
        if e.linear_probe_epochs:
            lin, lpred = linear_probe(fb, yb, ft, yt, c, epochs=e.linear_probe_epochs, seed=self.cfg.seed,
                                      return_predictions=True)
            results["linear_top1"] = lin
            lconf = confusion_matrix(lpred, yt, c)
            results["linear_per_class"] = per_class_accuracy(lconf)
            results["linear_confusion"] = lconf.tolist()
        return results

    def embed_snapshot(self) -> None:
        if not self.is_main:
            return
        feats = self._features(self.embed_source, self.embed_idx).numpy().astype(np.float32)
        labels = self.embed_source.get_labels(self.embed_idx)
        labels = None if labels is None else labels.cpu().numpy()
        msg = M.Embedding(self.step, float(self.epoch), feats, labels, self.embed_idx.copy())
        if self.run_dir is not None:
            out = self.run_dir / "embeddings" / f"step_{self.step:08d}.npz"
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.stem}.tmp.npz")
            np.savez(tmp, features=feats, labels=labels if labels is not None else np.zeros(0, np.int64),
                     indices=self.embed_idx, step=self.step, epoch=self.epoch)
            os.replace(tmp, out)
        self.emit(msg)

    @torch.no_grad()
    def reconstruction_snapshot(self) -> None:
        if not self.is_main:
            return
        x = self.embed_source.get(self.recon_idx).to(self.device).float().div(255)
        was = self.method.training
        self.method.eval()
        try:
            out = self.method.reconstruct(x, step_generator(self.cfg.seed, 0, 0, self.device))
        finally:
            self.method.train(was)
        if out is None:
            return

        def u8(t):
            return (t.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()

        self.emit(M.Reconstruction(self.step, float(self.epoch), u8(x), u8(out[0]), u8(out[1]), self.cfg.method))

    # -- training --------------------------------------------------------------------------
    def _sync_grads(self) -> None:
        grads = [p.grad for p in self.method.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n

    def _budget_reached(self) -> str | None:
        if self.total_steps and self.step >= self.total_steps:
            return "completed"
        if self.budget_s and self.train_time >= self.budget_s:
            return "time budget"
        return None

    def train(self) -> str:
        cfg = self.cfg
        self.set_state("running")
        self._last_ckpt = time.monotonic()
        acc: dict[str, torch.Tensor | float] = {}
        acc_n = 0
        images_since = 0
        t_emit = time.monotonic()
        emit_train_time = self.train_time
        reason = self._budget_reached()
        if not self.method_cls.trains:
            return "completed"
        while reason is None:
            order = epoch_order(len(self.data), cfg.seed, self.epoch)
            if self.world > 1:
                order = order[self.rank::self.world]
            self.method.train()
            for x_u8, labels, _idx in self.data.batches(self.batch_size, order, start=self.batch_in_epoch):
                self._handle_commands()
                if self.stop_requested:
                    return "stopped"
                t0 = time.perf_counter()
                lr = lr_at(self._progress_fraction(), cfg)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                g = step_generator(cfg.seed, self.step, self.rank, self.device)
                x = x_u8.to(self.device, non_blocking=True).float().div_(255)
                if labels is not None:
                    labels = labels.to(self.device, non_blocking=True)
                with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                    enabled=self.amp_dtype is not None):
                    out = self.method.training_step(x, labels, g)
                loss = out.loss
                self.optimizer.zero_grad(set_to_none=True)
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                    self.scaler.unscale_(self.optimizer)
                else:
                    loss.backward()
                if self.world > 1:
                    self._sync_grads()
                if cfg.optim.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.method.parameters(), cfg.optim.grad_clip)
                if self.scaler is not None:
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                else:
                    self.optimizer.step()
                self.method.after_step(self._progress_fraction())
                self.step += 1
                self.batch_in_epoch += 1
                images_since += x.shape[0] * self.world
                acc["loss"] = acc.get("loss", 0.0) + loss.detach().float()
                for k, v in out.metrics.items():
                    acc[k] = acc.get(k, 0.0) + (v.detach().float() if isinstance(v, torch.Tensor) else float(v))
                acc_n += 1
                if self.device.type == "cuda" and acc_n % 50 == 0:
                    torch.cuda.synchronize(self.device)
                self.train_time += time.perf_counter() - t0
                now = time.monotonic()
                reason = self._budget_reached()
                if now - t_emit >= EMIT_EVERY_S or reason is not None:
                    values = {k: _to_float(v) / acc_n for k, v in acc.items()}
                    if not math.isfinite(values["loss"]):
                        raise FloatingPointError(
                            f"the loss became {values['loss']} at step {self.step}: training diverged. "
                            "Lower the learning rate (or use fp32) and resume from the last checkpoint")
                    dt = max(1e-6, self.train_time - emit_train_time)
                    values["lr"] = lr
                    values["images_per_s"] = images_since / dt
                    self._log_step(values)
                    acc, acc_n, images_since = {}, 0, 0
                    t_emit, emit_train_time = now, self.train_time
                if self.is_main and cfg.checkpoint_every_minutes and \
                        time.monotonic() - self._last_ckpt >= cfg.checkpoint_every_minutes * 60:
                    self.save_checkpoint()
                self.write_status()
                if reason is not None:
                    break
            else:
                # the epoch ran to its end
                self.epoch += 1
                self.batch_in_epoch = 0
                self._end_of_epoch()
                reason = self._budget_reached()
                continue
            break
        if self.batch_in_epoch >= self.steps_per_epoch:  # the budget ended exactly with an epoch
            self.epoch += 1
            self.batch_in_epoch = 0
            self._end_of_epoch()  # its kNN monitor, reconstructions and embedding snapshot too
        return reason or "completed"

    def _log_step(self, values: dict) -> None:
        p = self._progress_fraction()
        eta = None
        if p > 0.01:
            eta = self.train_time * (1 - p) / p
        epoch_f = self.epoch + self.batch_in_epoch / self.steps_per_epoch
        msg = M.StepMetrics(self.step, round(epoch_f, 4), values, self.train_time, eta, min(1.0, p))
        if self.log:
            self.log.write({"type": "step", "step": self.step, "epoch": round(epoch_f, 4),
                            "time": round(self.train_time, 3), **{k: round(v, 6) for k, v in values.items()}})
        self.emit(msg)

    def _end_of_epoch(self) -> None:
        e = self.cfg.eval
        ep = self.epoch
        if e.knn_every_epochs and ep % e.knn_every_epochs == 0 and self.is_main:
            values = self.knn_monitor()
            self.emit(M.EvalResult("knn_monitor", self.step, float(ep), values))
            if self.log:
                self.log.write({"type": "eval", "kind": "knn_monitor", "step": self.step, "epoch": ep, **values})
            self.reconstruction_snapshot()
        if e.embed_every_epochs and ep % e.embed_every_epochs == 0:
            self.embed_snapshot()
        if self.cfg.checkpoint_every_epochs and ep % self.cfg.checkpoint_every_epochs == 0:
            self.save_checkpoint(keep_epoch=True)
        self.write_status(force=True)

    def export_encoder(self) -> Path | None:
        if not self.is_main or self.run_dir is None:
            return None
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.method.encoder.state_dict().items()}
        path = self.run_dir / "encoder.safetensors"
        save_file(state, str(path), metadata={"backbone": self.backbone_name, "method": self.cfg.method,
                                              "image_size": str(self.cfg.data.image_size)})
        return path

    # -- entry point -----------------------------------------------------------------------
    def run(self) -> dict:
        try:
            self.setup()
            for note in self.notes:
                self.emit(M.Warning(note))
            self.emit(M.RunStarted(
                run_dir=str(self.run_dir), config=self.cfg.to_dict(), device=self.device.type,
                device_name=device_name(self.device), num_images=len(self.data),
                steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps, start_step=self.step,
                resumed=self.resume, notes=tuple(self.notes)))
            reason = self.train()
            self.save_checkpoint()
            self.export_encoder()
            results = {}
            if reason != "stopped" and self.cfg.eval.final_eval and self.is_main:
                results = self.final_eval()
                write_json(self.run_dir / "results.json", results)
                self.emit(M.EvalResult("final", self.step, float(self.epoch),
                                       {k: v for k, v in results.items() if isinstance(v, (int, float))}))
                if self.log:
                    self.log.write({"type": "eval", "kind": "final", "step": self.step, "epoch": self.epoch,
                                    **{k: v for k, v in results.items() if isinstance(v, (int, float))}})
            self.state = "stopped" if reason == "stopped" else "finished"
            self.write_status(force=True, reason=reason)
            summary = {"reason": reason, "run_dir": str(self.run_dir), "step": self.step, "epoch": self.epoch,
                       "train_time_s": round(self.train_time, 1), **{k: v for k, v in results.items()
                                                                      if isinstance(v, (int, float, str))}}
            self.emit(M.RunFinished(reason, str(self.run_dir), self.step, summary))
            return summary
        except (ConfigError, DataError, Cancelled, FloatingPointError) as exc:
            return self._fail(str(exc), "")
        except torch.OutOfMemoryError:
            bs = self.cfg.optim.batch_size
            return self._fail(f"out of GPU memory at batch size {bs}; lower the batch size (e.g. {max(2, bs // 2)}) "
                              "or choose a smaller backbone, then resume", traceback.format_exc())
        except KeyboardInterrupt:
            self.save_checkpoint()
            return self._fail("interrupted", "")
        except Exception as exc:
            return self._fail(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        finally:
            if self.log:
                self.log.close()
            if self.world > 1 and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()

    def _fail(self, error: str, tb: str) -> dict:
        self.state = "failed"
        self.write_status(force=True, error=error)
        self.emit(M.RunFailed(error, tb, str(self.run_dir or "")))
        return {"reason": "failed", "error": error, "run_dir": str(self.run_dir or "")}


def train_run(config: RunConfig, emit=None, control=None, run_dir=None, resume=False) -> dict:
    return Session(config, emit, control, run_dir, resume).run()


def resume_config(run_dir: str | Path) -> RunConfig:
    """The config of an existing run folder (to resume it)."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise ConfigError("resume", f"{run_dir} is not a run folder (config.json is missing)")
    return RunConfig.load(path)


__all__ = ["Session", "Control", "QueueControl", "FlagControl", "train_run", "resume_config", "resolve_device"]
