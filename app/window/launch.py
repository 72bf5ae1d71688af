"""Start-up of the workbench window: ``python main.py [--demo] [--data SPEC] [--open RUN_DIR]
[--screenshot PATH [--view NAME]]``.

Only Qt, numpy and the torch-free parts of the engine load here, so the window shows in about a
second; the helper processes import torch in the background.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from app.map.demo_watch import DemoWatch

T0 = time.perf_counter()
RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def parse_args(argv: list[str]) -> argparse.Namespace:
    from app.views import view_keys  # the window's view list

    keys = view_keys()
    p = argparse.ArgumentParser(prog="main.py", description="SSL Workbench: the window. For the headless engine "
                                "see `python main.py train --help`.")
    p.add_argument("--data", metavar="SPEC", help="the dataset to open (builtin:shapes[:N], a folder, "
                   "torchvision:NAME[@SPLIT][:ROOT])")
    p.add_argument("--demo", action="store_true", help="one click to the demo: load the built-in shapes, start "
                   "the default run (SimCLR, two minutes) and show its embedding map")
    p.add_argument("--open", metavar="RUN_DIR", help="show a run folder's curves (live if it is running)")
    p.add_argument("--screenshot", metavar="PATH", help="save a PNG of the window once the view has drawn, then exit")
    p.add_argument("--view", metavar="NAME", default=None, choices=keys,
                   help=f"with --screenshot: the view to show ({', '.join(keys)}; default data, with --demo "
                        "embedding)")
    p.add_argument("--size", metavar="WxH", default="1400x900", help="with --screenshot: window size (default "
                   "1400x900)")
    p.add_argument("--after", type=float, default=None, metavar="SECONDS",
                   help="with --demo --screenshot: take the picture once the run has trained this many seconds "
                   "and the map of its next snapshot has drawn (0: the random-init map)")
    p.add_argument("--gif", metavar="PATH", help="with --demo --screenshot: also save the run's maps so far as an "
                   "animated GIF")
    p.add_argument("--timeout", type=float, default=120.0, help="with --screenshot: give up after this many "
                   "seconds (default 120)")
    return p.parse_args(argv)


def make_app(argv: list[str] | None = None):
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from app.common.settings import APP, ORG

    app = QApplication.instance() or QApplication([sys.argv[0]] + list(argv or []))
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    icon = RESOURCES / "icons" / "app.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    qss = RESOURCES / "style.qss"
    if qss.exists() and not app.property("sslwb_styled"):
        app.setStyleSheet(app.styleSheet() + qss.read_text())
        app.setProperty("sslwb_styled", True)
    return app


class Screenshot:
    """Waits until the view has really drawn (data loaded, preview arrived, ...), saves, quits."""

    def __init__(self, window, view: str, path: str, timeout: float, demo: DemoWatch | None = None,
                 gif: tuple[str, Callable] | None = None):
        """``gif``: (path, write(path, done)) with --gif: the run's maps so far as an animated GIF, written
        after the picture."""
        from PySide6.QtCore import QTimer

        self.window, self.view, self.path, self.timeout = window, view, path, timeout
        self.demo, self.gif = demo, gif
        self.t0 = time.monotonic()
        self.ready_since: float | None = None
        self.code = 1
        self.timer = QTimer()
        self.timer.setInterval(100)
        self.timer.timeout.connect(self.tick)

    def start(self) -> None:
        self.window.show_view(self.view)
        self.timer.start()

    def tick(self) -> None:
        from PySide6.QtWidgets import QApplication

        self.window.show_view(self.view)
        ready = self.window.is_view_ready(self.view) and self.window.catalogue_fresh and \
            (self.demo is None or self.demo.ready())
        now = time.monotonic()
        if ready:
            self.ready_since = self.ready_since or now
            if now - self.ready_since < 0.6:  # let layouts settle and the plots redraw
                return
        elif now - self.t0 < self.timeout:
            self.ready_since = None
            return
        self.timer.stop()
        QApplication.processEvents()
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        ok = self.window.grab().save(self.path, "PNG")
        if ready and ok:
            self.code = 0
            print(f"saved {self.path} ({self.view})", file=sys.stderr)
            if self.gif and self.gif[1](self.gif[0], self._gif_written):
                return  # quits when the GIF is written
        else:
            print(f"error: the {self.view} view did not finish drawing within {self.timeout:.0f} s; saved what "
                  f"was shown to {self.path}" if ok else f"error: could not write {self.path}", file=sys.stderr)
        self.quit()

    def _gif_written(self, result) -> None:
        print(f"saved {self.gif[0]} ({result} maps)" if isinstance(result, int) else f"error: {result}", file=sys.stderr)
        self.code = 0 if isinstance(result, int) else 1
        self.quit()

    def quit(self) -> None:
        from PySide6.QtWidgets import QApplication

        self.window.confirm_quit = False
        self.window.close()
        QApplication.instance().exit(self.code)


def launch(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.screenshot and not os.environ.get("QT_QPA_PLATFORM") and not os.environ.get("DISPLAY") \
            and sys.platform.startswith("linux"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # no display: draw offscreen
    app = make_app()
    from app.common.main_thread_gc import MainThreadGC

    gc_guard = MainThreadGC(app)  # noqa: F841 - widgets die in the GUI thread, not in a reader thread
    from app.window.main_window import MainWindow

    if (args.after is not None or args.gif) and not (args.demo and args.screenshot):
        print("error: --after and --gif go with --demo --screenshot PATH", file=sys.stderr)
        return 2
    data = args.data
    if args.demo:
        if args.data or args.open:
            print("error: --demo loads its own data and starts its own run; leave out --data and --open",
                  file=sys.stderr)
            return 2
        from app.models.config_model import default_run_config

        data = default_run_config()["data"]["spec"]
    view = args.view or ("embedding" if args.demo else "data")
    win = MainWindow(data_spec=data, open_run=args.open)
    watch = None
    if args.demo:
        emb = win.view("embedding")  # the map's public API: the step it shows, following, the GIF
        watch = DemoWatch(win.engine.message, emb.shown_step, emb.set_following, args.after)
    shot = None
    if args.screenshot:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            print(f"error: --size takes WIDTHxHEIGHT, e.g. 1400x900, got {args.size!r}", file=sys.stderr)
            return 2
        win.resize(w, h)
        gif = (args.gif, win.view("embedding").export_gif) if args.gif else None
        shot = Screenshot(win, view, args.screenshot, args.timeout, watch, gif)
    win.show()
    if args.demo:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, win, win.start_demo)
    if os.environ.get("SSLWB_REPORT_STARTUP"):
        print(f"window shown after {time.perf_counter() - T0:.2f} s", file=sys.stderr)
    if shot is not None:
        shot.start()
    code = app.exec()
    return shot.code if shot is not None else code
