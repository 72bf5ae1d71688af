"""What the curves read from run folders, off the GUI thread: a run's history when it is shown, the
records appended to a followed (live) run's metrics.jsonl, once a second and one run a tick in turn,
and the facts its labels need (class count, probe epochs). What is read goes into the curves' model
(app/curves/model.py); app/curves/panel.py draws it."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer, Signal

from app.common.tasks import run_in_thread
from app.curves.model import CurvesModel, RunCurves, records_to_blocks, run_facts

TAIL_MS = 1000
LIVE_CHECK_S = 5


class CurvesFeed(QObject):
    final_changed = Signal()  # final results may have arrived: the final label is redone
    facts_read = Signal()  # a run's class count and probe epochs are known
    main_ended = Signal(str)  # the followed main run is no longer live: its state ("stopped", "gone", ...)

    def __init__(self, model: CurvesModel, parent=None):
        super().__init__(parent)
        self.model = model
        self._timer = QTimer(self)
        self._timer.setInterval(TAIL_MS)
        self._timer.timeout.connect(self.tail)
        self._timer.start()
        self._busy = False
        self._turn = -1
        self._last_live_check = 0.0

    def ask_facts(self, run: RunCurves, again: bool = False) -> None:
        """Read the run's class count, probe epochs, what its monitor scores and its final protocol (the chance
        line, the kNN plot's title, the final label); ``again``: also when read before (the run ended)."""
        if not run.run_dir or (run.num_classes is not None and not again):
            return

        def done(facts, run=run):
            if self.model.runs.get(run.id) is run:
                run.num_classes, run.probe_epochs = facts["num_classes"], facts["probe_epochs"]
                run.monitor, run.protocol = facts.get("monitor"), facts.get("protocol")
                self.facts_read.emit()

        run_in_thread(lambda d=run.run_dir: run_facts(d), on_done=done, on_error=lambda _e: None)

    def read(self, run: RunCurves, initial: bool = False) -> None:
        """Read what the run folder's metrics.jsonl holds past ``run.offset``: the whole history
        (``initial``, parsed on the I/O thread too) or the records appended since (tailing)."""
        from engine.runs import tail_metrics

        def job(run_dir=run.run_dir, offset=run.offset):
            records, new_offset = tail_metrics(run_dir, offset)
            return records_to_blocks(records) if initial else (records, new_offset), new_offset

        def done(res, run=run):
            if self.model.runs.get(run.id) is not run:
                return  # replaced meanwhile
            payload, new_offset = res
            run.offset = new_offset
            if initial:
                self.model.add_history(run, *payload)
                self.final_changed.emit()
                self.ask_facts(run)
            elif self.model.apply_records(run, payload[0]):
                self.final_changed.emit()
            self._busy = False

        def failed(err, run=run):
            run.loading = False
            self._busy = False

        self._busy = True
        run_in_thread(job, on_done=done, on_error=failed)

    def tail(self) -> None:
        """One tick: read the next followed run's new records; every few seconds check which still run."""
        tails = [r for r in self.model.runs.values() if r.tail and not r.loading]
        if not tails or self._busy:
            return
        now = time.monotonic()
        if now - self._last_live_check > LIVE_CHECK_S:
            self._last_live_check = now
            from engine.runs import run_info

            for r in tails:
                info = run_info(r.run_dir)
                if info is None or not info.live:
                    r.tail = False  # one last read below
                    if r.id == self.model.main_id:
                        self.main_ended.emit(info.state if info else "gone")
        self._turn = (self._turn + 1) % len(tails)  # one run a tick, in turn
        self.read(tails[self._turn])
