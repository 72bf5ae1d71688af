"""The "Inspector" view of the workbench window: the inspector panel connected to the window's run
model, training engine and analysis process."""

from __future__ import annotations

from app.common.view import View, ViewContext
from app.inspector.panel import InspectorPanel
from app.models.run_model import RunRef


class InspectorView(InspectorPanel, View):
    def __init__(self, ctx: ViewContext):
        super().__init__(ctx.analysis)
        run = ctx.run
        self.roots_provider = lambda: run.roots  # the folders the run history lists
        self.method_info = ctx.config.method_info  # the catalogue: captions of the reconstructions
        ctx.config.catalogue_changed.connect(self.show_method_captions)
        self.statusMessage.connect(ctx.status)
        ctx.engine.message.connect(self.on_engine_message)  # a started run arrives with RunStarted
        ctx.run.runChanged.connect(self.show_run)

    def show_run(self, ref: RunRef) -> None:
        if ref.origin == "opened":
            self.set_run(ref.run_dir, ref.live)

    def is_ready(self) -> bool:
        return self.tabs.currentWidget().request_id is None  # the shown tab has its answer
