"""``main.py --demo --screenshot PATH --after SECONDS``: when the demo's map is worth a picture.

``DemoWatch`` follows the training messages and what the map shows (its inputs): it is ``ready()`` once
the map of the first snapshot the run took after ``after`` seconds of training has drawn (0: the
random-init map of step 0, and the map then stops following the run)."""

from __future__ import annotations

from collections.abc import Callable


class DemoWatch:
    def __init__(self, messages, shown_step: Callable[[], int | None], set_following: Callable[[bool], None],
                 after: float | None):
        """``messages``: the training client's ``message`` signal; ``shown_step()``: the step of the map
        drawn now (None: none yet); ``set_following(on)``: whether the map jumps to each new snapshot."""
        self.shown_step, self.set_following, self.after = shown_step, set_following, after
        self.train_s = 0.0
        self.target_step: int | None = None
        messages.connect(self.on_message)

    def on_message(self, msg) -> None:
        kind = type(msg).__name__
        if kind == "StepMetrics":
            self.train_s = msg.elapsed_s
        elif kind == "Embedding" and self.target_step is None and self.after is not None \
                and (self.train_s >= self.after or (self.after <= 0 and msg.step == 0)):
            self.target_step = int(msg.step)
            if self.after <= 0:  # the picture of the start: the map stays on step 0 as training goes on
                self.set_following(False)

    def ready(self) -> bool:
        if self.after is None:
            return True
        step = self.shown_step()
        return self.target_step is not None and step is not None and step >= self.target_step
