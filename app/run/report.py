"""What the Run view says about the engine's run: its state line, progress bar and log, and the state
its buttons follow. ``EngineReport`` listens to the training client's signals (its only input) and
turns them into the lines the Run box shows; the panel connects its outputs to the Run box."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.common.run_text import finished_text, fmt_eta, started_text, state_label
from engine import messages as M


class EngineReport(QObject):
    state = Signal(str, bool)  # (engine state, the last run can be resumed)
    state_text = Signal(str, bool)  # (the state line, an error)
    log = Signal(str)  # a line of the log
    progress = Signal(float, str)  # (fraction done, the bar's text)

    def __init__(self, engine, parent: QObject | None = None):
        """``engine``: the training client (app.common.engine_client.EngineClient) or anything with its
        signals, ``can_resume()`` and ``config``."""
        super().__init__(parent)
        self.engine = engine
        engine.state_changed.connect(self._engine_state)
        engine.run_started.connect(lambda msg: self.log.emit(started_text(msg)))
        engine.step.connect(self._step)
        engine.eval_result.connect(self._eval)
        engine.warning.connect(lambda t: self.log.emit(f"note: {t}"))
        engine.progress.connect(self._engine_progress)
        engine.checkpoint.connect(lambda m: self.log.emit(f"checkpoint saved at step {m.step}"))
        engine.finished.connect(self._run_finished)
        engine.failed.connect(self._run_failed)
        engine.died.connect(self._engine_died)

    def _engine_state(self, state: str) -> None:
        self.state.emit(state, self.engine.can_resume())
        if state not in ("failed", "died"):
            self.state_text.emit(state_label(state), False)
        self.log.emit(f"state: {state}")

    def _step(self, msg: M.StepMetrics) -> None:
        self.progress.emit(msg.progress, f"{msg.progress:.0%} · step {msg.step} · loss "
                                         f"{msg.values.get('loss', 0):.4f} · ETA {fmt_eta(msg.eta_s)}")

    def _eval(self, msg: M.EvalResult) -> None:
        vals = ", ".join(f"{k} {v:.3f}" for k, v in msg.values.items() if isinstance(v, (int, float)))
        self.log.emit(f"{msg.kind_name} at epoch {msg.epoch:g}: {vals}")

    def _engine_progress(self, p: M.Progress) -> None:
        if p.total:
            self.progress.emit(p.done / p.total, f"{p.task}: {p.detail} {p.done}/{p.total}")

    def _run_finished(self, msg: M.RunFinished) -> None:
        text = finished_text(msg, self.engine.config)
        self.state_text.emit(text, False)
        self.log.emit(text)

    def _run_failed(self, msg: M.RunFailed) -> None:
        text = f"The run failed: {msg.error}"
        self.state_text.emit(text, True)
        self.log.emit(text + (f"\n{msg.traceback}" if msg.traceback else ""))
        self.state.emit("failed", self.engine.can_resume())

    def _engine_died(self, text: str) -> None:
        self.state_text.emit(text, True)
        self.log.emit(text)
        self.state.emit("died", self.engine.can_resume())
