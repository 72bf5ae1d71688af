"""The curves' data without Qt: growing per-metric buffers of a run, metrics.jsonl records turned into
blocks, and the bias-corrected EMA used for smoothing (cached, extended as points arrive)."""

from __future__ import annotations

import numpy as np

IGNORED = {"step", "epoch", "time", "type", "kind"}
X_KINDS = ("step", "epoch", "time")
# values drawn as a level line in another metric's plot, not as a curve of their own: the kNN accuracy of
# the randomly initialised encoder (the session scores it at step 0), the reference any learning must beat
REFERENCES = {"random_init_knn": "knn_top1"}


def run_facts(run_dir) -> dict:
    """What the curves label with, from the run folder: ``num_classes`` the kNN accuracy is scored over
    (data.json: the evaluation set's, else the training set's; None when unlabelled or not written yet)
    and ``probe_epochs`` of its final linear probe (config.json; None when unknown)."""
    from pathlib import Path

    from engine.runs import read_json

    out = {"num_classes": None, "probe_epochs": None}
    if not run_dir:
        return out
    d = read_json(Path(run_dir) / "data.json", {}) or {}
    for part in (d.get("eval"), d):
        names = part.get("class_names") if isinstance(part, dict) else None
        if names:
            out["num_classes"] = len(names)
            break
    cfg = read_json(Path(run_dir) / "config.json", {}) or {}
    epochs = (cfg.get("eval") or {}).get("linear_probe_epochs") if isinstance(cfg, dict) else None
    if isinstance(epochs, int) and not isinstance(epochs, bool):
        out["probe_epochs"] = epochs
    return out


class Series:
    """Growing buffers for one metric of one run: step, epoch, time and value."""

    def __init__(self, capacity: int = 1024):
        self.n = 0
        self._a = np.empty((4, capacity), dtype=np.float64)

    def _grow(self, need: int) -> None:
        cap = self._a.shape[1]
        if need > cap:
            new = np.empty((4, max(need, cap * 2)), dtype=np.float64)
            new[:, :self.n] = self._a[:, :self.n]
            self._a = new

    def append(self, step: float, epoch: float, t: float, y: float) -> None:
        self._grow(self.n + 1)
        self._a[:, self.n] = (step, epoch, t, y)
        self.n += 1

    def extend(self, block: np.ndarray) -> None:
        """``block``: (4, k) rows step, epoch, time, value."""
        k = block.shape[1]
        self._grow(self.n + k)
        self._a[:, self.n:self.n + k] = block
        self.n += k

    def truncate_after(self, step: float) -> None:
        keep = np.flatnonzero(self._a[0, :self.n] <= step)
        self.n = int(keep[-1]) + 1 if len(keep) else 0

    def x(self, kind: str) -> np.ndarray:
        return self._a[X_KINDS.index(kind), :self.n]

    @property
    def y(self) -> np.ndarray:
        return self._a[3, :self.n]

    @property
    def step(self) -> np.ndarray:
        return self._a[0, :self.n]


def records_to_blocks(records: list[dict]) -> tuple[dict, dict, dict]:
    """metrics.jsonl records -> ({key: (4, k) array} of step values, same of eval values, final values).
    Runs on an I/O thread (a long log is parsed there, not on the GUI thread)."""
    from engine.runs import clean_resumed

    records = clean_resumed(records)
    steps: dict[str, list] = {}
    evals: dict[str, list] = {}
    final: dict = {}
    last_t = 0.0
    for r in records:
        typ = r.get("type")
        s, e = float(r.get("step", 0)), float(r.get("epoch", 0))
        if typ == "step":
            last_t = float(r.get("time", last_t))
            for k, v in r.items():
                if k not in IGNORED and isinstance(v, (int, float)) and not isinstance(v, bool):
                    steps.setdefault(k, []).append((s, e, last_t, float(v)))
        elif typ == "eval":
            if r.get("kind") == "final":
                final = {k: v for k, v in r.items() if k not in IGNORED}
                continue
            for k, v in r.items():
                if k not in IGNORED and isinstance(v, (int, float)) and not isinstance(v, bool):
                    evals.setdefault(k, []).append((s, e, last_t, float(v)))
    def to_blocks(d):
        return {k: np.asarray(v, dtype=np.float64).T.reshape(4, -1) for k, v in d.items()}

    return to_blocks(steps), to_blocks(evals), final


def _ema_raw(y: np.ndarray, alpha: float, prev: float = 0.0) -> np.ndarray:
    """s_t = a s_(t-1) + (1 - a) y_t from s_(-1) = prev, without a python loop per point."""
    n = len(y)
    if n == 0:
        return y.copy()
    tail = int(np.ceil(16 / -np.log10(alpha)))  # a**tail < 1e-16: older points no longer count
    if tail <= 64:  # light smoothing: a short convolution is exact to rounding
        kernel = (1 - alpha) * alpha ** np.arange(tail + 1, dtype=np.float64)
        out = np.convolve(y, kernel)[:n]
        out += prev * alpha ** np.arange(1, n + 1, dtype=np.float64)
        return out
    # heavy smoothing: closed form per block, short enough that a**-block stays finite
    block = int(min(4096, 100 * np.log(10) / -np.log(alpha)))
    out = np.empty(n, dtype=np.float64)
    powers = alpha ** -np.arange(block, dtype=np.float64)
    up_all = alpha ** np.arange(1, block + 1, dtype=np.float64)
    for start in range(0, n, block):
        chunk = y[start:start + block]
        k = len(chunk)
        up = up_all[:k]
        out[start:start + k] = up * prev + np.cumsum(chunk * powers[:k]) * (1 - alpha) * (up / alpha)
        prev = out[start + k - 1]
    return out


def ema(y: np.ndarray, alpha: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard's smoothing), vectorised."""
    y = np.asarray(y, dtype=np.float64)
    if alpha <= 0 or len(y) < 2:
        return y
    return _ema_raw(y, alpha) / (1 - alpha ** np.arange(1, len(y) + 1, dtype=np.float64))


class EmaCache:
    """The smoothed copy of a growing series, extended by the new points only."""

    def __init__(self):
        self.alpha = -1.0
        self.raw = np.zeros(0)
        self.src_n = 0
        self.first = 0.0

    def get(self, y: np.ndarray, alpha: float) -> np.ndarray:
        n = len(y)
        if alpha <= 0 or n < 2:
            return y
        fresh = alpha != self.alpha or n < self.src_n or (self.src_n and y[0] != self.first)
        if fresh:
            self.raw = _ema_raw(y, alpha)
        elif n > self.src_n:
            prev = self.raw[self.src_n - 1] if self.src_n else 0.0
            self.raw = np.concatenate([self.raw[:self.src_n], _ema_raw(y[self.src_n:], alpha, prev)])
        self.alpha, self.src_n, self.first = alpha, n, float(y[0])
        return self.raw[:n] / (1 - alpha ** np.arange(1, n + 1, dtype=np.float64))


class RunCurves:
    def __init__(self, run_id: str, name: str, color: str, run_dir: str | None = None):
        self.id, self.name, self.color, self.run_dir = run_id, name, color, run_dir
        self.steps: dict[str, Series] = {}
        self.evals: dict[str, Series] = {}
        self.final: dict = {}
        self.dirty: set[str] = set()
        self.smoothed: dict[str, EmaCache] = {}
        self.offset = 0  # metrics.jsonl bytes read (tailing)
        self.tail = False
        self.last_time = 0.0
        self.pending_live: list = []  # messages that arrived while the history was still loading
        self.loading = False
        self.resume_step: int | None = None  # a resumed run drops what came after its checkpoint
        self.num_classes: int | None = None  # for the kNN plot's chance line (from data.json)
        self.probe_epochs: int | None = None  # of the final linear probe (from config.json)

    def series(self, key: str, source: str) -> Series:
        table = self.steps if source == "step" else self.evals
        s = table.get(key)
        if s is None:
            s = table[key] = Series()
        return s

    def count(self, key: str) -> int:
        s = self.steps.get(key) or self.evals.get(key)
        return s.n if s is not None else 0
