"""The curves' data without Qt: growing per-metric buffers of a run, metrics.jsonl records turned into
blocks, the bias-corrected EMA used for smoothing (cached, extended as points arrive), and the set of
runs shown (``CurvesModel``: the main run and its overlays, what arrives for them, the CSV export).

The widget (app/curves/panel.py, drawing through app/curves/plots.py) draws what this
holds and reads run folders off the GUI thread; tests/test_curves_model.py tests the rules here."""

from __future__ import annotations

import csv

import numpy as np

from engine import messages as M

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f")
IGNORED = {"step", "epoch", "time", "type", "kind"}
X_KINDS = ("step", "epoch", "time")
# values drawn as a level line in another metric's plot, not as a curve of their own: the kNN accuracy of
# the randomly initialised encoder (the session scores it at step 0), the reference any learning must beat
REFERENCES = {"random_init_knn": "knn_top1"}


def run_facts(run_dir) -> dict:
    """What the curves label with, from the run folder: ``num_classes`` the kNN accuracy is scored over
    (data.json: the evaluation set's, else the training set's; None when unlabelled or not written yet),
    ``probe_epochs`` of its final linear probe (config.json; None when unknown), ``monitor`` (data.json: what
    the online kNN monitor scores) and ``protocol`` (results.json: the final evaluation's)."""
    from pathlib import Path

    from engine.runs import read_json

    out = {"num_classes": None, "probe_epochs": None, "monitor": None, "protocol": None}
    if not run_dir:
        return out
    res = read_json(Path(run_dir) / "results.json", {}) or {}
    if isinstance(res, dict) and isinstance(res.get("protocol"), dict):
        out["protocol"] = res["protocol"]
    d = read_json(Path(run_dir) / "data.json", {}) or {}
    if isinstance(d, dict) and isinstance(d.get("monitor"), dict):
        out["monitor"] = d["monitor"]
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


def alarm_of(r) -> dict:
    """A collapse record or message as the curves keep it: step, where, text."""
    get = r.get if isinstance(r, dict) else lambda k, d=None: getattr(r, k, d)
    return {"step": int(get("step", 0)), "where": str(get("where", "")), "text": str(get("text", ""))}


def records_to_blocks(records: list[dict]) -> tuple[dict, dict, dict, list]:
    """metrics.jsonl records -> ({key: (4, k) array} of step values, same of eval values, final values,
    collapse signs). Runs on an I/O thread (a long log is parsed there, not on the GUI thread)."""
    from engine.runs import clean_resumed

    records = clean_resumed(records)
    steps: dict[str, list] = {}
    evals: dict[str, list] = {}
    final: dict = {}
    alarms: list = []
    last_t = 0.0
    for r in records:
        typ = r.get("type")
        s, e = float(r.get("step", 0)), float(r.get("epoch", 0))
        if typ == "collapse":
            alarms.append(alarm_of(r))
        elif typ == "step":
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

    return to_blocks(steps), to_blocks(evals), final, alarms


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
        self.monitor: dict | None = None  # what its online kNN monitor scores (data.json)
        self.protocol: dict | None = None  # its final evaluation's protocol (results.json)
        self.alarms: list[dict] = []  # collapse signs (step, where, text)

    def series(self, key: str, source: str) -> Series:
        table = self.steps if source == "step" else self.evals
        s = table.get(key)
        if s is None:
            s = table[key] = Series()
        return s

    def count(self, key: str) -> int:
        s = self.steps.get(key) or self.evals.get(key)
        return s.n if s is not None else 0


def final_summary(final: dict, probe_epochs: int | None) -> str:
    """The final label's text (rich text): the kNN and linear-probe top-1 of the final evaluation."""
    parts = []
    for key, label in (("knn_top1", "kNN top-1"), ("linear_top1", "linear probe top-1")):
        v = final.get(key)
        if isinstance(v, (int, float)):
            epochs = f" ({probe_epochs} probe epochs)" if key == "linear_top1" and probe_epochs else ""
            parts.append(f"{label} <b>{v:.1%}</b>{epochs}")
    return "Final: " + " · ".join(parts) if parts else ""


def x_extent(runs, x_kind: str) -> tuple[float, float] | None:
    """The smallest and largest x of every series of ``runs`` (None: no points)."""
    lo, hi = np.inf, -np.inf
    for run in runs:
        for s in (*run.steps.values(), *run.evals.values()):
            if s.n:
                x = s.x(x_kind)
                lo, hi = min(lo, float(x[0]), float(x.min())), max(hi, float(x[-1]), float(x.max()))
    return (lo, hi) if hi >= lo else None


STEPS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def round_up(x: float, headroom: float = 1.05) -> float:
    """The first of 1, 1.5, 2, 3, 4, 5, 6, 8 times a power of ten at or above ``x * headroom``: where a
    growing x axis ends, so that it changes a few times a run, not with every point."""
    import math

    x = max(float(x) * headroom, 1e-9)
    base = 10.0 ** math.floor(math.log10(x))
    return next(m * base for m in STEPS if m * base >= x - 1e-12 * base)


def curve_xy(s: Series, key: str, run: RunCurves, x_kind: str, smoothing: float, log_y: bool):
    """What one series draws: ``(x, y, raw)``. For a run's loss ``y`` is the smoothed copy and ``raw``
    the points themselves (both without non-positive values on a log axis); otherwise ``raw`` is None."""
    x, y = s.x(x_kind), s.y
    if not (key == "loss" and key in run.steps):
        return x, y, None
    ys = run.smoothed.setdefault(key, EmaCache()).get(y, smoothing)
    if log_y:
        ok = (y > 0) & (ys > 0)
        x, y, ys = x[ok], y[ok], ys[ok]
    return x, ys, y


class CurvesModel:
    """The runs the curves show: the main run (id ``main``, a new one replaces it) and overlays (id
    ``overlay:<folder>``), their colours, and what arrives for them: engine messages, metrics.jsonl
    records, and the history read back from a run folder."""

    def __init__(self):
        self.runs: dict[str, RunCurves] = {}
        self.main_id: str | None = None
        self.all_dirty = False  # every series of every run is redrawn on the next frame
        self._color_i = 0

    @property
    def main(self) -> RunCurves | None:
        return self.runs.get(self.main_id) if self.main_id else None

    def _next_color(self) -> str:
        c = COLORS[self._color_i % len(COLORS)]
        self._color_i += 1
        return c

    def new_main(self, name: str, run_dir: str | None = None) -> RunCurves:
        """The main run, its colours counted afresh (the caller removed the previous one first)."""
        self._color_i = 0
        run = RunCurves("main", name, self._next_color(), run_dir)
        self.main_id = "main"
        self.runs["main"] = run
        self.all_dirty = True
        return run

    def overlay(self, run_dir: str, name: str) -> tuple[RunCurves, bool]:
        """The overlay of a run folder and whether it is new (a folder is overlaid once)."""
        for r in self.runs.values():
            if r.run_dir == run_dir:
                return r, False
        run = RunCurves(f"overlay:{run_dir}", name, self._next_color(), run_dir)
        self.runs[run.id] = run
        self.all_dirty = True
        return run, True

    def remove(self, run_id: str) -> None:
        self.runs.pop(run_id, None)

    def overlay_ids(self) -> list[str]:
        return [r for r in self.runs if r != self.main_id]

    def point_count(self, key: str = "loss", run_id: str | None = None) -> int:
        run = self.runs.get(run_id or self.main_id or "")
        return run.count(key) if run is not None else 0

    def keys_to_draw(self, run: RunCurves) -> set:
        return set(run.steps) | set(run.evals) if self.all_dirty else run.dirty

    def plot_note(self, key: str) -> str:
        """What a plot's title adds: nothing when it has points, else why it has none."""
        if sum(r.count(key) for r in self.runs.values()):
            return ""
        main = self.runs[self.main_id] if self.main_id else None
        if key in ("pretext_acc", "pos_cos") and main is not None and main.count("loss"):
            return " <span style='color:#aaa'>(not reported by this method)</span>"
        if key == "effective_rank" and main is not None and main.count("loss"):
            return " <span style='color:#aaa'>(no embedding snapshots)</span>"
        return " <span style='color:#aaa'>(no data yet)</span>"

    # -- what arrives ----------------------------------------------------------------------
    def truncate(self, run: RunCurves, step: int) -> None:
        """A resumed run: drop what came after its checkpoint."""
        for s in list(run.steps.values()) + list(run.evals.values()):
            s.truncate_after(step)
        run.smoothed.clear()
        self.all_dirty = True

    def apply(self, run: RunCurves, msg) -> bool:
        """A StepMetrics, EvalResult or Collapse into the run's series; True when it was the final results or a
        sign of collapse (what the header shows)."""
        if isinstance(msg, M.Collapse):
            a = alarm_of(msg)
            if not any(x["step"] == a["step"] and x["where"] == a["where"] for x in run.alarms):
                run.alarms.append(a)
            return True
        if isinstance(msg, M.StepMetrics):
            run.last_time = float(msg.elapsed_s)
            for k, v in msg.values.items():
                if isinstance(v, (int, float)):
                    run.series(k, "step").append(msg.step, msg.epoch, msg.elapsed_s, float(v))
                    run.dirty.add(k)
        elif isinstance(msg, M.EvalResult):
            if msg.kind_name == "final":
                run.final = dict(msg.values)
                return True
            for k, v in msg.values.items():
                if isinstance(v, (int, float)):
                    run.series(k, "eval").append(msg.step, msg.epoch, run.last_time, float(v))
                    run.dirty.add(k)
        return False

    def apply_records(self, run: RunCurves, records: list[dict]) -> bool:
        """metrics.jsonl records appended since the last read (tailing); True when the final results (or a sign of
        collapse) came."""
        final = False
        for r in records:
            typ = r.get("type")
            if typ == "collapse":
                final |= self.apply(run, M.Collapse(int(r.get("step", 0)), str(r.get("where", "")),
                                                    str(r.get("text", ""))))
            elif typ == "resume":
                self.truncate(run, int(r.get("step", 0)))
            elif typ == "step":
                final |= self.apply(run, M.StepMetrics(int(r.get("step", 0)), float(r.get("epoch", 0)),
                                                       {k: v for k, v in r.items() if k not in IGNORED},
                                                       float(r.get("time", run.last_time))))
            elif typ == "eval":
                final |= self.apply(run, M.EvalResult(r.get("kind", "knn_monitor"), int(r.get("step", 0)),
                                                      float(r.get("epoch", 0)), {k: v for k, v in r.items()
                                                                                 if k not in IGNORED}))
        return final

    def add_history(self, run: RunCurves, steps: dict, evals: dict, final: dict, alarms: list = ()) -> None:
        """A run folder's history (``records_to_blocks``), then the live messages that waited for it."""
        for a in alarms:
            if not any(x["step"] == a["step"] and x["where"] == a["where"] for x in run.alarms):
                run.alarms.append(dict(a))
        for k, block in steps.items():
            run.series(k, "step").extend(block)
            run.dirty.add(k)
            run.last_time = max(run.last_time, float(block[2, -1]))
        for k, block in evals.items():
            run.series(k, "eval").extend(block)
            run.dirty.add(k)
        if final:
            run.final = final
        if run.resume_step is not None:
            self.truncate(run, run.resume_step)
        run.loading = False
        for m in run.pending_live:
            if isinstance(m, M.StepMetrics) and run.count("loss") and m.step <= run.steps["loss"].step[-1]:
                continue  # already in the file
            self.apply(run, m)
        run.pending_live = []
        run.alarms.sort(key=lambda a: a["step"])

    # -- export ----------------------------------------------------------------------------
    def write_csv(self, path: str) -> int:
        """Every point, one a row: run, metric, step, epoch, time_s, value. Returns the row count."""
        n = 0
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["run", "metric", "step", "epoch", "time_s", "value"])
            for run in self.runs.values():
                for key, s in list(run.steps.items()) + list(run.evals.items()):
                    for st, ep, t, y in zip(s.step, s.x("epoch"), s.x("time"), s.y):
                        w.writerow([run.name, key, int(st), f"{ep:.4f}", f"{t:.3f}", repr(float(y))])
                        n += 1
        return n
