"""The run folder: everything a run writes, readable while it is being written.

```
runs/20261122-153000-simclr-shapes/
  config.json          the full RunConfig
  data.json            what the dataset turned out to be (size, classes, skipped files)
  status.json          state, pid, step, epoch, heartbeat time (a live run updates it)
  metrics.jsonl        append-only: one JSON object a line (schema below; read it with read_metrics)
  results.json         final evaluation (kNN, linear probe, per-class accuracy, confusion matrix)
  checkpoints/last.pt  model, optimiser and progress (loaded with weights_only=True)
  checkpoints/epoch_0010.pt   kept every N epochs when asked
  encoder.safetensors  the trained encoder's weights
  encoder.json         only in an opened encoder's folder (File > Open encoder, engine.encoders): its spec,
                       architecture and load report; it has no checkpoint and no metrics
  embeddings/step_00001234.npz  embedding snapshots (features, labels, indices)
  tensorboard/         the same scalars for TensorBoard (when the optional package is installed)
```

``metrics.jsonl``, one record a line; every record has ``type`` and most have ``step`` (optimiser steps so
far, over all processes):

- ``{"type": "step", "step", "epoch" (fractional), "samples" (images so far), "time" (seconds of training),
  "loss", "lr", "images_per_s", ...}``: the means since the previous record (a few a second), plus the
  method's own metrics (``pretext_acc``, ``pos_cos``/``neg_cos``, ...);
- ``{"type": "eval", "kind": "knn_monitor", "step", "epoch", "knn_top1", "knn_top5", "collapse_std",
  "effective_rank", ...}``: the online monitor (the snapshot at step 0 adds ``random_init_knn``; what it scores
  is in ``data.json``'s ``monitor``); ``"kind": "final"``: the final evaluation's numbers (``results.json``
  holds them with their ``protocol``);
- ``{"type": "resume", "step", "epoch", "samples", "processes", "time"[, "repaired_bytes"]}``: a resumed run
  continues from ``step`` (step records after it were never checkpointed: :func:`clean_resumed` drops them);
- ``{"type": "threads", "step", "time", "threads", "from"}``: the CPU thread count changed;
- ``{"type": "collapse", "step", "where", "text"}``: a sign of collapse appeared;
- ``{"type": "diverged", "step", "loss", "last_good_step", "time"}``: the run diverged.

Every number is strict JSON (a non-finite value is written as ``null``).
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

RUN_FILES = ("config.json", "metrics.jsonl", "status.json")
ACTIVE_STATES = ("running", "paused", "loading", "evaluating")
STALE_AFTER_S = 120.0  # a live run refreshes status.json every few seconds


def safe_name(text: str, max_len: int = 60) -> str:
    """A folder-name-safe slug of user text: letters, digits, '.', '_' and '-' only; never a path."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text or "").strip("-.")
    text = re.sub(r"-{2,}", "-", text)
    return text[:max_len].strip("-.") or "run"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a temporary file beside it, then a rename). A failed
    write (a full disk, Ctrl-C) removes its temporary file and leaves the old ``path`` as it was;
    an OSError names ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename != str(path):
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from None
        raise


def remove_stale_temporaries(run_dir: str | Path) -> list[Path]:
    """Remove the temporary files of writes that never finished (a writer killed mid-checkpoint
    leaves ``checkpoints/.last.pt.<pid>.tmp``). Only the run folder's writer calls this, under its
    lock, so every temporary file it finds belongs to a writer that is gone. The removed paths."""
    run_dir = Path(run_dir)
    removed = []
    for folder in (run_dir, run_dir / "checkpoints", run_dir / "embeddings"):
        try:
            names = list(folder.iterdir())
        except OSError:
            continue
        for p in names:
            if p.name.startswith(".") and (p.name.endswith(".tmp") or p.name.endswith(".tmp.npz")) and p.is_file():
                try:
                    p.unlink()
                    removed.append(p)
                except OSError:
                    pass
    return removed


def remove_if_empty(run_dir: str | Path) -> bool:
    """Remove a run folder that holds nothing (but an ended writer claim); True if it was removed."""
    d = Path(run_dir)
    try:
        if not d.is_dir() or {p.name for p in d.iterdir()} - {LOCK_FILE}:
            return False
        (d / LOCK_FILE).unlink(missing_ok=True)
        d.rmdir()
        return True
    except OSError:
        return False


def json_safe(obj):
    """``obj`` with every NaN or infinite float replaced by None: strict JSON (no bare NaN)."""
    if type(obj).__module__ == "numpy" and hasattr(obj, "tolist"):  # numpy scalars and arrays
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(Path(path), text.encode("utf-8"))


def write_json(path: Path, obj) -> None:
    atomic_write_text(Path(path), json.dumps(json_safe(obj), indent=2, default=_json_default, allow_nan=False))


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def data_label(spec: str) -> str:
    spec = spec.strip()
    if spec.lower().startswith(("builtin:", "torchvision:", "tv:")):
        parts = spec.split(":")
        return parts[1] if len(parts) > 1 else parts[0]
    p = Path(spec)
    return p.name if p.name not in ("train", "val", "test") else f"{p.parent.name}-{p.name}"


def new_run_dir(runs_root: str | Path, method: str, data_spec: str, name: str = "") -> Path:
    """A fresh, unique run folder under ``runs_root`` (created)."""
    root = Path(runs_root).expanduser()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{safe_name(name) if name else safe_name(method + '-' + data_label(data_spec))}"
    root.mkdir(parents=True, exist_ok=True)
    for k in range(1000):
        cand = root / (base if k == 0 else f"{base}-{k}")
        try:
            cand.mkdir()
            return cand
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run folder in {root}")


TORN_FILE = "metrics.jsonl.torn"


def repair_tail(path: Path) -> int:
    """A JSON-lines file that a killed writer left with a half-written last line ends at its last whole
    line again; the torn bytes are kept in ``metrics.jsonl.torn`` beside it (nothing is thrown away).
    Returns how many bytes were moved (0: the file ended with a whole line)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size == 0:
                return 0
            back = min(size, 1 << 20)
            fh.seek(size - back)
            tail = fh.read()
    except OSError:
        return 0
    if tail.endswith(b"\n"):
        return 0
    cut = tail.rfind(b"\n")
    if cut < 0 and back < size:
        return 0  # a last line over a megabyte: not ours to cut
    torn = tail[cut + 1:]
    with open(path.with_name(TORN_FILE), "ab") as fh:
        fh.write(torn + b"\n")
    with open(path, "r+b") as fh:
        fh.truncate(size - len(torn))
    return len(torn)


class MetricsLog:
    """Append-only JSON-lines log, flushed at most once a second (and on close). A torn last line left by a
    killed writer is repaired first (:func:`repair_tail`; ``repaired``: the bytes moved aside), so every
    line of the file stays a whole record."""

    def __init__(self, path: Path, flush_every_s: float = 1.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired = repair_tail(self.path) if self.path.exists() else 0
        self._fh = open(self.path, "a", encoding="utf-8")
        self._last = time.monotonic()
        self.flush_every_s = flush_every_s

    def write(self, record: dict) -> None:
        self._fh.write(json.dumps(json_safe(record), default=_json_default, separators=(",", ":"),
                                  allow_nan=False) + "\n")
        now = time.monotonic()
        if now - self._last >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        self._fh.flush()
        self._last = time.monotonic()

    def close(self) -> None:
        """Flush and close; a flush that fails (a full disk) still closes the file, then raises."""
        if not self._fh.closed:
            try:
                self._fh.flush()
            finally:
                try:
                    self._fh.close()
                except OSError:
                    pass


def read_metrics(run_dir: str | Path, torn: list | None = None) -> list[dict]:
    """The run's ``metrics.jsonl`` as a list of records (dicts), what a resumed run continues from only
    (:func:`clean_resumed`): ready for ``pandas.DataFrame(records)``. The records' schema is in this
    module's docstring; a torn line is skipped (and reported in ``torn``), a half-written last line (a live
    run) left out."""
    records, _ = tail_metrics(run_dir, 0, torn)
    return clean_resumed(records)


def tail_metrics(run_dir: str | Path, offset: int = 0, torn: list | None = None) -> tuple[list[dict], int]:
    """Records from ``metrics.jsonl`` starting at byte ``offset``; returns (records, new offset): for
    following a live run (the Curves tail it).

    A half-written last line (a live run) is left for the next read. A line that is not a JSON object (one
    torn by a crash before a resume repaired such tails) is skipped, and reported in ``torn`` when given:
    ``(byte offset, its first 60 characters)``. :func:`clean_resumed` applies the ``resume`` records.
    """
    path = Path(run_dir) / "metrics.jsonl"
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
    except OSError:
        return [], offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], offset
    records = []
    pos = offset
    for line in chunk[:end].split(b"\n"):
        at, pos = pos, pos + len(line) + 1
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if isinstance(rec, dict):
            records.append(rec)
        elif torn is not None:
            torn.append((at, line[:60].decode("utf-8", "replace")))
    return records, offset + end + 1


def clean_resumed(records: list[dict]) -> list[dict]:
    """Apply ``resume`` markers: keep only the records that the resumed run continues from."""
    out: list[dict] = []
    for rec in records:
        if rec.get("type") == "resume":
            step = rec.get("step", 0)
            out = [r for r in out if r.get("step", 0) <= step]
        out.append(rec)
    return out


@dataclass
class RunInfo:
    path: str
    method: str
    data: str
    started: float
    duration_s: float
    state: str
    step: int
    knn_top1: float | None
    linear_top1: float | None
    live: bool
    kind: str = "run"  # "run", or "encoder": an encoder opened from elsewhere (encoder.json), not trained here
    encoder: str = ""  # an encoder's name (its spec)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _pid_alive(pid: int) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def read_status(run_dir: str | Path) -> dict:
    """A run's ``status.json`` as every reader should see it: a run that says it is active (running,
    loading, paused, evaluating) but whose process is gone (dead pid on this host, or a heartbeat older than
    ``STALE_AFTER_S``) is ``interrupted``, with ``live`` False and ``was`` the state it claimed. ``{}`` when
    there is none."""
    status = read_json(Path(run_dir) / "status.json", {})
    status = dict(status) if isinstance(status, dict) else {}
    state = status.get("state", "unknown")
    active = state in ACTIVE_STATES
    try:
        fresh = time.time() - float(status.get("updated", 0) or 0) < STALE_AFTER_S
        pid = int(status.get("pid", 0) or 0)
    except (TypeError, ValueError):
        fresh, pid = False, 0
    same_host = status.get("host") in (None, socket.gethostname())
    live = active and fresh and (not same_host or _pid_alive(pid))
    if active and not live:
        status["was"], status["state"] = state, "interrupted"
    status["live"] = bool(live)
    return status


def run_info(run_dir: str | Path) -> RunInfo | None:
    """Summary of a run folder for the history list, or None if it is not a run folder."""
    d = Path(run_dir)
    cfg = read_json(d / "config.json")
    if not isinstance(cfg, dict):
        return None
    status = read_status(d)
    results = read_json(d / "results.json", {}) or {}
    state, live = status.get("state", "unknown"), status["live"]
    started = status.get("started") or (d / "config.json").stat().st_mtime
    monitor = status.get("last_knn")
    entry = encoder_entry(d)
    return RunInfo(
        path=str(d), method="encoder" if entry else cfg.get("method", "?"),
        data=(cfg.get("data") or {}).get("spec", "?"),
        started=float(started), duration_s=float(status.get("elapsed_s", 0.0)), state=state,
        step=int(status.get("step", 0)), knn_top1=results.get("knn_top1", monitor),
        linear_top1=results.get("linear_top1"), live=bool(live), kind="encoder" if entry else "run",
        encoder=str(entry.get("name") or entry.get("spec") or "") if entry else "")


ENCODER_ENTRY = "encoder.json"


def encoder_entry(run_dir: str | Path) -> dict | None:
    """What an opened encoder's folder says about it (``encoder.json``: spec, arch, name, report, ...), or None
    for a run the workbench trained."""
    entry = read_json(Path(run_dir) / ENCODER_ENTRY)
    return entry if isinstance(entry, dict) else None


def list_runs(*roots: str | Path) -> list[RunInfo]:
    out = []
    seen = set()
    for root in roots:
        root = Path(root).expanduser()
        if not root.is_dir():
            continue
        candidates = [root] if (root / "config.json").exists() else sorted(root.iterdir())
        for d in candidates:
            if not d.is_dir() or d.resolve() in seen:
                continue
            info = run_info(d)
            if info is not None:
                seen.add(d.resolve())
                out.append(info)
    out.sort(key=lambda r: r.started, reverse=True)
    return out


def checkpoint_path(run_dir: str | Path, epoch: int | None = None) -> Path:
    """Where a run's checkpoint is written: ``checkpoints/last.pt``, or the copy kept at ``epoch``."""
    name = "last.pt" if epoch is None else f"epoch_{epoch:04d}.pt"
    return Path(run_dir) / "checkpoints" / name


def skipped_files(run_dir: str | Path) -> list[tuple[str, str]]:
    """Every file a run left out, training and evaluation parts, each file once (from data.json)."""
    info = read_json(Path(run_dir) / "data.json", {}) if run_dir else {}
    info = info if isinstance(info, dict) else {}
    out: dict[str, str] = {}
    for part in (info, info.get("eval") or {}):
        for item in part.get("skipped_files") or []:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                out.setdefault(str(item[0]), str(item[1]))
    return sorted(out.items())


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The run's latest checkpoint, or None when it has none yet."""
    p = checkpoint_path(run_dir)
    return p if p.exists() else None


def encoder_path(run_dir: str | Path) -> Path:
    """Where a run's trained encoder weights (safetensors) are written."""
    return Path(run_dir) / "encoder.safetensors"


# -- one writer per run folder -------------------------------------------------------------------
LOCK_FILE = ".writer.lock"


class RunLock:
    """This process's claim to write a run folder; released by :meth:`release`, by leaving a
    ``with`` block, or by the process ending in any way (the kernel drops the lock of a killed
    process, so a stale claim never needs cleaning up). ``took_over`` is the pid of a dead
    writer whose claim this one replaced, else 0."""

    def __init__(self, run_dir: Path, fd: int, took_over: int = 0):
        self.run_dir = run_dir
        self.path = run_dir / LOCK_FILE
        self._fd: int | None = fd
        self.took_over = took_over

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # an ended claim (cleared while still held: no race with a next writer)
            if _fcntl is not None:
                _fcntl.flock(fd, _fcntl.LOCK_UN)
        except OSError:
            pass
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):  # pragma: no cover - a dropped lock object frees its claim
        try:
            self.release()
        except Exception:
            pass


try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None


def _holder_text(info: dict) -> str:
    pid, host = info.get("pid", "?"), info.get("host") or "?"
    where = "" if host == socket.gethostname() else f" on {host}"
    return f"process {pid}{where}"


def live_writer(run_dir: str | Path) -> dict | None:
    """``{"pid", "host", ...}`` of another live process writing ``run_dir`` according to its
    ``status.json`` heartbeat (an active state refreshed within ``STALE_AFTER_S`` by a pid that
    is alive, or on another host), else None."""
    status = read_json(Path(run_dir) / "status.json", {}) or {}
    if status.get("state") not in ACTIVE_STATES:
        return None
    try:
        pid, updated = int(status.get("pid", 0)), float(status.get("updated", 0))
    except (TypeError, ValueError):
        return None
    if time.time() - updated >= STALE_AFTER_S:
        return None
    same_host = status.get("host") in (None, socket.gethostname())
    if same_host and (pid == os.getpid() or not _pid_alive(pid)):
        return None
    return {"pid": pid, "host": status.get("host") or socket.gethostname(), "updated": updated}


def acquire_writer(run_dir: str | Path) -> RunLock:
    """Claim ``run_dir`` (created if missing) for writing, or raise :class:`engine.errors.RunBusy`
    naming the live writer. A run folder has one writer: a second process (a second ``--resume``,
    the window and a headless job) is refused while the first lives; the claim of a process that
    died (killed, crashed, machine rebooted) is taken over."""
    from engine.errors import RunBusy

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        previous = _read_lock(fd)
        if _fcntl is not None:
            try:
                _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
            except OSError:
                raise RunBusy(f"{run_dir} is being written by {_holder_text(previous)}; a run folder has one "
                              "writer: wait for it to end or stop it, then try again",
                              int(previous.get("pid", 0) or 0), str(previous.get("host", ""))) from None
        elif previous.get("host") == socket.gethostname() and _pid_alive(int(previous.get("pid", 0) or 0)) \
                and int(previous.get("pid", 0)) != os.getpid():
            raise RunBusy(f"{run_dir} is being written by {_holder_text(previous)}; a run folder has one "
                          "writer: wait for it to end or stop it, then try again", int(previous["pid"]))
        live = live_writer(run_dir)  # a writer that holds no lock (an older version, another host)
        if live is not None:
            raise RunBusy(f"{run_dir} is being written by {_holder_text(live)} (its status.json heartbeat is "
                          f"{time.time() - live['updated']:.0f} s old); a run folder has one writer: wait for it "
                          "to end or stop it, then try again", live["pid"], live["host"])
        mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, mine.encode())
    except BaseException:
        os.close(fd)
        raise
    old_pid = int(previous.get("pid", 0) or 0)
    return RunLock(run_dir, fd, took_over=old_pid if old_pid and old_pid != os.getpid() else 0)


def _read_lock(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
