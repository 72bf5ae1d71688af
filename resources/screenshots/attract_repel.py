"""Screenshot of docs/window.md ("Attract and repel"): the attract/repel figure on a two-view run's map.

    python resources/screenshots/attract_repel.py RUN_DIR OUT.png [--pair N] [--size 1920x1080]

The run's snapshots are shown one by one along the timeline (so each has its layout, as when a user plays the
timeline), the "Attract / repel" toggle is turned on and the image of pair N is clicked. The picture in the docs:

    python main.py train --method simclr --data builtin:shapes --minutes 1.5 --name ar --set eval.snapshot_every_s=8
    xvfb-run -a -s "-screen 0 1920x1080x24" python resources/screenshots/attract_repel.py runs/*-ar \\
        resources/screenshots/attract_repel.png --pair 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("out")
    ap.add_argument("--pair", type=int, default=-1, help="which of the snapshot's pairs to choose (default: none "
                                                          "clicked, the map shows the first)")
    ap.add_argument("--size", default="1920x1080")
    a = ap.parse_args(argv)
    from PySide6.QtWidgets import QApplication

    from app.common.analysis_client import AnalysisClient
    from app.map.panel import EmbeddingPanel

    app = QApplication([])
    client = AnalysisClient()
    p = EmbeddingPanel(client)
    w, h = (int(v) for v in a.size.split("x"))
    p.resize(w, h)
    p.show()

    def wait(cond, limit=300.0):
        t0 = time.time()
        while not cond():
            app.processEvents()
            time.sleep(0.02)
            if time.time() - t0 > limit:
                raise SystemExit("the map did not finish drawing in time")

    try:
        p.set_run(a.run_dir)
        wait(lambda: p.current is not None and p.request_id is None and not p.map.animating)
        for entry in list(p.entries):
            p.timeline.setValue(p.entries.index(entry))
            wait(lambda key=entry.key: p.current is not None and p.current.key == key and p.request_id is None
                 and not p.map.animating)
        if not p.controls.attract.isEnabled():
            print(f"{a.run_dir}: its snapshots carry no pairs of views (a two-view method's run, trained with "
                  "this version, has them)", file=sys.stderr)
            return 2
        p.controls.attract.setChecked(True)
        if a.pair >= 0:
            p.map.pointClicked.emit(int(p.current.pair_rows[a.pair]))
        for _ in range(30):
            app.processEvents()
            time.sleep(0.03)
        print(p.attract.caption.text())
        p.grab().save(a.out)
    finally:
        client.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
