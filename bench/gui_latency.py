"""How responsive the window stays while a CPU training run is live.

    python bench/gui_latency.py [--seconds 30] [--data builtin:shapes:2000]

Launches the window in a fresh process (as ``python main.py`` does), records when it is shown,
loads the default dataset, starts the default CPU training run, shows the Curves tab (redrawn as
points arrive), lets its first paint pass (``--warmup``, reported apart as ``warmup_stall_max_ms``),
then runs a 10 ms heartbeat QTimer for ``--seconds``. A stall is how late a beat fires
(interval - 10 ms). The last line printed is one JSON object with ``stall_p50_ms``,
``stall_p99_ms``, ``stall_max_ms`` and ``window_shown_s`` (targets: p99 < 30 ms, max < 100 ms,
shown < 3 s on 2 cores). Offscreen unless a display is available.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEAT_MS = 10


def child(args) -> None:
    t0 = float(os.environ.get("SSLWB_T0", time.time()))
    sys.path.insert(0, str(ROOT))
    from PySide6.QtCore import Qt, QTimer

    from app.window.launch import make_app
    from app.window.main_window import MainWindow

    app = make_app()
    win = MainWindow(data_spec=args.data)
    win.confirm_quit = False
    win.resize(1400, 900)
    win.show()
    app.processEvents()
    shown = time.time() - t0
    torch_in_gui = "torch" in sys.modules

    def wait(cond, timeout, what):
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise SystemExit(f"timed out waiting for {what}")
            app.processEvents()
            time.sleep(0.005)

    wait(lambda: win.dataset is not None and win.catalogue_fresh, 300, "the dataset and the method catalogue")
    m = win.model
    m.set("runs_root", args.runs_root)
    m.set("device", "cpu")
    m.set("minutes", 0.0)
    m.set("epochs", 1000)  # stopped by us
    m.set("eval.final_eval", False)
    cfg = m.config()
    win.start_run(cfg)
    win.show_view("curves")
    wait(lambda: win.view("curves").point_count("loss") >= 1, 600, "the first training step")
    # warm-up: the Curves tab's first paint with data (axes, fonts) is measured apart
    warm: list[float] = []
    t_prev = time.perf_counter()
    end_warm = time.monotonic() + args.warmup
    while time.monotonic() < end_warm:
        app.processEvents()
        now = time.perf_counter()
        warm.append((now - t_prev) * 1000.0)
        t_prev = now
        time.sleep(0.005)

    intervals: list[float] = []
    last = [time.perf_counter()]

    events: list[tuple[float, str]] = []
    win.engine.message.connect(lambda msg: events.append((time.perf_counter(), type(msg).__name__)))
    win.view("history").refreshed.connect(lambda: events.append((time.perf_counter(), "history refreshed")))

    def beat():
        now = time.perf_counter()
        intervals.append((now - last[0]) * 1000.0)
        last[0] = now
        stamps.append(now)

    stamps: list[float] = []

    if args.verbose:  # a watchdog prints the GUI thread's stack when a beat is 80 ms late
        import threading
        import traceback

        main_id = threading.main_thread().ident

        def watchdog():
            seen = None
            while True:
                time.sleep(0.05)
                late = time.perf_counter() - last[0]
                if late > 0.08 and seen != last[0]:
                    seen = last[0]
                    frame = sys._current_frames().get(main_id)
                    stack = "".join(traceback.format_stack(frame, limit=14)) if frame else "?"
                    print(f"late {late * 1000:.0f} ms, GUI thread in:\n{stack}", file=sys.stderr)

        threading.Thread(target=watchdog, daemon=True).start()

    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(BEAT_MS)
    timer.timeout.connect(beat)
    points0 = win.view("curves").point_count("loss")
    last[0] = time.perf_counter()
    timer.start()
    end = time.monotonic() + args.seconds
    def finish():
        timer.stop()  # before quit: quitting closes the window, which waits for the run's checkpoint
        app.quit()

    QTimer.singleShot(int(args.seconds * 1000), finish)
    app.exec()
    timer.stop()
    points = win.view("curves").point_count("loss") - points0
    speed = win.run_status.speed.text()
    state = win.engine.state
    win.engine.shutdown(timeout=30)
    win.close()
    import numpy as np

    stalls = np.maximum(0.0, np.asarray(intervals) - BEAT_MS)
    out = {
        "stall_p50_ms": round(float(np.percentile(stalls, 50)), 2),
        "stall_p99_ms": round(float(np.percentile(stalls, 99)), 2),
        "stall_max_ms": round(float(stalls.max()), 2),
        "window_shown_s": round(shown, 3),
        "warmup_stall_max_ms": round(max(0.0, max(warm, default=0.0) - 5.0), 2),
        "beats": len(intervals), "seconds": args.seconds, "curve_points_during": points,
        "engine_state": state, "speed": speed, "torch_in_gui": torch_in_gui,
        "platform": app.platformName(), "cpus": os.cpu_count(), "load_avg": round(os.getloadavg()[0], 2),
        "remaining_s": round(end - time.monotonic(), 2),
    }
    if args.verbose:  # what happened around the longest stalls
        for k in np.argsort(stalls)[::-1][:5]:
            t_end = stamps[k]
            near = [f"{name}@{(t - t_end) * 1000:+.0f}ms" for t, name in events if abs(t - t_end) < 3.0]
            print(f"stall {stalls[k]:.0f} ms ending at {t_end - stamps[0]:.2f} s: {', '.join(near)}",
                  file=sys.stderr)
    print(json.dumps(out), flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="how long to measure (default 30)")
    p.add_argument("--data", default="builtin:shapes:2000", help="dataset (default builtin:shapes:2000)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds after the first curve point before "
                   "measuring: the Curves tab's first paint (default 2; reported as warmup_stall_max_ms)")
    p.add_argument("--runs-root", default="", help="where the run folder goes (default: a temporary folder)")
    p.add_argument("--verbose", action="store_true", help="print what happened around the longest stalls")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # skip interpreter finalisation: the window and its processes are closed already
    with tempfile.TemporaryDirectory(prefix="sslwb-bench-") as tmp:
        env = dict(os.environ)
        env.setdefault("SSLWB_CONFIG_DIR", str(Path(tmp) / "config"))
        if not env.get("DISPLAY") and not env.get("QT_QPA_PLATFORM"):
            env["QT_QPA_PLATFORM"] = "offscreen"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--seconds", str(args.seconds),
               "--warmup", str(args.warmup),
               *(["--verbose"] if args.verbose else []),
               "--data", args.data, "--runs-root", args.runs_root or str(Path(tmp) / "runs")]
        env["SSLWB_T0"] = repr(time.time())
        res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if args.verbose:
        sys.stderr.write("\n".join(ln for ln in res.stderr.splitlines() if "propagateSizeHints" not in ln) + "\n")
    if res.returncode != 0 or not lines:
        sys.stderr.write(res.stderr[-4000:])
        print(json.dumps({"error": f"the window process failed (exit {res.returncode})"}))
        return 1
    print(lines[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
