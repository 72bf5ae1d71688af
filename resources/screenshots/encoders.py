"""Screenshots of docs/encoders.md ("In the window"): the map of an opened encoder and a ViT's attention heads.

    python resources/screenshots/encoders.py MAP_ENCODER VIT_ENCODER [--data SPEC] [--images 0-5] [--out DIR]

Each encoder is opened the way a user does (File > Open encoder…, a file or a name); the window is drawn at
1400 x 900 (under Xvfb, or offscreen when there is no display). The pictures in the docs show two encoders
trained here on the built-in shapes, opened from their ``encoder.safetensors``:

    python main.py train --method simclr --data builtin:shapes:2000 --minutes 4 --run-dir /tmp/simclr
    python main.py train --method dino --backbone vit_mini --data builtin:shapes:2000 --minutes 20 --run-dir /tmp/dino
    python resources/screenshots/encoders.py /tmp/simclr/encoder.safetensors /tmp/dino/encoder.safetensors
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("map_encoder", help="the encoder whose map is shown (a file, a name or a run folder)")
    ap.add_argument("vit_encoder", help="the ViT whose attention heads are shown")
    ap.add_argument("--data", default="builtin:shapes:2000", help="the data they look at")
    ap.add_argument("--images", default="0-5", help="the images of the attention picture")
    ap.add_argument("--out", default=str(ROOT / "resources" / "screenshots"), help="where the PNGs go")
    args = ap.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    work = tempfile.mkdtemp(prefix="sslwb-shots-")
    os.environ.setdefault("SSLWB_CONFIG_DIR", os.path.join(work, "config"))
    os.environ.setdefault("SSLWB_PREWARM", "0")
    from app.window.launch import make_app
    from app.window.main_window import MainWindow

    app = make_app()
    win = MainWindow(data_spec=args.data)
    win.confirm_quit = False
    win.model.set("runs_root", os.path.join(work, "runs"))
    win.resize(1400, 900)
    win.show()

    def wait(pred, timeout=600.0, settle=0.0) -> None:
        t0 = time.time()
        while not pred():
            app.processEvents()
            time.sleep(0.02)
            if time.time() - t0 > timeout:
                raise SystemExit("error: the window did not finish drawing in time")
        t1 = time.time()
        while time.time() - t1 < settle:
            app.processEvents()
            time.sleep(0.02)

    def open_encoder(spec: str) -> None:
        dlg = win.open_encoder_dialog()
        dlg.spec.setText(spec)
        done: list = []
        dlg.opened.connect(done.append)
        dlg.submit()
        wait(lambda: done or not dlg.busy)
        if not done:
            raise SystemExit(f"error: {dlg.line.text()}")
        print(dlg.line.text(), file=sys.stderr)

    wait(lambda: win.dataset is not None)
    emb = win.view("embedding")
    open_encoder(args.map_encoder)
    wait(lambda: emb.is_ready() and emb.current is not None, settle=3.0)
    wait(emb.is_ready, settle=1.5)  # the UMAP that replaces the first map
    emb.map.pointClicked.emit(5)  # a point's neighbours
    wait(lambda: True, settle=1.0)
    win.grab().save(os.path.join(args.out, "encoder_map.png"))

    open_encoder(args.vit_encoder)
    wait(lambda: emb.is_ready() and emb.current is not None, settle=1.0)
    insp = win.view("inspector")
    win.show_view("inspector")
    tab = insp.attention
    tab.indices.setText(args.images)
    insp.tabs.setCurrentWidget(tab)
    wait(lambda: tab.result is not None and tab.request_id is None, settle=0.3)
    tab.head.setCurrentIndex(max(0, tab.head.findText("all heads")))
    wait(lambda: True, settle=1.0)
    win.grab().save(os.path.join(args.out, "encoder_attention.png"))
    win.close()
    print(f"saved encoder_map.png and encoder_attention.png in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
