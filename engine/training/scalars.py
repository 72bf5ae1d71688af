"""TensorBoard scalars of a run, beside its ``metrics.jsonl``, for the tools people already use.

Every record the run writes (:class:`engine.training.record.RunRecord`) is also written as TensorBoard
scalars in ``RUN/tensorboard/``, so ``tensorboard --logdir runs`` shows every run with its loss, learning rate,
speed, method metrics (``train/...``), the online kNN monitor and collapse indicators (``monitor/...``), the
final evaluation (``final/...``) and the thread count (``system/threads``); a collapse alarm is a text entry.
It needs the optional ``tensorboard`` package (``pip install 'ssl-workbench[tensorboard]'``): without it, or
with ``SSLWB_TENSORBOARD=0``, nothing is written and nothing else changes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

FOLDER = "tensorboard"
_SKIP = {"type", "kind", "step", "epoch", "time", "samples"}


class Scalars:
    def __init__(self, writer):
        self.writer = writer

    @classmethod
    def open(cls, run_dir: Path) -> Scalars | None:
        """A writer into ``run_dir/tensorboard``, or None (no tensorboard package, or switched off)."""
        if os.environ.get("SSLWB_TENSORBOARD", "1").strip() == "0":
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - the optional package is missing (or broken): no scalars
            return None
        try:
            return cls(SummaryWriter(log_dir=str(Path(run_dir) / FOLDER), flush_secs=5))
        except OSError:
            return None

    def write(self, record: dict) -> None:
        """The scalars of one metrics record (what does not fit a scalar is left to metrics.jsonl)."""
        typ, step = record.get("type"), record.get("step")
        if not isinstance(step, int):
            return
        if typ == "step":
            prefix = "train"
        elif typ == "eval":
            prefix = "final" if record.get("kind") == "final" else "monitor"
        elif typ == "threads":
            self.writer.add_scalar("system/threads", float(record.get("threads", 0)), step)
            return
        elif typ == "collapse":
            self.writer.add_text("collapse", f"step {step}: {record.get('text', '')}", step)
            return
        else:
            return
        for key, value in record.items():
            if key in _SKIP or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{key}", float(value), step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


__all__ = ["Scalars", "FOLDER"]
