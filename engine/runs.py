"""The run folder: everything a run writes, readable while it is being written.

```
runs/20261122-153000-simclr-shapes/
  config.json          the full RunConfig
  data.json            what the dataset turned out to be (size, classes, skipped files)
  status.json          state, pid, step, epoch, heartbeat time (a live run updates it)
  metrics.jsonl        append-only: one JSON object a line ({"type": "step"|"eval"|"resume", ...})
  results.json         final evaluation (kNN, linear probe, per-class accuracy, confusion matrix)
  checkpoints/last.pt  model, optimiser and progress (loaded with weights_only=True)
  checkpoints/epoch_0010.pt   kept every N epochs when asked
  encoder.safetensors  the trained encoder's weights
  embeddings/step_00001234.npz  embedding snapshots (features, labels, indices)
```
"""

from __future__ import annotations

import json
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(Path(path), text.encode("utf-8"))


def write_json(path: Path, obj) -> None:
    atomic_write_text(Path(path), json.dumps(obj, indent=2, default=_json_default))


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


class MetricsLog:
    """Append-only JSON-lines log, flushed at most once a second (and on close)."""

    def __init__(self, path: Path, flush_every_s: float = 1.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._last = time.monotonic()
        self.flush_every_s = flush_every_s

    def write(self, record: dict) -> None:
        self._fh.write(json.dumps(record, default=_json_default, separators=(",", ":")) + "\n")
        now = time.monotonic()
        if now - self._last >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        self._fh.flush()
        self._last = time.monotonic()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            self._fh.close()


def read_metrics(run_dir: str | Path, offset: int = 0) -> tuple[list[dict], int]:
    """Records from ``metrics.jsonl`` starting at byte ``offset``; returns (records, new offset).

    A half-written last line (a live run) is left for the next read. A ``resume`` record drops
    the step records after the step it resumed from (they were never checkpointed).
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
    for line in chunk[:end].splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
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


def run_info(run_dir: str | Path) -> RunInfo | None:
    """Summary of a run folder for the history list, or None if it is not a run folder."""
    d = Path(run_dir)
    cfg = read_json(d / "config.json")
    if not isinstance(cfg, dict):
        return None
    status = read_json(d / "status.json", {}) or {}
    results = read_json(d / "results.json", {}) or {}
    state = status.get("state", "unknown")
    updated = status.get("updated", 0)
    active = state in ACTIVE_STATES
    fresh = time.time() - float(updated) < STALE_AFTER_S
    same_host = status.get("host") in (None, socket.gethostname())
    live = active and fresh and (not same_host or _pid_alive(int(status.get("pid", 0))))
    if active and not live:
        state = "interrupted"
    started = status.get("started") or (d / "config.json").stat().st_mtime
    monitor = status.get("last_knn")
    return RunInfo(
        path=str(d), method=cfg.get("method", "?"), data=(cfg.get("data") or {}).get("spec", "?"),
        started=float(started), duration_s=float(status.get("elapsed_s", 0.0)), state=state,
        step=int(status.get("step", 0)), knn_top1=results.get("knn_top1", monitor),
        linear_top1=results.get("linear_top1"), live=bool(live))


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


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The run's latest checkpoint, or None when it has none yet."""
    p = checkpoint_path(run_dir)
    return p if p.exists() else None


def encoder_path(run_dir: str | Path) -> Path:
    """Where a run's trained encoder weights (safetensors) are written."""
    return Path(run_dir) / "encoder.safetensors"
