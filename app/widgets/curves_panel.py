"""Live training curves (pyqtgraph): loss, learning rate, images/s, online kNN, collapse indicator,
pretext accuracy and any other metric a method reports; several runs overlaid; PNG and CSV export.

Points go into growing numpy buffers (amortised O(1) appends); a ~30 Hz timer redraws only the
series that changed, each a reused PlotDataItem with peak downsampling and clip-to-view, so
100k+ points per series stay cheap. A run folder written by another process (a headless
``main.py train``) is followed by tailing its ``metrics.jsonl``.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.curves_model import (
    IGNORED,
    REFERENCES,
    X_KINDS,
    EmaCache,
    RunCurves,
    records_to_blocks,
    run_facts,
)
from app.run_model import RunRef
from app.tasks import run_in_thread
from app.view import MenuEntry, View, ViewContext
from engine import messages as M

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
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f")
FRAME_MS = 33


class CurvesPanel(QWidget, View):
    changed = Signal()  # something new was drawn

    def __init__(self, parent=None):
        super().__init__(parent)
        pg.setConfigOptions(antialias=False, background="w", foreground="#333")
        self.runs: dict[str, RunCurves] = {}
        self.main_id: str | None = None
        self.plots: dict[str, pg.PlotItem] = {}
        self.items: dict[tuple[str, str, str], pg.PlotDataItem] = {}  # (run, key, variant)
        self.x_kind = "step"
        self.smoothing = 0.6
        self._all_dirty = False
        self._color_i = 0
        self.redraws = 0

        self.title = QLabel("No run yet: press Start in the Run panel, open a run from the history, or start the "
                            "demo (Help > Run the demo).")
        self.title.setObjectName("curvesTitle")
        self.title.setWordWrap(True)
        self.final_label = QLabel("")
        self.final_label.setObjectName("finalResult")
        self.smooth = QSlider(Qt.Orientation.Horizontal)
        self.smooth.setRange(0, 99)
        self.smooth.setValue(int(self.smoothing * 100))
        self.smooth.setFixedWidth(110)
        self.smooth.setToolTip("Smoothing of the loss (exponential moving average)")
        self.smooth.valueChanged.connect(self._smoothing_changed)
        self.smooth_label = QLabel(f"{self.smoothing:.2f}")
        self.log_loss = QCheckBox("Log loss")
        self.log_loss.setToolTip("Logarithmic loss axis")
        self.log_loss.toggled.connect(self._log_toggled)
        self.xaxis = QComboBox()
        self.xaxis.addItems(["step", "epoch", "time (s)"])
        self.xaxis.currentIndexChanged.connect(self._x_changed)
        self.overlay_btn = QPushButton("Overlay run…")
        self.overlay_btn.setToolTip("Add another run folder's curves for comparison (or use the Run history)")
        self.overlay_btn.clicked.connect(self._overlay_dialog)
        self.clear_btn = QPushButton("Clear overlays")
        self.clear_btn.clicked.connect(self.clear_overlays)
        self.png_btn = QPushButton("Export PNG…")
        self.png_btn.clicked.connect(self.export_png_dialog)
        self.csv_btn = QPushButton("Export CSV…")
        self.csv_btn.clicked.connect(self.export_csv_dialog)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Smoothing"))
        bar.addWidget(self.smooth)
        bar.addWidget(self.smooth_label)
        bar.addWidget(self.log_loss)
        bar.addWidget(QLabel("x axis"))
        bar.addWidget(self.xaxis)
        bar.addStretch(1)
        for b in (self.overlay_btn, self.clear_btn, self.png_btn, self.csv_btn):
            bar.addWidget(b)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.ci.setSpacing(6)
        for k, (key, title, _src) in enumerate(PLOTS):
            self._add_plot(key, title, k // 3, k % 3)
        for key in ("knn_top1", "pretext_acc"):  # accuracies: always the full 0..1 scale
            self.plots[key].setYRange(0, 1, padding=0.02)
            self.plots[key].enableAutoRange(y=False)
        # the collapse indicator is ~1 for healthy features and 0 for collapsed ones: a fixed 0..1.1 axis,
        # so noise of a few hundredths does not look like a collapse
        self.plots["collapse_std"].setYRange(0, 1.1, padding=0)
        self.plots["collapse_std"].enableAutoRange(y=False)
        self.ref_lines: dict[tuple[str, str], pg.InfiniteLine] = {}  # (run, key): the main run's level lines
        self.chance_line = self._level_line("knn_top1", "#888", Qt.PenStyle.DotLine, 0.97)

        lay = QVBoxLayout(self)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.final_label)
        lay.addLayout(head)
        lay.addLayout(bar)
        lay.addWidget(self.graphics, 1)

        self._timer = QTimer(self)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._redraw)
        self._timer.start()
        self._tail_timer = QTimer(self)
        self._tail_timer.setInterval(1000)
        self._tail_timer.timeout.connect(self._tail)
        self._tail_timer.start()
        self._tail_busy = False
        self._last_live_check = 0.0

    # -- plots -----------------------------------------------------------------------------
    def _add_plot(self, key: str, title: str, row: int, col: int) -> pg.PlotItem:
        p = self.graphics.addPlot(row=row, col=col)
        p.showGrid(x=True, y=True, alpha=0.25)
        for side in ("left", "bottom"):  # grid lines at major ticks only: a third of the paint time
            p.getAxis(side).setStyle(maxTickLevel=0)
        p.setLabel("bottom", self.x_kind)
        p.getAxis("left").setWidth(48)
        p.setMenuEnabled(True)
        p.titleText = title
        p.addLegend(offset=(-6, 6), labelTextSize="8pt")
        p.legend.setVisible(False)
        if self.plots:  # one x range for all plots: an eval point sits where its step is
            p.setXLink(self.plots["loss"])
        self.plots[key] = p
        self._set_title(key)
        return p

    def _level_line(self, key: str, color: str, style, position: float) -> pg.InfiniteLine:
        line = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen(color, width=1.2, style=style),
                               label="", labelOpts={"position": position, "color": color, "anchors": [(1, 1), (1, 1)]})
        line.setVisible(False)
        line.setZValue(-2)
        self.plots[key].addItem(line, ignoreBounds=True)
        return line

    def _show_reference(self, run: RunCurves, key: str, value: float) -> None:
        """The main run's reference level (the random-init kNN accuracy) as a dashed line."""
        if run.id != self.main_id:
            return
        line = self.ref_lines.get((run.id, key))
        if line is None:
            line = self.ref_lines[(run.id, key)] = self._level_line(REFERENCES[key], "#c0392b",
                                                                    Qt.PenStyle.DashLine, 0.6)
        line.setValue(value)
        line.label.setFormat(f"random init {value:.0%}")
        line.setVisible(True)

    def _show_chance(self) -> None:
        run = self.runs.get(self.main_id) if self.main_id else None
        c = run.num_classes if run is not None else None
        self.chance_line.setVisible(bool(c and c > 1))
        if c and c > 1:
            self.chance_line.setValue(1.0 / c)
            self.chance_line.label.setFormat(f"chance {1 / c:.0%} ({c} classes)")

    def _ask_facts(self, run: RunCurves) -> None:
        """Read the run's class count and probe epochs off the GUI thread (the chance line, the final label)."""
        if not run.run_dir or run.num_classes is not None:
            return

        def done(facts, run=run):
            if self.runs.get(run.id) is run:
                run.num_classes, run.probe_epochs = facts["num_classes"], facts["probe_epochs"]
                self._show_chance()
                self._show_final()

        run_in_thread(lambda d=run.run_dir: run_facts(d), on_done=done, on_error=lambda _e: None)

    def _plot_for(self, key: str) -> pg.PlotItem:
        key = SECONDARY.get(key, key)
        p = self.plots.get(key)
        if p is None:
            n = len(self.plots)
            p = self._add_plot(key, key.replace("_", " "), n // 3, n % 3)
        return p

    def _set_title(self, key: str) -> None:
        p = self.plots[key]
        n = sum(r.count(key) for r in self.runs.values())
        note = "" if n else " <span style='color:#aaa'>(no data yet)</span>"
        if not n and key == "pretext_acc" and self.main_id and self.runs[self.main_id].count("loss"):
            note = " <span style='color:#aaa'>(not reported by this method)</span>"
        p.setTitle(f"<span style='font-size:9pt'>{p.titleText}{note}</span>")

    def _item(self, run: RunCurves, key: str, variant: str) -> pg.PlotDataItem:
        k = (run.id, key, variant)
        item = self.items.get(k)
        if item is None:
            p = self._plot_for(key)
            main = run.id == self.main_id
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

    # -- runs ------------------------------------------------------------------------------
    def _next_color(self) -> str:
        c = COLORS[self._color_i % len(COLORS)]
        self._color_i += 1
        return c

    def _remove_run(self, run_id: str) -> None:
        self.runs.pop(run_id, None)
        for k in [k for k in self.ref_lines if k[0] == run_id]:
            line = self.ref_lines.pop(k)
            self.plots[REFERENCES[k[1]]].removeItem(line)
        if run_id == self.main_id:
            self.chance_line.setVisible(False)
        for k in [k for k in self.items if k[0] == run_id]:
            item = self.items.pop(k)
            for p in self.plots.values():
                if item in p.listDataItems():
                    p.removeItem(item)
                    if p.legend is not None:
                        p.legend.removeItem(item)

    def start_live(self, name: str, run_dir: str | None = None, keep_history: bool = False) -> None:
        """A new live run becomes the main run (its curves replace the previous main run's)."""
        if self.main_id is not None:
            self._remove_run(self.main_id)
        self.main_id = "main"
        self._color_i = 0
        run = RunCurves("main", name, self._next_color(), run_dir)
        self.runs["main"] = run
        self.final_label.setText("")
        self.title.setText(f"<b>{name}</b>" + (f" <span style='color:#777'>{run_dir}</span>" if run_dir else ""))
        if keep_history and run_dir:
            run.loading = True
            self._read(run, initial=True)
        self._all_dirty = True

    def open_run(self, run_dir: str, name: str | None = None, overlay: bool = False, live: bool = False) -> str:
        """Show a run folder's curves: as the main run, or overlaid on it. ``live`` tails it."""
        run_dir = str(Path(run_dir))
        name = name or Path(run_dir).name
        if overlay:
            for r in self.runs.values():
                if r.run_dir == run_dir:
                    return r.id
            run = RunCurves(f"overlay:{run_dir}", name, self._next_color(), run_dir)
        else:
            if self.main_id is not None:
                self._remove_run(self.main_id)
            self._color_i = 0
            run = RunCurves("main", name, self._next_color(), run_dir)
            self.main_id = "main"
            self.final_label.setText("")
            self.title.setText(f"<b>{name}</b> <span style='color:#777'>{run_dir}</span>"
                               + (" <span style='color:#2e7d32'>(live)</span>" if live else ""))
        run.tail = live
        run.loading = True
        self.runs[run.id] = run
        self._read(run, initial=True)
        self._all_dirty = True
        return run.id

    def clear_overlays(self) -> None:
        for rid in [r for r in self.runs if r != self.main_id]:
            self._remove_run(rid)
        self._all_dirty = True

    def overlay_ids(self) -> list[str]:
        return [r for r in self.runs if r != self.main_id]

    # -- the view protocol -----------------------------------------------------------------
    @classmethod
    def create(cls, ctx: ViewContext) -> CurvesPanel:
        panel = cls()
        ctx.engine.message.connect(panel.on_engine_message)
        ctx.run.runChanged.connect(panel.show_run)
        return panel

    def menu_entries(self) -> list[MenuEntry]:
        return [MenuEntry("File", "Export curves as PNG…", self.export_png_dialog, "Ctrl+E"),
                MenuEntry("File", "Export curves as CSV…", self.export_csv_dialog, "Ctrl+Shift+E")]

    def show_run(self, ref: RunRef) -> None:
        """The window's run changed: a started run replaces the curves, a resumed one continues its own
        (read back from its folder unless they are shown already), an opened one is read from disk."""
        if ref.origin == "started":
            self.start_live(ref.name, ref.run_dir)
        elif ref.origin == "resumed":
            main = self.runs.get("main")
            if main is None or main.run_dir != ref.run_dir:
                self.start_live(ref.name, ref.run_dir, keep_history=True)
        else:
            self.open_run(ref.run_dir, live=ref.live)

    # -- data in ---------------------------------------------------------------------------
    def on_engine_message(self, msg) -> None:
        run = self.runs.get("main") if self.main_id == "main" else None
        if isinstance(msg, M.RunStarted):
            if run is not None and msg.resumed:
                run.resume_step = msg.start_step
                self._truncate(run, msg.start_step)
            if run is not None:
                self._ask_facts(run)  # data.json is written before RunStarted
            return
        if run is None:
            return
        if run.loading and isinstance(msg, (M.StepMetrics, M.EvalResult)):
            run.pending_live.append(msg)
            return
        self._apply(run, msg)

    def _truncate(self, run: RunCurves, step: int) -> None:
        for s in list(run.steps.values()) + list(run.evals.values()):
            s.truncate_after(step)
        run.smoothed.clear()
        self._all_dirty = True

    def _apply(self, run: RunCurves, msg) -> None:
        if isinstance(msg, M.StepMetrics):
            run.last_time = float(msg.elapsed_s)
            for k, v in msg.values.items():
                if isinstance(v, (int, float)):
                    run.series(k, "step").append(msg.step, msg.epoch, msg.elapsed_s, float(v))
                    run.dirty.add(k)
        elif isinstance(msg, M.EvalResult):
            if msg.kind_name == "final":
                run.final = dict(msg.values)
                self._show_final()
                return
            for k, v in msg.values.items():
                if isinstance(v, (int, float)):
                    run.series(k, "eval").append(msg.step, msg.epoch, run.last_time, float(v))
                    run.dirty.add(k)

    def _read(self, run: RunCurves, initial: bool = False) -> None:
        from engine.runs import read_metrics

        def job(run_dir=run.run_dir, offset=run.offset):
            records, new_offset = read_metrics(run_dir, offset)
            return records_to_blocks(records) if initial else (records, new_offset), new_offset

        def done(res, run=run):
            if self.runs.get(run.id) is not run:
                return  # replaced meanwhile
            payload, new_offset = res
            run.offset = new_offset
            if initial:
                steps, evals, final = payload
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
                    self._truncate(run, run.resume_step)
                run.loading = False
                for m in run.pending_live:
                    if isinstance(m, M.StepMetrics) and run.count("loss") and m.step <= run.steps["loss"].step[-1]:
                        continue  # already in the file
                    self._apply(run, m)
                run.pending_live = []
                self._show_final()
                self._ask_facts(run)
            else:
                self._apply_records(run, payload[0])
            self._tail_busy = False

        def failed(err, run=run):
            run.loading = False
            self._tail_busy = False

        self._tail_busy = True
        run_in_thread(job, on_done=done, on_error=failed)

    def _apply_records(self, run: RunCurves, records: list[dict]) -> None:
        for r in records:
            typ = r.get("type")
            if typ == "resume":
                self._truncate(run, int(r.get("step", 0)))
            elif typ == "step":
                self._apply(run, M.StepMetrics(int(r.get("step", 0)), float(r.get("epoch", 0)),
                                               {k: v for k, v in r.items() if k not in IGNORED},
                                               float(r.get("time", run.last_time))))
            elif typ == "eval":
                self._apply(run, M.EvalResult(r.get("kind", "knn_monitor"), int(r.get("step", 0)),
                                              float(r.get("epoch", 0)), {k: v for k, v in r.items()
                                                                         if k not in IGNORED}))

    def _tail(self) -> None:
        tails = [r for r in self.runs.values() if r.tail and not r.loading]
        if not tails or self._tail_busy:
            return
        now = time.monotonic()
        if now - self._last_live_check > 5:
            self._last_live_check = now
            from engine.runs import run_info

            for r in tails:
                info = run_info(r.run_dir)
                if info is None or not info.live:
                    r.tail = False  # one last read below
                    if r.id == self.main_id:
                        self.title.setText(self.title.text().replace("(live)", f"({info.state if info else 'gone'})"))
        self._tail_turn = (getattr(self, "_tail_turn", -1) + 1) % len(tails)  # one run a tick, in turn
        self._read(tails[self._tail_turn])

    # -- drawing ---------------------------------------------------------------------------
    def _smoothing_changed(self, v: int) -> None:
        self.smoothing = v / 100.0
        self.smooth_label.setText(f"{self.smoothing:.2f}")
        for run in self.runs.values():
            run.dirty.add("loss")

    def _log_toggled(self, on: bool) -> None:
        self.plots["loss"].setLogMode(y=on)
        for run in self.runs.values():
            run.dirty.add("loss")

    def _x_changed(self, i: int) -> None:
        self.x_kind = X_KINDS[i]
        for p in self.plots.values():
            p.setLabel("bottom", self.xaxis.currentText())
        self._all_dirty = True

    def _redraw(self, force: bool = False) -> None:
        if not force and not self.isVisible():
            return  # the series stay dirty: drawn when the tab is shown
        changed = False
        for run in list(self.runs.values()):
            keys = set(run.steps) | set(run.evals) if self._all_dirty else run.dirty
            if not keys:
                continue
            for key in keys:
                s = run.steps.get(key) or run.evals.get(key)
                if s is None or s.n == 0:
                    continue
                if key in REFERENCES:
                    self._show_reference(run, key, float(s.y[-1]))
                    changed = True
                    continue
                x = s.x(self.x_kind)
                y = s.y
                if key == "loss" and key in run.steps:
                    ys = run.smoothed.setdefault(key, EmaCache()).get(y, self.smoothing)
                    if self.log_loss.isChecked():
                        ok = (y > 0) & (ys > 0)
                        x, y, ys = x[ok], y[ok], ys[ok]
                    if run.id == self.main_id and self.smoothing > 0:
                        self._item(run, key, "raw").setData(x, y)
                    elif (run.id, key, "raw") in self.items:
                        self.items[(run.id, key, "raw")].setData([], [])
                    self._item(run, key, "line").setData(x, ys)
                else:
                    self._item(run, key, "line").setData(x, y)
                changed = True
            for key in keys:
                k = SECONDARY.get(key, key)
                if k in self.plots:
                    self._set_title(k)
            run.dirty.clear()
        self._all_dirty = False
        if changed:
            self.redraws += 1
            self.changed.emit()

    def _show_final(self) -> None:
        run = self.runs.get(self.main_id) if self.main_id else None
        if run is None or not run.final:
            self.final_label.setText("")
            return
        parts = []
        for key, label in (("knn_top1", "kNN top-1"), ("linear_top1", "linear probe top-1")):
            v = run.final.get(key)
            if isinstance(v, (int, float)):
                epochs = f" ({run.probe_epochs} probe epochs)" if key == "linear_top1" and run.probe_epochs else ""
                parts.append(f"{label} <b>{v:.1%}</b>{epochs}")
        self.final_label.setText("Final: " + " · ".join(parts) if parts else "")

    # -- queries ---------------------------------------------------------------------------
    def point_count(self, key: str = "loss", run_id: str | None = None) -> int:
        run = self.runs.get(run_id or self.main_id or "")
        return run.count(key) if run is not None else 0

    def is_ready(self) -> bool:
        run = self.runs.get(self.main_id or "")
        return run is None and self.main_id is None or (run is not None and not run.loading and self.redraws > 0
                                                        and not run.dirty)

    # -- export ----------------------------------------------------------------------------
    def export_png_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the curves as PNG", "curves.png", "PNG (*.png)")
        if path:
            self.export_png(path)

    def export_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the curves as CSV", "curves.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_png(self, path: str) -> bool:
        self._redraw(force=True)
        return self.graphics.grab().save(path, "PNG")

    def export_csv(self, path: str) -> int:
        """Every plotted point, one a row: run, metric, step, epoch, time_s, value. Returns the row count."""
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

    def _overlay_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a run folder to overlay")
        if path:
            self.open_run(path, overlay=True)
