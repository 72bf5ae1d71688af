"""The run folder a training session writes (format in :mod:`engine.runs`): config.json, the
status.json heartbeat, metrics.jsonl, data.json and results.json. Only the main process writes."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from engine.errors import UsageError
from engine.runs import (
    MetricsLog,
    acquire_writer,
    json_safe,
    new_run_dir,
    read_json,
    remove_if_empty,
    remove_stale_temporaries,
    write_json,
)
from engine.training.checkpoints import run_config
from engine.training.scalars import Scalars

STATUS_EVERY_S = 5.0


class RunRecord:
    def __init__(self, run_dir: Path, log: MetricsLog, started: float):
        self.run_dir = run_dir
        self.log = log
        self._status: dict = {"started": started}
        self._last_status = 0.0
        self.scalars = Scalars.open(run_dir)  # TensorBoard's copy of the records (None: not installed)

    @classmethod
    def open(cls, cfg, run_dir: str | Path | None, resume: bool) -> RunRecord:
        """A fresh run folder under ``cfg.runs_root`` (or ``run_dir``); a resumed one keeps its config."""
        run_dir = Path(run_dir) if run_dir else new_run_dir(cfg.runs_root, cfg.method, cfg.data.spec, cfg.name)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            cfg.save(run_dir / "config.json")
        old = read_json(run_dir / "status.json", {}) or {}
        return cls(run_dir, MetricsLog(run_dir / "metrics.jsonl"), old.get("started", time.time()))

    @classmethod
    def start(cls, cfg, run_dir: Path | None, resume: dict | None, claim: Callable[[Path], None]) -> RunRecord:
        """Create the folder of a new run (``claim`` takes it first; a folder that already holds a run is
        refused) or reopen a resumed one (already claimed; its config.json takes the changes ``--resume``
        allowed, the device excepted: that is this session's only); ``resume``: the ``resume`` record
        (step, epoch, samples, processes) of a resumed run, None for a new one."""
        if resume:
            stored = run_config(run_dir).to_dict()
            changed = cfg.to_dict() | {"device": stored.get("device", "auto")}
            if changed != stored:
                type(cfg).from_dict(changed).save(run_dir / "config.json")
        else:
            where = run_dir if run_dir is not None else Path(cfg.runs_root).expanduser()
            try:
                if run_dir is None:
                    run_dir = new_run_dir(cfg.runs_root, cfg.method, cfg.data.spec, cfg.name)
                claim(run_dir)
            except OSError as exc:  # a read-only or missing place: nothing was started, the user can fix it
                raise UsageError(f"cannot create the run folder in {where} ({exc.strerror or exc}); choose a "
                                 "writable runs folder (--runs-root, or runs_root in the Run panel) or fix its "
                                 "permissions") from None
            if (run_dir / "config.json").exists():
                raise UsageError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                                 "or choose another run folder")
        record = cls.open(cfg, run_dir, resume is not None)
        if resume is not None:
            repaired = {"repaired_bytes": record.log.repaired} if record.log.repaired else {}
            record.write({"type": "resume", **resume, **repaired, "time": time.time()})
        return record

    def status(self, force: bool = False, in_place: bool = False, **fields) -> None:
        """Refresh status.json (at most every few seconds unless ``force``): state, step, pid, heartbeat.
        ``in_place``: when the atomic write fails (a full disk has no room for a second copy),
        overwrite the file in place, so a failed run never keeps saying 'running'."""
        now = time.time()
        if not force and now - self._last_status < STATUS_EVERY_S:
            return
        self._last_status = now
        self._status.update({"pid": os.getpid(), "host": socket.gethostname(), "updated": now, **fields})
        path = self.run_dir / "status.json"
        try:
            write_json(path, self._status)
        except OSError:
            if in_place:
                _overwrite(path, json.dumps(json_safe(self._status), indent=2, default=str).encode())

    def write(self, record: dict) -> None:
        self.log.write(record)
        if self.scalars is not None:
            try:
                self.scalars.write(record)
            except Exception:  # noqa: BLE001 - a broken writer of the optional copy never stops a run
                self.scalars = None

    def write_data(self, data, eval_data, notes: list[str], backbone: str, monitor: dict | None = None) -> None:
        """data.json: what the dataset turned out to be, the notes about it, the backbone used and what the
        online kNN monitor scores (``monitor``: its images and how, so every figure can say what it is)."""
        summary = data.summary()
        summary["notes"] = notes
        summary["eval"] = eval_data.summary() if eval_data is not None else None
        summary["backbone"] = backbone
        if monitor is not None:
            summary["monitor"] = monitor
        write_json(self.run_dir / "data.json", summary)

    def write_results(self, results: dict) -> None:
        write_json(self.run_dir / "results.json", results)

    def flush(self) -> None:
        self.log.flush()
        if self.scalars is not None:
            self.scalars.flush()

    def close(self) -> None:
        try:
            if self.scalars is not None:
                self.scalars.close()
        except Exception:  # noqa: BLE001 - the optional copy; metrics.jsonl is what counts
            pass
        self.log.close()


def claim(run_dir: Path, warn: Callable[[str], None]) -> tuple[object, list[str]]:
    """Take the run folder's writer lock (the caller holds it until its session ends) and clear what a
    killed writer left: (the lock, notes)."""
    lock = acquire_writer(run_dir)
    if lock.took_over:
        warn(f"took over {run_dir} from process {lock.took_over}, which ended without releasing it")
    removed = remove_stale_temporaries(run_dir)
    notes = [f"removed {len(removed)} unfinished temporary file(s) left by a writer that was killed mid-write: "
             f"{', '.join(p.name for p in removed[:3])}"] if removed else []
    return lock, notes


def abandon(run_dir: Path, lock) -> None:
    """A new run that failed on bad input leaves no folder behind (the window makes one before the engine
    process starts): release this process's claim and remove the folder if empty; one another process
    holds stays."""
    if lock is None and (run_dir / ".writer.lock").exists():
        return
    if lock is not None:
        lock.release()
    remove_if_empty(run_dir)


def _overwrite(path: Path, data: bytes) -> None:
    """Rewrite a small file in place (its blocks are reused: this works on a full disk)."""
    try:
        with open(path, "r+b") as fh:
            fh.write(data)
            fh.truncate(len(data))
    except OSError:
        pass


__all__ = ["RunRecord", "STATUS_EVERY_S", "claim", "abandon"]
