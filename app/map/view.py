"""The "Embedding map" view of the workbench window: the embedding panel connected to the window's
run model, training engine and analysis process."""

from __future__ import annotations

from app.common.view import View, ViewContext
from app.map.panel import EmbeddingPanel
from app.models.run_model import RunRef


class EmbeddingView(EmbeddingPanel, View):
    def __init__(self, ctx: ViewContext):
        super().__init__(ctx.analysis)
        self.run_model = ctx.run
        self.embedRequested.connect(ctx.engine.embed)
        self.statusMessage.connect(ctx.status)
        ctx.engine.message.connect(self.on_engine_message)  # a started run arrives with RunStarted
        ctx.run.runChanged.connect(self.show_run)

    def show_run(self, ref: RunRef) -> None:
        if ref.origin == "opened":
            self.set_run(ref.run_dir, ref.live)

    def refresh(self) -> None:
        """Live runs of this window's engine take a snapshot with the current weights; any other run
        (finished, or written by a headless job) is mapped from its checkpoint."""
        if self.live and not self.run_model.owns_live(self.run_dir):
            self.live = False
            super().refresh()
            self.live = True
            return
        super().refresh()

    def is_ready(self) -> bool:
        if not self.run_dir or self.error_shown:
            return True
        return self.current is not None and self.request_id is None and not self.map.animating

    def shutdown(self) -> None:
        self.cancel()
        self.feed.follow(False)
        self.timeline_bar.stop()
