"""The label-efficiency curve as a PNG (pyqtgraph, offscreen) and the points as CSV.

    python bench/downstream_plot.py RESULT.json OUT.png     # RESULT.json: bench/downstream.py --json
    python bench/downstream_plot.py RESULT.json OUT.md      # the points as a markdown table

x: labels per class (log axis; "all" is drawn at the training set's size per class), y: top-1;
one line per encoder and mode with a band of one standard deviation over seeds.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

COLORS = {"simclr": (31, 119, 180), "random_init": (127, 127, 127), "supervised": (44, 160, 44)}
OTHER = [(214, 39, 40), (148, 103, 189), (255, 127, 14), (23, 190, 207), (140, 86, 75)]
STYLES = {"linear": "solid", "finetune": "dash", "knn": "dot"}
FIELDS = ["encoder", "mode", "labels_per_class", "top1_mean", "top1_std", "seeds", "num_labels", "top1"]


def write_csv(results: list[dict], path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(FIELDS)
        for r in results:
            w.writerow([" ".join(str(v) for v in r[k]) if k == "top1" else r[k] for k in FIELDS])


def markdown_table(results: list[dict]) -> str:
    """Rows: encoder and mode; columns: labels per class; cells: mean ± std of top-1 over seeds."""
    budgets = sorted({r["labels_per_class"] for r in results}, key=lambda v: float("inf") if v == "all" else v)
    rows: dict = {}
    for r in results:
        rows.setdefault((r["encoder"], r["mode"]), {})[r["labels_per_class"]] = r
    out = ["| encoder | mode | " + " | ".join(str(b) for b in budgets) + " |",
           "|---|---|" + "---:|" * len(budgets)]
    for (enc, mode), cells in rows.items():
        vals = [f"{cells[b]['top1_mean']:.3f} ± {cells[b]['top1_std']:.3f}" if b in cells else "-" for b in budgets]
        out.append(f"| {enc} | {mode} | " + " | ".join(vals) + " |")
    return "\n".join(out)


def _x(r: dict, num_train: int, num_classes: int) -> float:
    if r["labels_per_class"] == "all":
        return num_train / max(1, num_classes)
    return float(r["labels_per_class"])


def plot_png(results: list[dict], path, title: str = "", num_train: int = 0, num_classes: int = 10,
             size=(1000, 620)) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy as np
    import pyqtgraph as pg
    import pyqtgraph.exporters
    from PySide6 import QtCore
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    pg.setConfigOptions(antialias=True, background="w", foreground="k")
    win = pg.GraphicsLayoutWidget(size=size)
    plot = win.addPlot(title=title)
    plot.setLogMode(x=True, y=False)
    plot.showGrid(x=True, y=True, alpha=0.25)
    plot.setLabel("bottom", "labels per class (log; the last point is all labels)")
    plot.setLabel("left", "top-1 on the test set")
    plot.getAxis("left").enableAutoSIPrefix(False)
    legend = plot.addLegend(offset=(10, 10))
    legend.setColumnCount(1)
    series: dict = {}
    for r in results:
        series.setdefault((r["encoder"], r["mode"]), []).append(r)
    extra = iter(OTHER)
    colors = {}
    ticks = {}
    for (enc, mode), rows in series.items():
        rows = sorted(rows, key=lambda r: _x(r, num_train, num_classes))
        x = np.array([_x(r, num_train, num_classes) for r in rows])
        y = np.array([r["top1_mean"] for r in rows])
        s = np.array([r["top1_std"] for r in rows])
        for r, xv in zip(rows, x):
            ticks[xv] = "all" if r["labels_per_class"] == "all" else str(r["labels_per_class"])
        color = colors.setdefault(enc, COLORS.get(enc) or next(extra, (0, 0, 0)))
        style = {"solid": QtCore.Qt.SolidLine, "dash": QtCore.Qt.DashLine, "dot": QtCore.Qt.DotLine}[
            STYLES.get(mode, "solid")]
        lx = np.log10(x)
        lo = pg.PlotCurveItem(lx, y - s, pen=pg.mkPen(None))
        hi = pg.PlotCurveItem(lx, y + s, pen=pg.mkPen(None))
        band = pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(*color, 45))
        plot.addItem(band)
        plot.plot(x, y, pen=pg.mkPen(color, width=2.5, style=style), symbol="o", symbolSize=6,
                  symbolBrush=pg.mkBrush(*color), symbolPen=None, name=f"{enc} {mode}")
    xs = sorted(ticks)
    plot.getAxis("bottom").setTicks([[(float(np.log10(v)), ticks[v]) for v in xs]])
    plot.setYRange(0, max(0.1, max((r["top1_mean"] + r["top1_std"] for r in results), default=1.0)) * 1.05)
    win.resize(*size)
    win.show()
    app.processEvents()
    exporter = pg.exporters.ImageExporter(plot)
    exporter.parameters()["width"] = size[0]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    exporter.export(str(path))
    win.close()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python bench/downstream_plot.py RESULT.json OUT.png|OUT.md", file=sys.stderr)
        return 2
    res = json.loads(Path(argv[0]).read_text())
    if argv[1].endswith(".md"):
        Path(argv[1]).write_text(markdown_table(res["results"]) + "\n")
        return 0
    enc = res.get("encoders", ["?"])[0]
    plot_png(res["results"], argv[1], title=res.get("title", f"{enc}: top-1 against labels per class"),
             num_train=res.get("num_train", 10000), num_classes=res.get("num_classes", 10))
    return 0


if __name__ == "__main__":
    sys.exit(main())
