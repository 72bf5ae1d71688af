"""Live training curves (pyqtgraph): loss, the online kNN monitor, the two views' positive and negative cosines,
pretext accuracy, learning rate, images/s, the features' effective rank and spread, and any other metric a
method reports; several runs overlaid; PNG and CSV export. A sign of collapse (engine.messages.Collapse, or its
record in an opened run) shows as a warning above the plots and a red line where it appeared.

Points go into growing numpy buffers (amortised O(1) appends; app/curves/model.py holds the runs);
a ~30 Hz timer redraws only the series that changed, each a reused PlotDataItem with peak
downsampling and clip-to-view (app/curves/plots.py), so 100k+ points per series stay cheap.
A run folder written by another process (a headless ``main.py train``) is followed by tailing its
``metrics.jsonl`` (app/curves/feed.py). ``curves_view(ctx)`` makes the window's view: it follows the
run model's run (and its overlays) and the training client's messages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.common import dialogs
from app.common.measures import collapse_line, final_text, monitor_short
from app.common.run_text import NO_RUN_YET
from app.common.view import MenuEntry, View, ViewContext
from app.curves.feed import CurvesFeed
from app.curves.model import (
    REFERENCES,
    X_KINDS,
    CurvesModel,
    RunCurves,
    curve_xy,
    final_summary,
    x_extent,
)
from app.curves.plots import SECONDARY, CurvePlots
from app.models.run_model import RunRef
from engine import messages as M

FRAME_MS = 33


class CurvesBar(QWidget):
    """The curves' controls: loss smoothing and log axis, the x axis, overlays, export."""

    def __init__(self, smoothing: float, parent=None):
        super().__init__(parent)
        self.smooth = QSlider(Qt.Orientation.Horizontal)
        self.smooth.setRange(0, 99)
        self.smooth.setValue(int(smoothing * 100))
        self.smooth.setFixedWidth(110)
        self.smooth.setToolTip("Smoothing of the loss (exponential moving average)")
        self.smooth_label = QLabel(f"{smoothing:.2f}")
        self.smooth.valueChanged.connect(lambda v: self.smooth_label.setText(f"{v / 100.0:.2f}"))
        self.log_loss = QCheckBox("Log loss")
        self.log_loss.setToolTip("Logarithmic loss axis")
        self.xaxis = QComboBox()
        self.xaxis.addItems(["step", "epoch", "time (s)"])
        self.overlay_btn = QPushButton("Overlay run…")
        self.overlay_btn.setToolTip("Add another run folder's curves for comparison (or use the Run history)")
        self.clear_btn = QPushButton("Clear overlays")
        self.png_btn = QPushButton("Export PNG…")
        self.csv_btn = QPushButton("Export CSV…")
        bar = QHBoxLayout(self)
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(QLabel("Smoothing"))
        bar.addWidget(self.smooth)
        bar.addWidget(self.smooth_label)
        bar.addWidget(self.log_loss)
        bar.addWidget(QLabel("x axis"))
        bar.addWidget(self.xaxis)
        bar.addStretch(1)
        for b in (self.overlay_btn, self.clear_btn, self.png_btn, self.csv_btn):
            bar.addWidget(b)


class CurvesPanel(QWidget, View):
    changed = Signal()  # something new was drawn

    def __init__(self, parent=None):
        super().__init__(parent)
        pg.setConfigOptions(antialias=False, background="w", foreground="#333")
        self.model = CurvesModel()
        self.smoothing = 0.6
        self.redraws = 0

        self.title = QLabel(f"No run yet: {NO_RUN_YET}.")
        self.title.setObjectName("curvesTitle")
        self.title.setWordWrap(True)
        self.final_label = QLabel("")
        self.final_label.setObjectName("finalResult")
        self.alarm = QLabel("")  # the latest sign of collapse of the main run
        self.alarm.setObjectName("alarm")
        self.alarm.setWordWrap(True)
        self.alarm.setStyleSheet("QLabel#alarm { color: #8a1c1c; background: #fdecea; border: 1px solid #f5c2c0;"
                                 " padding: 4px 8px; }")
        self.alarm.hide()
        self.bar = CurvesBar(self.smoothing)
        self.log_loss = self.bar.log_loss
        self.bar.smooth.valueChanged.connect(self._smoothing_changed)
        self.log_loss.toggled.connect(self._log_toggled)
        self.bar.xaxis.currentIndexChanged.connect(self._x_changed)
        self.bar.overlay_btn.clicked.connect(self._overlay_dialog)
        self.bar.clear_btn.clicked.connect(self.clear_overlays)
        self.bar.png_btn.clicked.connect(self.export_png_dialog)
        self.bar.csv_btn.clicked.connect(self.export_csv_dialog)

        self.graphics = CurvePlots(self.model.plot_note)

        lay = QVBoxLayout(self)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.final_label)
        lay.addLayout(head)
        lay.addWidget(self.alarm)
        lay.addWidget(self.bar)
        lay.addWidget(self.graphics, 1)

        self._timer = QTimer(self)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._redraw)
        self._timer.start()
        self.feed = CurvesFeed(self.model, self)
        self.feed.final_changed.connect(self._show_final)
        self.feed.facts_read.connect(self._show_chance)
        self.feed.facts_read.connect(self._show_final)
        self.feed.facts_read.connect(self._show_monitor)
        self.feed.main_ended.connect(
            lambda state: self.title.setText(self.title.text().replace("(live)", f"({state})")))

    # what tests and the window read: the model's runs, the plots' items
    runs = property(lambda self: self.model.runs)
    main_id = property(lambda self: self.model.main_id)
    plots = property(lambda self: self.graphics.plots)
    items = property(lambda self: self.graphics.items)
    ref_lines = property(lambda self: self.graphics.ref_lines)
    chance_line = property(lambda self: self.graphics.chance_line)
    x_kind = property(lambda self: self.graphics.x_kind)

    # -- runs ------------------------------------------------------------------------------
    def _remove_run(self, run_id: str) -> None:
        self.model.remove(run_id)
        self.graphics.remove_run(run_id, main=run_id == self.main_id)

    def _new_main(self, name: str, run_dir: str | None) -> RunCurves:
        if self.main_id is not None:
            self._remove_run(self.main_id)
        self.final_label.setText("")
        run = self.model.new_main(name, run_dir)
        self._show_alarms()
        self._show_monitor()
        return run

    def start_live(self, name: str, run_dir: str | None = None, keep_history: bool = False) -> None:
        """A new live run becomes the main run (its curves replace the previous main run's)."""
        run = self._new_main(name, run_dir)
        self.title.setText(f"<b>{name}</b>" + (f" <span style='color:#777'>{run_dir}</span>" if run_dir else ""))
        if keep_history and run_dir:
            run.loading = True
            self.feed.read(run, initial=True)

    def open_run(self, run_dir: str, name: str | None = None, overlay: bool = False, live: bool = False) -> str:
        """Show a run folder's curves: as the main run, or overlaid on it. ``live`` tails it."""
        run_dir = str(Path(run_dir))
        name = name or Path(run_dir).name
        if overlay:
            run, new = self.model.overlay(run_dir, name)
            if not new:
                return run.id
        else:
            run = self._new_main(name, run_dir)
            self.title.setText(f"<b>{name}</b> <span style='color:#777'>{run_dir}</span>"
                               + (" <span style='color:#2e7d32'>(live)</span>" if live else ""))
        run.tail = live
        run.loading = True
        self.feed.read(run, initial=True)
        return run.id

    def clear_overlays(self) -> None:
        for rid in self.model.overlay_ids():
            self._remove_run(rid)
        self.model.all_dirty = True

    def overlay_ids(self) -> list[str]:
        return self.model.overlay_ids()

    # -- the view protocol -----------------------------------------------------------------
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
        run = self.model.main
        if isinstance(msg, M.RunStarted):
            if run is not None and msg.resumed:
                run.resume_step = msg.start_step
                self.model.truncate(run, msg.start_step)
            if run is not None:
                self.feed.ask_facts(run)  # data.json is written before RunStarted
            return
        if run is None:
            return
        if run.loading and isinstance(msg, (M.StepMetrics, M.EvalResult)):
            run.pending_live.append(msg)
            return
        if self.model.apply(run, msg):
            self._show_final()
            if isinstance(msg, M.EvalResult):
                self.feed.ask_facts(run, again=True)  # the final evaluation's protocol (results.json)

    # -- drawing ---------------------------------------------------------------------------
    def _smoothing_changed(self, v: int) -> None:
        self.smoothing = v / 100.0
        for run in self.runs.values():
            run.dirty.add("loss")

    def _log_toggled(self, on: bool) -> None:
        self.plots["loss"].setLogMode(y=on)
        for run in self.runs.values():
            run.dirty.add("loss")

    def _x_changed(self, i: int) -> None:
        self.graphics.set_x(X_KINDS[i], self.bar.xaxis.currentText())
        self.model.all_dirty = True

    def _redraw(self, force: bool = False) -> None:
        if not force and not self.isVisible():
            return  # the series stay dirty: drawn when the tab is shown
        changed = False
        for run in list(self.runs.values()):
            keys = self.model.keys_to_draw(run)
            if not keys:
                continue
            main = run.id == self.main_id
            for key in keys:
                s = run.steps.get(key) or run.evals.get(key)
                if s is None or s.n == 0:
                    continue
                if key in REFERENCES:
                    if main:  # the main run's reference level (the random-init kNN accuracy)
                        self.graphics.show_reference(run.id, key, float(s.y[-1]))
                    changed = True
                    continue
                if key == "effective_rank" and main and s.step[0] == 0:  # the random-init encoder's rank
                    self.graphics.show_level(run.id, "random_init_rank", key, float(s.y[0]),
                                             f"random init {s.y[0]:.0f}")
                x, y, raw = curve_xy(s, key, run, self.x_kind, self.smoothing, self.log_loss.isChecked())
                if raw is not None:
                    if main and self.smoothing > 0:
                        self.graphics.item(run, key, "raw", main).setData(x, raw)
                    elif (run.id, key, "raw") in self.items:
                        self.items[(run.id, key, "raw")].setData([], [])
                self.graphics.item(run, key, "line", main).setData(x, y)
                changed = True
            for key in keys:
                k = SECONDARY.get(key, key)
                if k in self.plots:
                    self.graphics.set_title(k)
            run.dirty.clear()
        if self.model.all_dirty:
            self._mark_alarms()
        self.model.all_dirty = False
        if changed:
            self.graphics.follow_x(x_extent(self.runs.values(), self.x_kind))
            self.redraws += 1
            self.changed.emit()

    def _show_chance(self) -> None:
        run = self.model.main
        self.graphics.show_chance(run.num_classes if run is not None else None)

    def _show_final(self) -> None:
        """The final evaluation's figures and what they are (its protocol); the collapse signs."""
        run = self.model.main
        text = final_summary(run.final, run.probe_epochs) if run is not None and run.final else ""
        if text:
            what = final_text({**run.final, "protocol": run.protocol}, short=True) or "final evaluation"
            text += f"<br><span style='color:#666; font-weight:normal'>{what}</span>"
        self.final_label.setText(text)
        self._show_alarms()

    def _show_monitor(self) -> None:
        """The kNN plot says what the online monitor scores (from the run's data.json)."""
        run = self.model.main
        words = monitor_short(run.monitor) if run is not None else ""
        p = self.plots["knn_top1"]
        p.titleText = "Online kNN monitor" + (f" ({words})" if words else " (top-1)")
        self.graphics.set_title("knn_top1")

    def _show_alarms(self) -> None:
        run = self.model.main
        text = collapse_line(run.alarms) if run is not None else ""
        self.alarm.setText("⚠ " + text if text else "")
        self.alarm.setVisible(bool(text))
        self._mark_alarms()

    def _mark_alarms(self) -> None:
        """A red line in the plots where each sign of collapse appeared (placed by the loss's step on x)."""
        run = self.model.main
        xs = []
        loss = run.steps.get("loss") if run is not None else None
        for a in run.alarms if run is not None else []:
            if self.x_kind == "step" or loss is None or not loss.n:
                xs.append(float(a["step"]))
            else:
                xs.append(float(np.interp(a["step"], loss.step, loss.x(self.x_kind))))
        self.graphics.show_alarms(xs)

    # -- queries ---------------------------------------------------------------------------
    def point_count(self, key: str = "loss", run_id: str | None = None) -> int:
        return self.model.point_count(key, run_id)

    def is_ready(self) -> bool:
        run = self.runs.get(self.main_id or "")
        return run is None and self.main_id is None or (run is not None and not run.loading and self.redraws > 0
                                                        and not run.dirty)

    # -- export ----------------------------------------------------------------------------
    def export_png_dialog(self) -> None:
        path = dialogs.save_file(self, "Export the curves as PNG", "curves.png", "PNG (*.png)")
        if path:
            self.export_png(path)

    def export_csv_dialog(self) -> None:
        path = dialogs.save_file(self, "Export the curves as CSV", "curves.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_png(self, path: str) -> bool:
        self._redraw(force=True)
        return self.graphics.grab().save(path, "PNG")

    def export_csv(self, path: str) -> int:
        """Every plotted point, one a row: run, metric, step, epoch, time_s, value. Returns the row count."""
        return self.model.write_csv(path)

    def _overlay_dialog(self) -> None:
        path = dialogs.existing_folder(self, "Choose a run folder to overlay")
        if path:
            self.open_run(path, overlay=True)


def curves_view(ctx: ViewContext) -> CurvesPanel:
    """The window's Curves view: the run model's run (live ones fed by the training client's messages)
    and the runs the Run history overlays on it."""
    panel = CurvesPanel()
    ctx.engine.message.connect(panel.on_engine_message)
    ctx.run.runChanged.connect(panel.show_run)
    ctx.run.overlayRequested.connect(lambda run_dir, live: panel.open_run(run_dir, overlay=True, live=live))
    return panel
