"""Benchmark of the embedding map: UMAP speed, time to the first map, hover cost, GUI stalls.

    python bench/embedding.py [--points N] [--quick] [--no-quality]

Prints progress to stderr and ONE JSON object on its last stdout line (``points``: N, default 5,000; at
``--points 50000`` the map measurements are of 50,000 images):
- ``umap_warm_s``: UMAP of N x 128 features in the analysis process after its warm-up
  (median of 3; target < 3 s on 2 CPU cores at 5,000; also ``umap_5k_warm_s`` at N = 5,000);
- ``first_map_s``: a live embedding snapshot (5,000 images) handed to the panel -> the first map
  drawn (PCA, with thumbnails; target < 1 s); also ``first_map_open_s`` (opening a run: its
  latest snapshot is read, the thumbnails follow), ``first_map_extract_s`` (a run without
  snapshots: features are extracted from the checkpoint, the first 2,000 shown first) and
  ``full_map_extract_s`` (all N extracted and drawn: features and the PCA map); ``full_map_umap_s``: the
  UMAP of those N points after it (the projection switched to UMAP, until its layout is drawn), and
  ``full_map_end_to_end_s``, the two together: a map of N images from a checkpoint, extraction + layout;
- ``hover_frame_ms``: p95 of one hover step at 10,000 points (mouse move -> nearest point ->
  marker -> repaint; target < 33 ms), with ``hover_frame_ms_median`` and ``pan_frame_ms``;
- ``stall_p99_ms`` (and p50, ``stall_max_ms``): lateness of a 10 ms heartbeat timer in the GUI process
  while the analysis process computes a UMAP of the N points and the panel animates its partial layouts
  (the window issue's limits: p99 < 30 ms, max < 100 ms);
- ``umap_quality``: trustworthiness (on a sample of 2,500 of the points) and 2-D kNN label accuracy (all
  points) of our UMAP next to umap-learn's defaults, on the same N features the UMAP timing used (skip with
  --no-quality).
The GUI part runs in this process without torch or umap, as in the app.
``lasso_ms``: p95 of selecting the points inside a hand-drawn lasso (300 vertices) among 100,000 points (target
< 100 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def synthetic_features(n=5000, d=128, classes=10, seed=0):
    """Clusters with sub-clusters and heavy noise: a map with structure, not a trivial one."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)).astype(np.float32)
    sub = centres[:, None, :] + 0.6 * rng.normal(size=(classes, 4, d)).astype(np.float32)
    y = rng.integers(0, classes, n)
    s = rng.integers(0, 4, n)
    x = sub[y, s] + 1.3 * rng.normal(size=(n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), y


# -- quality (a child process: imports umap) ----------------------------------------------------------
def knn2d_accuracy(e, y, k: int = 10) -> float:
    """How often the majority label of a point's k nearest neighbours in the 2-D layout is its own."""
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    nb = NearestNeighbors(n_neighbors=k + 1).fit(e).kneighbors(e, return_distance=False)[:, 1:]
    votes = y[nb]
    major = np.array([np.bincount(v).argmax() for v in votes])
    return float((major == y).mean())


def quality(n: int = 5000) -> dict:
    import warnings

    import numpy as np
    from sklearn.manifold import trustworthiness

    warnings.filterwarnings("ignore")
    import umap

    from engine.eval.projection import umap_layout, warmup

    x, y = synthetic_features(n)  # the features the UMAP timing used
    warmup()
    out: dict = {"points": n}
    t = time.perf_counter()
    ours = umap_layout(x)
    out["ours_s"] = round(time.perf_counter() - t, 2)
    umap.UMAP(n_neighbors=15, metric="cosine", n_epochs=10).fit_transform(x[:300])  # compile its own paths
    t = time.perf_counter()
    ref = umap.UMAP(n_neighbors=15, metric="cosine").fit_transform(x)
    out["umap_learn_default_s"] = round(time.perf_counter() - t, 2)
    sub = np.sort(np.random.default_rng(0).choice(n, min(n, 2500), replace=False))
    for name, e in (("ours", ours), ("umap_learn_default", ref)):
        out[f"{name}_trustworthiness"] = round(float(trustworthiness(x[sub], e[sub], n_neighbors=10,
                                                                     metric="cosine")), 4)
        out[f"{name}_knn2d_accuracy"] = round(knn2d_accuracy(e, y), 4)
    return out


# -- the bench -------------------------------------------------------------------------------------------
def make_run(root: Path, n: int) -> str:
    """A short real run whose embedding snapshot holds ``n`` images (CLI, in a child process)."""
    cmd = [sys.executable, str(ROOT / "main.py"), "train", "--method", "rotnet", "--data", "builtin:shapes:512",
           "--epochs", "1", "--batch-size", "128", "--runs-root", str(root), "--name", "bench", "--no-final-eval",
           "--quiet", "--device", "cpu", "--set", f"data.eval_spec=builtin:shapes-test:{n}",
           "--set", "eval.embed_every_epochs=1", "--set", f"eval.embed_size={n}", "--set", "all_four=false",
           "--set", "eval.knn_every_epochs=0"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    if r.returncode != 0:
        raise SystemExit(f"training the bench run failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["run_dir"]


def wait(app, cond, timeout: float) -> bool:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents()
        if cond():
            return True
        time.sleep(0.002)
    return False


def percentile(vals, q):
    s = sorted(vals)
    if not s:
        return 0.0
    k = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[k]


def lasso_ms(n: int = 100_000, repeats: int = 10) -> float:
    """p95 milliseconds of a lasso selection (app/map/geometry.py) over ``n`` points."""
    import numpy as np

    from app.map.geometry import rows_in_selection

    rng = np.random.default_rng(0)
    pts = rng.normal(size=(n, 2)).astype(np.float32)
    times = []
    for _ in range(repeats):
        t = np.sort(rng.uniform(0, 2 * np.pi, 300))
        r = 1.2 + 0.5 * rng.uniform(-1, 1, 300)
        poly = np.stack([r * np.cos(t), r * np.sin(t)], 1) + rng.normal(size=2) * 0.3
        t0 = time.perf_counter()
        rows_in_selection(pts, poly, rect=False)
        times.append((time.perf_counter() - t0) * 1000)
    return round(percentile(times, 95), 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=5000, help="points of the UMAP and first-map measurements")
    ap.add_argument("--hover-points", type=int, default=10000, help="points of the hover measurement")
    ap.add_argument("--quick", action="store_true", help="one UMAP run instead of three")
    ap.add_argument("--no-quality", action="store_true", help="skip the comparison with umap-learn's defaults")
    ap.add_argument("--quality-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quality_child:
        print(json.dumps(quality(args.points)))
        return 0
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import numpy as np
    from PySide6.QtCore import QElapsedTimer, QEvent, QPointF, Qt, QTimer
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from app.common.analysis_client import AnalysisClient
    from app.common.charts import class_color
    from app.map.map_widget import EmbeddingMap
    from app.map.panel import EmbeddingPanel
    from engine import messages as M

    out: dict = {"machine_cpus": os.cpu_count(), "points": args.points}
    t_start = time.perf_counter()

    # 1. the analysis process: start, warm-up, UMAP of 5,000 x 128 -------------------------------------
    client = AnalysisClient(warm=True)
    t0 = time.perf_counter()
    if not wait(app, lambda: client.is_warm, 180):
        raise SystemExit("the analysis process did not warm up within 180 s")
    out["umap_warmup_s"] = round(time.perf_counter() - t0, 2)
    log(f"analysis process warm after {out['umap_warmup_s']} s")
    x, y = synthetic_features(args.points)
    runs = []
    for _ in range(1 if args.quick else 3):
        box = []
        client.request("project", {"features": x, "projection": "umap"}, on_reply=box.append)
        if not wait(app, lambda box=box: any(r.kind in ("result", "error") for r in box), 300):
            raise SystemExit("UMAP did not finish within 300 s")
        r = box[-1]
        if r.kind == "error":
            raise SystemExit(r.message)
        runs.append(r.data["seconds"])
    out["umap_warm_s"] = round(statistics.median(runs), 2)
    out["umap_runs_s"] = runs
    if args.points == 5000:
        out["umap_5k_warm_s"] = out["umap_warm_s"]
    log(f"UMAP {args.points} x 128: {runs} s")

    # 2. the first map: a live snapshot, opening a run, extraction from the checkpoint ---------------------
    tmp = Path(tempfile.mkdtemp(prefix="sslwb-bench-"))
    log("training a short run for the first-map measurements ...")
    run_dir = make_run(tmp, args.points)
    panel = EmbeddingPanel(client)
    panel.resize(1280, 800)
    panel.projection.setCurrentIndex(panel.projection.findData("pca"))
    panel.show()
    wait(app, lambda: False, 0.3)
    shown: list = []
    panel.mapShown.connect(lambda key: shown.append(key))

    def drawn_after(action, timeout=120.0) -> float:
        shown.clear()
        t = time.perf_counter()
        action()
        if not wait(app, lambda: bool(shown), timeout):
            raise SystemExit(f"no map within {timeout} s: {panel.status.text()}")
        panel.map.plot.viewport().repaint()
        return round(time.perf_counter() - t, 3)

    out["first_map_open_s"] = drawn_after(lambda: panel.set_run(run_dir))
    wait(app, lambda: panel.request_id is None, 60)
    snap = sorted((Path(run_dir) / "embeddings").glob("step_*.npz"))[-1]
    with np.load(snap) as z:
        feats, labels, indices = z["features"], z["labels"], z["indices"]
    rng = np.random.default_rng(1)
    live = feats + 0.05 * rng.normal(size=feats.shape).astype(np.float32)
    live /= np.linalg.norm(live, axis=1, keepdims=True)
    panel.thumb_cache.clear()  # the worst case: thumbnails travel with the map
    panel.current = None  # a first map, not a warm start
    out["first_map_s"] = drawn_after(lambda: panel.on_engine_message(
        M.Embedding(10_000, 2.0, live, labels, indices)))
    wait(app, lambda: panel.request_id is None, 60)
    out["first_map_points"] = int(panel.map.count)
    log(f"first map: live snapshot {out['first_map_s']} s, opening the run {out['first_map_open_s']} s")
    panel.sample.setValue(args.points)
    t = time.perf_counter()
    out["first_map_extract_s"] = drawn_after(panel.refresh)  # a first look at part of the sample
    if not wait(app, lambda: panel.current is not None and len(panel.current.indices) == args.points, 300):
        raise SystemExit("the full map from the checkpoint did not arrive")
    out["full_map_extract_s"] = round(time.perf_counter() - t, 3)
    if not wait(app, lambda: panel.request_id is None, 300):
        raise SystemExit("the map from the checkpoint did not finish within 300 s")
    log(f"map from the checkpoint (features extracted): first look {out['first_map_extract_s']} s, all "
        f"{args.points} images {out['full_map_extract_s']} s")

    # 3. GUI stalls while a UMAP runs (partial layouts animate on the map) -----------------------------------
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def beat():
        now = clock.nsecsElapsed()
        gaps.append((now - last[0]) / 1e6)
        last[0] = now

    hb = QTimer()
    hb.setTimerType(Qt.TimerType.PreciseTimer)
    hb.setInterval(10)
    hb.timeout.connect(beat)
    from PySide6.QtCore import QEventLoop

    def run_until_umap(action) -> None:
        loop = QEventLoop()
        done = []

        def on_finished(p):
            if p == "umap":
                done.append(p)
                QTimer.singleShot(500, loop.quit)  # and the animation that follows

        panel.layoutFinished.connect(on_finished)
        QTimer.singleShot(300_000, loop.quit)
        action()
        loop.exec()
        panel.layoutFinished.disconnect(on_finished)
        if not done:
            raise SystemExit("UMAP did not finish within 300 s")

    live2 = feats + 0.1 * rng.normal(size=feats.shape).astype(np.float32)  # made before the measurement
    live2 /= np.linalg.norm(live2, axis=1, keepdims=True)
    hb.start()
    t = time.perf_counter()
    # a projection switch (UMAP from PCA), then a new live snapshot (UMAP warm-started from the map)
    t_umap = time.perf_counter()
    run_until_umap(lambda: panel.projection.setCurrentIndex(panel.projection.findData("umap")))
    out["full_map_umap_s"] = round(time.perf_counter() - t_umap - 0.5, 3)  # less the animation's 0.5 s
    out["full_map_end_to_end_s"] = round(out["full_map_extract_s"] + out["full_map_umap_s"], 3)
    run_until_umap(lambda: panel.on_engine_message(M.Embedding(20_000, 3.0, live2, labels, indices)))
    hb.stop()
    out["stall_window_s"] = round(time.perf_counter() - t, 2)
    late = [max(0.0, g - 10.0) for g in gaps[1:]]
    out["stall_p50_ms"] = round(percentile(late, 50), 2)
    out["stall_p99_ms"] = round(percentile(late, 99), 2)
    out["stall_max_ms"] = round(max(late) if late else 0.0, 2)
    out["stall_beats"] = len(late)
    log(f"stalls during two UMAPs of {panel.map.count} points: p99 {out['stall_p99_ms']} ms, "
        f"max {out['stall_max_ms']} ms over {out['stall_window_s']} s")
    panel.close()

    # 4. hover and pan at 10,000 points ----------------------------------------------------------------------
    m = EmbeddingMap()
    m.resize(1000, 750)
    m.show()
    n = args.hover_points
    rng = np.random.default_rng(0)
    cls = rng.integers(0, 10, n)
    coords = (rng.normal(size=(10, 2)) * 4)[cls] + rng.normal(size=(n, 2))
    m.set_colors(cls, [class_color(i) for i in range(10)])
    m.set_points(coords.astype(np.float32), rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8))
    wait(app, lambda: False, 0.3)
    vp = m.plot.viewport()
    times = []
    hits = 0
    for _ in range(200):
        row = int(rng.integers(n))
        pos = QPointF(m.view_pos_of(row)) + QPointF(*rng.uniform(-3, 3, 2))
        t = time.perf_counter()
        QApplication.sendEvent(vp, QMouseEvent(QEvent.Type.MouseMove, pos, QPointF(vp.mapToGlobal(pos.toPoint())),
                                               Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                                               Qt.KeyboardModifier.NoModifier))
        vp.repaint()
        times.append((time.perf_counter() - t) * 1000)
        hits += m.hovered >= 0
    out["hover_frame_ms"] = round(percentile(times, 95), 2)
    out["hover_frame_ms_median"] = round(percentile(times, 50), 2)
    out["hover_hit_rate"] = round(hits / len(times), 3)
    pans = []
    for i in range(60):
        r = m.vb.viewRect()
        t = time.perf_counter()
        m.vb.setRange(xRange=(r.left() + 0.05 * (1 if i % 2 else -1), r.right() + 0.05 * (1 if i % 2 else -1)),
                      padding=0)
        vp.repaint()
        pans.append((time.perf_counter() - t) * 1000)
    out["pan_frame_ms"] = round(percentile(pans, 95), 2)
    out["hover_points"] = n
    log(f"hover at {n} points: p95 {out['hover_frame_ms']} ms (median {out['hover_frame_ms_median']} ms), "
        f"pan p95 {out['pan_frame_ms']} ms")
    m.close()
    client.shutdown()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)

    # 5. map quality next to umap-learn's defaults (a child process) -------------------------------------------
    if not args.no_quality:
        log("comparing with umap-learn's defaults ...")
        r = subprocess.run([sys.executable, __file__, "--quality-child", "--points", str(args.points)],
                           capture_output=True, text=True, cwd=ROOT, timeout=1800)
        try:
            out["umap_quality"] = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            out["umap_quality"] = {"error": r.stderr[-500:]}
    out["lasso_ms"] = lasso_ms()
    out["bench_s"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
