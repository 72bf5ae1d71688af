"""The label-efficiency plot and the invariance bars (pyqtgraph), shared by the Inspector's Downstream tab
and the offscreen renderer of ``bench/downstream_plot.py`` (one code path for the window and the README).

Curve: x is labels per class on a log axis ("all" sits at the training set's size per class), y is top-1;
one line per encoder and mode (colour: encoder, dash: mode) with a shaded band of mean ± std over seeds.
Points arrive one at a time (``set_point``) and the plot redraws as each fit finishes.
"""

from __future__ import annotations

import csv
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

ENCODER_COLORS = {"random_init": (127, 127, 127), "supervised": (44, 160, 44)}
RUN_COLORS = [(31, 119, 180), (214, 39, 40), (148, 103, 189), (255, 127, 14), (23, 190, 207), (140, 86, 75)]
MODE_STYLES = {"linear": Qt.PenStyle.SolidLine, "finetune": Qt.PenStyle.DashLine, "knn": Qt.PenStyle.DotLine}
CSV_FIELDS = ["encoder", "mode", "labels_per_class", "top1_mean", "top1_std", "seeds", "num_labels", "top1"]
INVARIANCE_ORDER = ("crop", "flip", "color_jitter", "grayscale", "blur", "rotate90", "solarize", "same_class",
                    "different_class")
INVARIANCE_LABELS = {"color_jitter": "colour jitter", "rotate90": "rotate 90°", "same_class": "same class",
                     "different_class": "other class"}


MODE_WORDS = {"linear": "linear probe", "finetune": "fine-tuned", "knn": "kNN"}


def base_name(encoder: str) -> str:
    """An encoder's name without the ``-2`` the engine adds to tell two of one name apart."""
    return encoder.rsplit("-", 1)[0] if encoder.rsplit("-", 1)[-1].isdigit() else encoder


def curve_label(encoder: str, mode: str) -> str:
    """A curve's name in the legend: what it argues. The run's encoder with labels is "SSL + labels", the
    random-init encoder fine-tuned is "from scratch"."""
    word = MODE_WORDS.get(mode, mode)
    base = base_name(encoder)
    if base == "random_init":
        return "from scratch (random init, fine-tuned)" if mode == "finetune" else f"random init, frozen · {word}"
    if base == "supervised":
        return f"supervised run · {word}"
    return f"{encoder}: SSL + labels · {word}"


def budget_key(b) -> float:
    return math.inf if b == "all" else float(b)


def write_points_csv(points: list[dict], path) -> int:
    """The points as CSV (one row per encoder, mode and budget; ``top1`` lists the seeds' scores)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_FIELDS)
        for p in points:
            w.writerow([" ".join(f"{v:.4f}" for v in p.get("top1", [])) if k == "top1" else p.get(k, "")
                        for k in CSV_FIELDS])
    return len(points)


def read_points_csv(path) -> list[dict]:
    """The inverse of :func:`write_points_csv` (and of the CSV that ``bench/downstream.py --csv`` writes)."""
    out = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            b = r["labels_per_class"]
            out.append({"encoder": r["encoder"], "mode": r["mode"], "labels_per_class": b if b == "all" else int(b),
                        "top1_mean": float(r["top1_mean"]), "top1_std": float(r["top1_std"]),
                        "seeds": int(r["seeds"]), "num_labels": int(r["num_labels"] or 0),
                        "top1": [float(v) for v in (r.get("top1") or "").split()]})
    return out


class LabelEfficiencyPlot(pg.PlotWidget):
    """Top-1 against labels per class; ``set_point(dict)`` adds or replaces one point and redraws."""

    def __init__(self, parent=None):
        super().__init__(parent, background="w")
        self.points: dict = {}  # (encoder, mode, labels_per_class) -> point dict
        self.per_class_all = 0.0  # where "all" sits on x: training images per class
        self.encoders: list[str] = []  # in the order they came (the run's first)
        self.curves: dict = {}  # (encoder, mode) -> PlotDataItem
        self.bands: dict = {}  # (encoder, mode) -> FillBetweenItem
        p = self.getPlotItem()
        p.setLogMode(x=True, y=False)
        p.showGrid(x=True, y=True, alpha=0.25)
        for side in ("left", "bottom"):
            ax = p.getAxis(side)
            ax.setPen(pg.mkPen("#555"))
            ax.setTextPen(pg.mkPen("#333"))
        p.setLabel("bottom", "labels per class (log axis; the last point is all labels)")
        p.setLabel("left", "top-1 on the test set")
        p.getAxis("left").enableAutoSIPrefix(False)
        p.setYRange(0, 1)
        p.setMouseEnabled(x=False, y=False)
        self.legend = p.addLegend(offset=(10, 10), labelTextColor="#222", brush=pg.mkBrush(255, 255, 255, 220),
                                  pen=pg.mkPen("#ccc"))
        self.empty = pg.TextItem("", color="#777", anchor=(0.5, 0.5))
        p.addItem(self.empty, ignoreBounds=True)

    def clear_points(self, encoders=(), per_class_all: float = 0.0, text: str = "") -> None:
        self.points.clear()
        self.encoders = list(encoders)
        self.per_class_all = float(per_class_all)
        self.redraw()
        self.set_empty_text(text)

    def set_empty_text(self, text: str) -> None:
        self.empty.setText(text if not self.points else "")
        (x0, x1), (y0, y1) = self.getPlotItem().viewRange()
        self.empty.setPos((x0 + x1) / 2, (y0 + y1) / 2)

    def set_point(self, point: dict) -> None:
        key = (point["encoder"], point["mode"], point["labels_per_class"])
        self.points[key] = dict(point)
        if point["encoder"] not in self.encoders:
            self.encoders.append(point["encoder"])
        self.redraw()

    def set_points(self, points: list[dict], per_class_all: float | None = None) -> None:
        if per_class_all is not None:
            self.per_class_all = float(per_class_all)
        for p in points:
            self.points[(p["encoder"], p["mode"], p["labels_per_class"])] = dict(p)
            if p["encoder"] not in self.encoders:
                self.encoders.append(p["encoder"])
        self.redraw()

    def color(self, encoder: str) -> tuple:
        base = base_name(encoder)
        if base in ENCODER_COLORS:
            return ENCODER_COLORS[base]
        runs = [e for e in self.encoders if base_name(e) not in ENCODER_COLORS]
        i = runs.index(encoder) if encoder in runs else len(runs)
        return RUN_COLORS[i % len(RUN_COLORS)]

    def x_of(self, budget) -> float:
        if budget == "all":
            if self.per_class_all > 0:
                return self.per_class_all
            return 2 * max((float(k[2]) for k in self.points if k[2] != "all"), default=1.0)
        return float(budget)

    def series(self) -> dict:
        """(encoder, mode) -> (x, mean, std, budgets), sorted by x."""
        out: dict = {}
        for (enc, mode, b), p in self.points.items():
            out.setdefault((enc, mode), []).append((self.x_of(b), p["top1_mean"], p["top1_std"], b))
        for k, rows in out.items():
            rows.sort(key=lambda r: r[0])
            out[k] = (np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                      np.array([r[2] for r in rows]), [r[3] for r in rows])
        return out

    def redraw(self) -> None:
        p = self.getPlotItem()
        for item in list(self.curves.values()) + list(self.bands.values()):
            p.removeItem(item)
        for band in self.bands.values():  # its two edges were added as hidden items of their own
            for edge in (band.curves or []):
                p.removeItem(edge)
        self.curves.clear()
        self.bands.clear()
        self.legend.clear()
        ticks: dict = {}
        order = {e: i for i, e in enumerate(self.encoders)}
        modes = list(MODE_STYLES)
        ymax = 0.0
        for (enc, mode), (x, y, s, budgets) in sorted(self.series().items(), key=lambda kv: (
                order.get(kv[0][0], 99), modes.index(kv[0][1]) if kv[0][1] in modes else 9)):
            color = self.color(enc)
            faint = base_name(enc) == "random_init" and mode != "finetune"  # a frozen random init: no argument
            for xv, b in zip(x, budgets):
                ticks[float(xv)] = "all" if b == "all" else str(b)
            lo = pg.PlotDataItem(x, y - s, pen=pg.mkPen(None))
            hi = pg.PlotDataItem(x, y + s, pen=pg.mkPen(None))
            for edge in (lo, hi):
                p.addItem(edge)  # in the plot, so they take its log x axis
            band = pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(*color, 20 if faint else 45))
            band.curves = (lo, hi)
            p.addItem(band)
            pen_color = (*color, 110) if faint else color
            curve = pg.PlotDataItem(x, y, pen=pg.mkPen(pen_color, width=1.5 if faint else 2.5,
                                                       style=MODE_STYLES.get(mode, Qt.PenStyle.SolidLine)),
                                    symbol="o", symbolSize=5 if faint else 7, symbolBrush=pg.mkBrush(*pen_color),
                                    symbolPen=pg.mkPen("w"), name=curve_label(enc, mode))
            p.addItem(curve)
            self.curves[enc, mode] = curve
            self.bands[enc, mode] = band
            ymax = max(ymax, float(np.max(y + s)))
        if ticks:
            xs = sorted(ticks)
            p.getAxis("bottom").setTicks([[(math.log10(v), ticks[v]) for v in xs], []])
            lo_x, hi_x = math.log10(xs[0]), math.log10(xs[-1])
            pad = max(0.08, 0.04 * (hi_x - lo_x))
            p.setXRange(lo_x - pad, hi_x + pad, padding=0)
            p.setYRange(0, min(1.0, max(0.1, ymax) * 1.08 + 0.02), padding=0)
        else:  # nothing yet: a decade axis from 1 to 1000 labels per class
            p.getAxis("bottom").setTicks([[(float(i), str(10 ** i)) for i in range(4)], []])
            p.setXRange(-0.1, 3.1, padding=0)
            p.setYRange(0, 1, padding=0)
        self.legend.setVisible(bool(self.points))
        self.set_empty_text(self.empty.toPlainText())

    def point_list(self) -> list[dict]:
        order = {e: i for i, e in enumerate(self.encoders)}
        modes = list(MODE_STYLES)
        return [self.points[k] for k in sorted(self.points, key=lambda k: (
            order.get(k[0], 99), modes.index(k[1]) if k[1] in modes else 9, budget_key(k[2])))]

    def export_png(self, path, width: int = 0) -> bool:
        import pyqtgraph.exporters  # noqa: F401  (registers the exporters)

        ex = pg.exporters.ImageExporter(self.getPlotItem())
        if width:
            ex.parameters()["width"] = int(width)
        ex.export(str(path))
        return True


class InvarianceBars(pg.PlotWidget):
    """Mean cosine similarity per transformation and image pair, one bar group per name, a bar per encoder."""

    def __init__(self, parent=None):
        super().__init__(parent, background="w")
        self.rows: list[dict] = []
        self.items: list = []
        p = self.getPlotItem()
        p.showGrid(y=True, alpha=0.25)
        for side in ("left", "bottom"):
            ax = p.getAxis(side)
            ax.setPen(pg.mkPen("#555"))
            ax.setTextPen(pg.mkPen("#333"))
        p.setLabel("left", "cosine similarity (centred)")
        p.setMouseEnabled(x=False, y=False)
        p.setYRange(-0.2, 1.05, padding=0)
        self.legend = p.addLegend(offset=(-10, 10), labelTextColor="#222", brush=pg.mkBrush(255, 255, 255, 220),
                                  pen=pg.mkPen("#ccc"))
        self.empty = pg.TextItem("", color="#777", anchor=(0.5, 0.5))
        p.addItem(self.empty, ignoreBounds=True)

    def set_rows(self, rows: list[dict]) -> None:
        self.rows = list(rows)
        p = self.getPlotItem()
        for it in self.items:
            p.removeItem(it)
        self.items = []
        self.legend.clear()
        names = [n for n in INVARIANCE_ORDER if any(r["name"] == n for r in rows)]
        encs = list(dict.fromkeys(r["encoder"] for r in rows))
        self.legend.setVisible(bool(names))
        self.empty.setText("" if names else "Press Measure: the run's encoder next to a random-init one")
        if not names:
            p.getAxis("bottom").setTicks([[(i, INVARIANCE_LABELS.get(n, n)) for i, n in enumerate(INVARIANCE_ORDER)],
                                          []])
            p.setXRange(-0.6, len(INVARIANCE_ORDER) - 0.4, padding=0)
            p.setYRange(-0.2, 1.05, padding=0)
            self.empty.setPos(len(INVARIANCE_ORDER) / 2 - 0.5, 0.45)
            return
        width = 0.8 / max(1, len(encs))
        cell = {(r["encoder"], r["name"]): r for r in rows}
        for j, enc in enumerate(encs):
            color = ENCODER_COLORS.get(enc, RUN_COLORS[j % len(RUN_COLORS)]) if j else RUN_COLORS[0]
            xs, hs, es = [], [], []
            for i, n in enumerate(names):
                r = cell.get((enc, n))
                if r is None:
                    continue
                xs.append(i - 0.4 + width * (j + 0.5))
                hs.append(r["mean"])
                es.append(r.get("std", 0.0))
            bars = pg.BarGraphItem(x=np.array(xs), height=np.array(hs), width=width * 0.92, brush=pg.mkBrush(*color),
                                   pen=pg.mkPen(None), name=enc)
            p.addItem(bars)  # named: the legend lists it
            err = pg.ErrorBarItem(x=np.array(xs), y=np.array(hs), height=np.array(es), beam=width * 0.3,
                                  pen=pg.mkPen("#444"))
            p.addItem(err)
            self.items += [bars, err]
        if "same_class" in names and names.index("same_class") > 0:
            line = pg.InfiniteLine(pos=names.index("same_class") - 0.5, angle=90,
                                   pen=pg.mkPen("#999", style=Qt.PenStyle.DashLine))
            p.addItem(line)
            self.items.append(line)
        p.getAxis("bottom").setTicks([[(i, INVARIANCE_LABELS.get(n, n)) for i, n in enumerate(names)], []])
        lo = min(-0.2, min(r["mean"] - r.get("std", 0) for r in rows) - 0.05)
        p.setXRange(-0.6, len(names) - 0.4, padding=0)
        p.setYRange(lo, 1.05, padding=0)


def render_curve_png(points: list[dict], path, per_class_all: float = 0.0, title: str = "",
                     size=(1000, 620)) -> None:
    """Draw ``points`` with the tab's plot, offscreen, and save a PNG (the README's picture)."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    plot = LabelEfficiencyPlot()
    if title:
        plot.getPlotItem().setTitle(title, color="#222")
    plot.set_points(points, per_class_all)
    plot.resize(*size)
    plot.show()
    app.processEvents()
    plot.export_png(path, width=size[0])
    plot.close()
