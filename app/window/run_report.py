"""What the training engine is doing, told to the user: the status bar (state, step, speed, ETA,
device), the Run view's state line, progress and log, the banner when a run fails or its process
dies, and the run model's live flag. The window makes one and keeps it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel, QProgressBar

from engine import messages as M

if TYPE_CHECKING:
    from app.window.main_window import MainWindow


def fmt_eta(s: float | None) -> str:
    if s is None:
        return "–"
    s = max(0, int(round(s)))  # a time budget overrun by a step gives a negative estimate: the run ends now
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def add_status_labels(w: MainWindow) -> None:
    """The status bar's labels, which RunReport fills: state, step, speed, ETA, progress and device."""
    sb = w.statusBar()
    w.st_device = QLabel("Device: starting …")
    w.st_state = QLabel("Idle")
    w.st_step = QLabel("")
    w.st_speed = QLabel("")
    w.st_eta = QLabel("")
    w.st_progress = QProgressBar()
    w.st_progress.setRange(0, 1000)
    w.st_progress.setFixedWidth(120)
    w.st_progress.setTextVisible(False)
    w.st_progress.setVisible(False)
    for label in (w.st_state, w.st_step, w.st_speed, w.st_eta, w.st_progress, w.st_device):
        sb.addPermanentWidget(label)


class RunReport(QObject):
    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.w = window
        e = window.engine
        e.state_changed.connect(self._engine_state)
        e.run_started.connect(self._run_started)
        e.step.connect(self._step)
        e.eval_result.connect(self._eval)
        e.warning.connect(lambda t: (window.run_panel.add_log(f"note: {t}"), window.status_message(t)))
        e.progress.connect(self._engine_progress)
        e.checkpoint.connect(lambda m: window.run_panel.add_log(f"checkpoint saved at step {m.step}"))
        e.finished.connect(self._run_finished)
        e.failed.connect(self._run_failed)
        e.died.connect(self._engine_died)
        window.run_model.runChanged.connect(self._run_shown)

    def clear_progress(self) -> None:
        """Step, speed and ETA belong to the engine's run while it trains: cleared when it ends, when a
        new run starts and while another run is shown."""
        for label in (self.w.st_step, self.w.st_speed, self.w.st_eta):
            label.setText("")

    def _shows_engine_run(self) -> bool:
        ref = self.w.run_model.run
        return ref is None or ref.same_run(self.w.engine.run_dir)

    def _run_shown(self, ref) -> None:
        if not (ref.owned and ref.same_run(self.w.engine.run_dir) and self.w.engine.active):
            self.clear_progress()

    def _engine_state(self, state: str) -> None:
        w = self.w
        labels = {"starting": "Starting the engine …", "loading": "Loading the data …", "running": "Running",
                  "paused": "Paused (checkpoint saved)", "stopping": "Stopping (writing a checkpoint) …",
                  "evaluating": "Evaluating (kNN and linear probe) …", "finished": "Finished", "stopped": "Stopped",
                  "failed": "Failed", "died": "The engine process died", "idle": "Idle"}
        w.st_state.setText(labels.get(state, state))
        if state in ("starting", "finished", "stopped", "failed", "died", "idle"):
            w.st_speed.setText("")
            w.st_eta.setText("")
            if state == "starting":
                w.st_step.setText("")
        w.st_progress.setVisible(state in ("running", "paused", "evaluating", "loading", "starting"))
        w.run_panel.set_engine_state(state, w.engine.can_resume())
        if state not in ("failed", "died"):
            w.run_panel.set_state_text(labels.get(state, state))
        w.run_panel.add_log(f"state: {state}")
        if not w.engine.active and w.engine.run_dir:
            w.history.protected.discard(w.engine.run_dir)
            w.history.refresh()
        w.act_pause.setEnabled(state in ("running", "paused"))
        w.act_stop.setEnabled(w.engine.active)
        ref = w.run_model.run
        if ref is not None and ref.owned and ref.same_run(w.engine.run_dir):
            w.run_model.set_live(w.engine.active)

    def _run_started(self, msg: M.RunStarted) -> None:
        w = self.w
        w.st_device.setText(f"Device: {msg.device_name}")
        budget = f"{msg.total_steps} steps" if msg.total_steps else f"{msg.config.get('minutes', 0):g} min"
        w.run_panel.add_log(f"run started on {msg.device_name}: {msg.num_images} images, {msg.steps_per_epoch} "
                            f"steps per epoch, {budget}" + (f" (resumed at step {msg.start_step})"
                                                            if msg.resumed else ""))
        w.history.refresh()

    def _step(self, msg: M.StepMetrics) -> None:
        w = self.w
        v = msg.values
        if not self._shows_engine_run():
            self.clear_progress()  # another run is shown: its step is not this one's
        else:
            self._show_step(msg)
        w.run_panel.set_progress(msg.progress, f"{msg.progress:.0%} · step {msg.step} · loss {v.get('loss', 0):.4f}"
                                               f" · ETA {fmt_eta(msg.eta_s)}")

    def _show_step(self, msg: M.StepMetrics) -> None:
        w = self.w
        v = msg.values
        w.st_step.setText(f"step {msg.step} · epoch {msg.epoch:.2f}")
        w.st_speed.setText(f"{v.get('images_per_s', 0):.0f} img/s")
        w.st_eta.setText(f"ETA {fmt_eta(msg.eta_s)}")
        w.st_progress.setValue(int(1000 * msg.progress))

    def _eval(self, msg: M.EvalResult) -> None:
        w = self.w
        vals = ", ".join(f"{k} {v:.3f}" for k, v in msg.values.items() if isinstance(v, (int, float)))
        w.run_panel.add_log(f"{msg.kind_name} at epoch {msg.epoch:g}: {vals}")

    def _engine_progress(self, p: M.Progress) -> None:
        w = self.w
        if p.total:
            w.run_panel.set_progress(p.done / p.total, f"{p.task}: {p.detail} {p.done}/{p.total}")

    def _run_finished(self, msg: M.RunFinished) -> None:
        w = self.w
        s = msg.summary
        knn = f", kNN top-1 {s['knn_top1']:.1%}" if isinstance(s.get("knn_top1"), (int, float)) else ""
        epochs = ((w.engine.config or {}).get("eval") or {}).get("linear_probe_epochs")
        lin = (f", linear probe {s['linear_top1']:.1%}" + (f" ({epochs} probe epochs)" if epochs else "")
               if isinstance(s.get("linear_top1"), (int, float)) else "")
        text = f"Run {msg.reason} after {msg.step} steps{knn}{lin}."
        if msg.reason == "stopped":
            text += " Resume continues from the checkpoint."
        w.run_panel.set_state_text(text)
        w.run_panel.add_log(text)
        w.status_message(text)
        w.history.refresh()

    def _run_failed(self, msg: M.RunFailed) -> None:
        w = self.w
        text = f"The run failed: {msg.error}"
        w.run_panel.set_state_text(text, error=True)
        w.run_panel.add_log(text + (f"\n{msg.traceback}" if msg.traceback else ""))
        w.banner.show_message(text, "Show log", lambda: w.show_view("run"))
        w.run_panel.set_engine_state("failed", w.engine.can_resume())

    def _engine_died(self, text: str) -> None:
        w = self.w
        w.run_panel.set_state_text(text, error=True)
        w.run_panel.add_log(text)
        can = w.engine.can_resume()
        w.run_panel.set_engine_state("died", can)
        if can:
            w.banner.show_message(text, "Resume from checkpoint", w.resume_last)
        else:
            w.banner.show_message(text)

