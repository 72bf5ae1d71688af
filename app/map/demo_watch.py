"""``main.py --demo --screenshot PATH --after SECONDS``: when the demo's map is worth a picture.

``DemoWatch`` follows the training messages and the map panel (its inputs): it is ``ready()`` once the
map of the first snapshot the run took after ``after`` seconds of training has drawn (0: the random-init
map of step 0), and writes the run's maps so far as a GIF (``--gif``)."""

from __future__ import annotations

from collections.abc import Callable


class DemoWatch:
    def __init__(self, messages, panel, after: float | None):
        """``messages``: the training client's ``message`` signal; ``panel``: the map panel
        (app/map/panel.py's ``EmbeddingPanel``)."""
        self.panel, self.after = panel, after
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
                self.panel.follow.setChecked(False)

    def ready(self) -> bool:
        if self.after is None:
            return True
        s = self.panel.current
        return self.target_step is not None and s is not None and s.step is not None and s.step >= self.target_step

    def export_gif(self, path: str, done: Callable) -> bool:
        """The run's maps so far as an animated GIF; ``done(frames or an error text)`` when written."""
        return self.panel.export_gif(path, done)
