"""The window's status bar: what the training engine is doing (state, step, speed, ETA, progress) and on
which device. ``RunStatusBar`` owns its labels and follows the training client and the run model (its
inputs); the window makes one and tells it the device of the method catalogue."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from app.common.run_text import fmt_eta, state_label
from app.models.run_model import RunModel, RunRef
from engine import messages as M

PROGRESS_STATES = ("running", "paused", "evaluating", "loading", "starting")


class RunStatusBar(QObject):
    def __init__(self, bar: QStatusBar, engine, run_model: RunModel, parent: QObject | None = None):
        """``engine``: the training client (its signals, ``run_dir``, ``active``)."""
        super().__init__(parent)
        self.engine, self.run_model = engine, run_model
        self.device = QLabel("Device: starting …")
        self.state = QLabel("Idle")
        self.step = QLabel("")
        self.speed = QLabel("")
        self.eta = QLabel("")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFixedWidth(120)
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        for label in (self.state, self.step, self.speed, self.eta, self.progress, self.device):
            bar.addPermanentWidget(label)
        engine.state_changed.connect(self._engine_state)
        engine.run_started.connect(self._run_started)
        engine.step.connect(self._step)
        run_model.runChanged.connect(self._run_shown)

    def clear_progress(self) -> None:
        """Step, speed and ETA belong to the engine's run while it trains: cleared when it ends, when a
        new run starts and while another run is shown."""
        for label in (self.step, self.speed, self.eta):
            label.setText("")

    def service_ready(self) -> None:
        self.device.setText(self.device.text().replace("starting …", "ready"))

    def show_catalogue_device(self, catalogue: dict) -> None:
        """The device the method catalogue names, unless a run says which one it trains on."""
        if not self.engine.active:
            self.device.setText(f"Device: {catalogue.get('device_name', catalogue.get('device', '?'))}")

    def _shows_engine_run(self) -> bool:
        ref = self.run_model.run
        return ref is None or ref.same_run(self.engine.run_dir)

    def _run_shown(self, ref: RunRef) -> None:
        if not (ref.owned and ref.same_run(self.engine.run_dir) and self.engine.active):
            self.clear_progress()

    def _engine_state(self, state: str) -> None:
        self.state.setText(state_label(state))
        if state in ("starting", "finished", "stopped", "failed", "died", "idle"):
            self.speed.setText("")
            self.eta.setText("")
            if state == "starting":
                self.step.setText("")
        self.progress.setVisible(state in PROGRESS_STATES)

    def _run_started(self, msg: M.RunStarted) -> None:
        self.device.setText(f"Device: {msg.device_name}")

    def _step(self, msg: M.StepMetrics) -> None:
        if not self._shows_engine_run():
            self.clear_progress()  # another run is shown: its step is not this one's
            return
        v = msg.values
        self.step.setText(f"step {msg.step} · epoch {msg.epoch:.2f}")
        self.speed.setText(f"{v.get('images_per_s', 0):.0f} img/s")
        self.eta.setText(f"ETA {fmt_eta(msg.eta_s)}")
        self.progress.setValue(int(1000 * msg.progress))
