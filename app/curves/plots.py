"""The curves' grid of plots (pyqtgraph): one plot per metric, one reused PlotDataItem per run, metric
and variant (with peak downsampling and clip-to-view), and the level lines (chance, random init).

It draws what app/curves/panel.py hands it; which runs and points there are lives in
app/curves/model.py."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGraphicsItem

from app.curves.model import REFERENCES, RunCurves, round_up

# (key, title, source) -- source "step" for StepMetrics values, "eval" for kNN-monitor values. The first row
# reads whether it learns (loss, kNN, pretext accuracy) and whether it collapses (the views' cosines), the
# second how it runs and what its features look like.
PLOTS = (
    ("loss", "Loss", "step"),
    ("knn_top1", "Online kNN monitor (top-1)", "eval"),
    ("pos_cos", "Positives vs negatives (cosine)", "step"),
    ("pretext_acc", "Pretext accuracy", "step"),
    ("lr", "Learning rate", "step"),
    ("images_per_s", "Images / s", "step"),
    ("effective_rank", "Effective rank of the features", "eval"),
    ("collapse_std", "Feature spread (std of normalised features)", "eval"),
)
COLUMNS = 4
SECONDARY = {"knn_top5": "knn_top1", "neg_cos": "pos_cos"}  # drawn in another metric's plot
# the names in a plot's legend (a run's name otherwise)
SERIES_NAMES = {"knn_top1": "top-1", "knn_top5": "top-5", "pos_cos": "positives", "neg_cos": "negatives"}
ALARM_PLOTS = ("loss", "knn_top1", "pos_cos", "effective_rank")  # where a collapse sign is marked


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
            self.add_plot(key, title, k // COLUMNS, k % COLUMNS)
        for key in ("knn_top1", "pretext_acc"):  # accuracies: always the full 0..1 scale
            self.plots[key].setYRange(0, 1, padding=0.02)
            self.plots[key].enableAutoRange(y=False)
        # cosines: a collapse shows as both lines at the top (-0.1..1.05, so 0 and 1 are both in view)
        self.plots["pos_cos"].setYRange(-0.1, 1.05, padding=0)
        self.plots["pos_cos"].enableAutoRange(y=False)
        self.alarm_lines: list[tuple[pg.PlotItem, pg.InfiniteLine]] = []
        # the collapse indicator is ~1 for healthy features and 0 for collapsed ones: a fixed 0..1.1 axis,
        # so noise of a few hundredths does not look like a collapse
        self.plots["collapse_std"].setYRange(0, 1.1, padding=0)
        self.plots["collapse_std"].enableAutoRange(y=False)
        self.ref_lines: dict[tuple[str, str], pg.InfiniteLine] = {}  # (run, key): the main run's level lines
        self.ref_plots: dict[tuple[str, str], str] = {}  # (run, key): the plot its line is in
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
        self.show_level(run_id, key, REFERENCES[key], value, f"random init {value:.0%}")

    def show_level(self, run_id: str, name: str, plot_key: str, value: float, text: str, color: str = "#c0392b",
                   style=Qt.PenStyle.DashLine, position: float = 0.6) -> None:
        """A level line of the main run (``name``) in ``plot_key``'s plot, labelled ``text``."""
        line = self.ref_lines.get((run_id, name))
        if line is None:
            line = self.ref_lines[(run_id, name)] = self.level_line(plot_key, color, style, position)
            self.ref_plots[(run_id, name)] = plot_key
        line.setValue(value)
        line.label.setFormat(text)
        line.setVisible(True)

    def show_alarms(self, xs: list[float]) -> None:
        """A red vertical line at each sign of collapse (x in the axis' unit) in the plots that show it."""
        for p, line in self.alarm_lines:
            p.removeItem(line)
        self.alarm_lines = []
        for x in xs:
            for key in ALARM_PLOTS:
                line = pg.InfiniteLine(pos=float(x), angle=90, movable=False,
                                       pen=pg.mkPen("#c62828", width=1.5, style=Qt.PenStyle.DashLine))
                line.setZValue(-2)
                self.plots[key].addItem(line, ignoreBounds=True)
                self.alarm_lines.append((self.plots[key], line))

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
            p = self.add_plot(key, key.replace("_", " "), n // COLUMNS, n % COLUMNS)
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
                if key in SERIES_NAMES:
                    which = SERIES_NAMES[key]
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
            self.plots[self.ref_plots.pop(k, REFERENCES.get(k[1], "loss"))].removeItem(line)
        if main:
            self.chance_line.setVisible(False)
        for k in [k for k in self.items if k[0] == run_id]:
            item = self.items.pop(k)
            for p in self.plots.values():
                if item in p.listDataItems():
                    p.removeItem(item)
                    if p.legend is not None:
                        p.legend.removeItem(item)
