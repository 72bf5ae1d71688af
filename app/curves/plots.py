"""The curves' grid of plots (pyqtgraph): one plot per metric, one reused PlotDataItem per run, metric
and variant (with peak downsampling and clip-to-view), and the level lines (chance, random init).

It draws what app/curves/panel.py hands it; which runs and points there are lives in
app/curves/model.py."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGraphicsItem

from app.curves.model import REFERENCES, RunCurves, round_up

# (key, title, source) -- source "step" for StepMetrics values, "eval" for kNN-monitor values
PLOTS = (
    ("loss", "Loss", "step"),
    ("lr", "Learning rate", "step"),
    ("images_per_s", "Images / s", "step"),
    ("knn_top1", "Online kNN accuracy", "eval"),
    ("collapse_std", "Collapse indicator (std of normalised features)", "eval"),
    ("pretext_acc", "Pretext accuracy", "step"),
)
SECONDARY = {"knn_top5": "knn_top1"}  # drawn in another metric's plot


class CurvePlots(pg.GraphicsLayoutWidget):
    def __init__(self, note_for, parent=None):
        """``note_for(key)``: what a plot's title adds (why it has no points; CurvesModel.plot_note)."""
        super().__init__(parent)
        self.note_for = note_for
        self.plots: dict[str, pg.PlotItem] = {}
        self.items: dict[tuple[str, str, str], pg.PlotDataItem] = {}  # (run, key, variant)
        self.x_kind = "step"
        self.ci.setSpacing(6)
        for k, (key, title, _src) in enumerate(PLOTS):
            self.add_plot(key, title, k // 3, k % 3)
        for key in ("knn_top1", "pretext_acc"):  # accuracies: always the full 0..1 scale
            self.plots[key].setYRange(0, 1, padding=0.02)
            self.plots[key].enableAutoRange(y=False)
        # the collapse indicator is ~1 for healthy features and 0 for collapsed ones: a fixed 0..1.1 axis,
        # so noise of a few hundredths does not look like a collapse
        self.plots["collapse_std"].setYRange(0, 1.1, padding=0)
        self.plots["collapse_std"].enableAutoRange(y=False)
        self.ref_lines: dict[tuple[str, str], pg.InfiniteLine] = {}  # (run, key): the main run's level lines
        self.chance_line = self.level_line("knn_top1", "#888", Qt.PenStyle.DotLine, 0.97)
        # the shared x range follows the data in steps (follow_x) until the user zooms or pans; the button
        # that re-enables pyqtgraph's auto-range hands it back to following
        self.x_follow = True
        self.x_range: tuple[float, float] | None = None

    def add_plot(self, key: str, title: str, row: int, col: int) -> pg.PlotItem:
        p = self.addPlot(row=row, col=col)
        p.showGrid(x=True, y=True, alpha=0.25)
        for side in ("left", "bottom"):  # grid lines at major ticks only: a third of the paint time
            p.getAxis(side).setStyle(maxTickLevel=0)
            # an axis whose range did not change is copied from a cache, not drawn again (text is costly)
            p.getAxis(side).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        p.setLabel("bottom", self.x_kind)
        p.getAxis("left").setWidth(48)
        p.setMenuEnabled(True)
        p.titleText = title
        p.addLegend(offset=(-6, 6), labelTextSize="8pt")
        p.legend.setVisible(False)
        if self.plots:  # one x range for all plots: an eval point sits where its step is
            p.setXLink(self.plots["loss"])
        p.enableAutoRange(x=False)
        p.vb.sigRangeChangedManually.connect(self._x_manual)
        p.vb.sigStateChanged.connect(self._x_auto)
        self.plots[key] = p
        self.set_title(key)
        return p

    def set_title(self, key: str) -> None:
        p = self.plots[key]
        html = f"<span style='font-size:9pt'>{p.titleText}{self.note_for(key)}</span>"
        if getattr(p, "title_html", None) != html:  # a new title re-lays the whole grid out: only when it changes
            p.title_html = html
            p.setTitle(html)

    def set_x(self, kind: str, label: str) -> None:
        self.x_kind = kind
        self.x_follow, self.x_range = True, None
        for p in self.plots.values():
            p.setLabel("bottom", label)

    def follow_x(self, extent: tuple[float, float] | None) -> None:
        """Show the data's x ``extent`` (lo, hi) up to a round number past its end, unless the user zoomed or
        panned. The range grows in steps of at most half its length, so the axes (the costly part of a
        frame: 2.5x the paint time when every axis changes) are redrawn a few times a run, not every frame."""
        if not self.x_follow or extent is None:
            return
        lo, hi = extent
        left = 0.0 if lo >= 0 else lo
        if self.x_range is not None and self.x_range[0] == left and lo >= left and hi <= self.x_range[1]:
            return
        right = round_up(max(hi - left, 1e-9)) + left
        self.x_range = (left, right)
        self.plots["loss"].setXRange(left, right, padding=0)

    def _x_manual(self, *_mask) -> None:
        self.x_follow = False

    def _x_auto(self, *_args) -> None:
        """pyqtgraph's auto-range button (or a reset) switched x auto-ranging on: follow the data again."""
        vb = self.plots["loss"].vb if "loss" in self.plots else None
        if vb is not None and vb.autoRangeEnabled()[0]:
            for p in self.plots.values():
                p.enableAutoRange(x=False)
            self.x_follow, self.x_range = True, None

    def level_line(self, key: str, color: str, style, position: float) -> pg.InfiniteLine:
        line = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen(color, width=1.2, style=style),
                               label="", labelOpts={"position": position, "color": color, "anchors": [(1, 1), (1, 1)]})
        line.setVisible(False)
        line.setZValue(-2)
        self.plots[key].addItem(line, ignoreBounds=True)
        return line

    def show_reference(self, run_id: str, key: str, value: float) -> None:
        """The main run's reference level (the random-init kNN accuracy) as a dashed line."""
        line = self.ref_lines.get((run_id, key))
        if line is None:
            line = self.ref_lines[(run_id, key)] = self.level_line(REFERENCES[key], "#c0392b",
                                                                   Qt.PenStyle.DashLine, 0.6)
        line.setValue(value)
        line.label.setFormat(f"random init {value:.0%}")
        line.setVisible(True)

    def show_chance(self, num_classes: int | None) -> None:
        c = num_classes
        self.chance_line.setVisible(bool(c and c > 1))
        if c and c > 1:
            self.chance_line.setValue(1.0 / c)
            self.chance_line.label.setFormat(f"chance {1 / c:.0%} ({c} classes)")

    def plot_for(self, key: str) -> pg.PlotItem:
        """The plot a metric is drawn in (a metric without a plot of its own gets a new one)."""
        key = SECONDARY.get(key, key)
        p = self.plots.get(key)
        if p is None:
            n = len(self.plots)
            p = self.add_plot(key, key.replace("_", " "), n // 3, n % 3)
        return p

    def item(self, run: RunCurves, key: str, variant: str, main: bool) -> pg.PlotDataItem:
        """The reused item of a run's metric (``variant`` "line", or "raw" for the unsmoothed loss)."""
        k = (run.id, key, variant)
        item = self.items.get(k)
        if item is None:
            p = self.plot_for(key)
            color = pg.mkColor(run.color)
            if variant == "raw":
                color.setAlpha(60)
            elif key in SECONDARY:
                color.setAlpha(130)
            width = 2 if main and variant != "raw" else 1.3
            style = Qt.PenStyle.DashLine if key in SECONDARY else Qt.PenStyle.SolidLine
            pen = pg.mkPen(color, width=width, style=style)
            name = None
            if variant != "raw":
                name = run.name
                if key in ("knn_top1", "knn_top5"):
                    which = "top-5" if key == "knn_top5" else "top-1"
                    name = which if main else f"{run.name} ({which})"
            is_eval = key in run.evals
            item = pg.PlotDataItem(pen=pen, name=name, symbol=("t" if key in SECONDARY else "o") if is_eval else None,
                                   symbolSize=6, symbolBrush=pg.mkBrush(color), symbolPen=None)
            item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)
            p.addItem(item)
            if variant == "raw":
                item.setZValue(-1)
            self.items[k] = item
            plot_key = SECONDARY.get(key, key)
            named = [kk for kk in self.items if SECONDARY.get(kk[1], kk[1]) == plot_key and kk[2] != "raw"]
            p.legend.setVisible(len(named) > 1)
        return item

    def remove_run(self, run_id: str, main: bool) -> None:
        """A run's items and level lines go (the chance line too when it was the main run)."""
        for k in [k for k in self.ref_lines if k[0] == run_id]:
            line = self.ref_lines.pop(k)
            self.plots[REFERENCES[k[1]]].removeItem(line)
        if main:
            self.chance_line.setVisible(False)
        for k in [k for k in self.items if k[0] == run_id]:
            item = self.items.pop(k)
            for p in self.plots.values():
                if item in p.listDataItems():
                    p.removeItem(item)
                    if p.legend is not None:
                        p.legend.removeItem(item)
