"""The Run panel: method picker, the config form, config files, "copy as command", run controls
and a log of what the engine said.

The method picker is app/run/method_picker.py, the Run box app/run/controls.py, the command line
app/run/command.py and what the Run box says about the engine's run app/run/report.py; this module edits
and checks the config and asks for the run. ``run_view(ctx)`` makes the window's Run view: Start and
Resume go to the run model (the window starts the run), Pause and Stop to the training client, whose
signals the Run box follows."""

from __future__ import annotations

import json

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.common import dialogs
from app.common.view import MenuEntry, View, ViewContext
from app.models.run_model import RunRef
from app.run.command import CommandBox
from app.run.config_form import ConfigForm
from app.run.controls import RunControls
from app.run.method_picker import MethodPicker
from app.run.model import RUN_SKIP, button_states
from app.run.report import EngineReport
from engine.config import DataConfig, EvalConfig, OptimConfig, RunConfig
from engine.params import field_specs


class RunPanel(QWidget, View):
    start_requested = Signal(dict)  # a validated config
    pause_requested = Signal()
    resume_requested = Signal()
    stop_requested = Signal()
    resume_last_requested = Signal()
    message = Signal(str)

    def __init__(self, service, config_model, parent=None):
        super().__init__(parent)
        self.service = service
        self.model = config_model
        self.engine_state = "idle"
        self._can_resume = False
        self.server_errors: list[dict] = []
        self._validate_rid: int | None = None
        self._start_after_validation = False

        # -- method picker -----------------------------------------------------------------
        self.picker = MethodPicker(config_model)
        self.picker.message.connect(self.message)

        # -- the form --------------------------------------------------------------------------
        self.form = ConfigForm()
        self.form.add_section("run", "Run", "", field_specs(RunConfig), skip=RUN_SKIP,
                              suggestions={"backbone": ["auto"]})
        self.form.add_section("method_options", "Method options", "method_options", [])
        self.form.add_section("data", "Data", "data", field_specs(DataConfig))
        self.form.add_section("optim", "Optimiser", "optim", field_specs(OptimConfig))
        self.form.add_section("eval", "Evaluation", "eval", field_specs(EvalConfig))
        self.form.edited.connect(self._edited)
        self.form.validity_changed.connect(self._update_buttons)
        self.advanced = QCheckBox("Show advanced settings")
        self.advanced.toggled.connect(self.form.set_show_advanced)
        self.help = QLabel("Hover or click a field for its explanation.")
        self.help.setWordWrap(True)
        self.help.setObjectName("hint")
        self.form.help_changed.connect(self.help.setText)
        self.general_error = QLabel("")
        self.general_error.setObjectName("fieldError")
        self.general_error.setWordWrap(True)
        self.general_error.setVisible(False)
        form_scroll = QScrollArea()
        form_scroll.setWidgetResizable(True)
        inner = QWidget()
        vi = QVBoxLayout(inner)
        vi.addWidget(self.form)
        vi.addStretch(1)
        form_scroll.setWidget(inner)
        center = QWidget()
        vc = QVBoxLayout(center)
        vc.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(self.advanced)
        top.addStretch(1)
        self.reset_btn = QPushButton("Method defaults")
        self.reset_btn.setToolTip("Reset the optimiser and method options to the method's recommended values")
        self.reset_btn.clicked.connect(self.reset_to_defaults)
        self.load_btn = QPushButton("Load…")
        self.load_btn.setToolTip("Load a config JSON (or a run folder's config.json)")
        self.load_btn.clicked.connect(self.load_config_dialog)
        self.save_btn = QPushButton("Save…")
        self.save_btn.setToolTip("Save this config as JSON (python main.py train --config FILE runs it)")
        self.save_btn.clicked.connect(self.save_config_dialog)
        for b in (self.reset_btn, self.load_btn, self.save_btn):
            top.addWidget(b)
        vc.addLayout(top)
        vc.addWidget(self.general_error)
        vc.addWidget(form_scroll, 1)
        vc.addWidget(self.help)

        # -- run controls ------------------------------------------------------------------
        self.commands = CommandBox(config_model)
        self.commands.message.connect(self.message)
        self.command, self.copy_btn = self.commands.command, self.commands.copy_btn
        self.controls = c = RunControls(self.commands)
        c.start_btn.clicked.connect(self.request_start)
        c.pause_btn.clicked.connect(self._pause_or_resume)
        c.stop_btn.clicked.connect(self.stop_requested)
        c.resume_last_btn.clicked.connect(self.resume_last_requested)
        self.start_btn, self.pause_btn, self.stop_btn = c.start_btn, c.pause_btn, c.stop_btn
        self.resume_last_btn = c.resume_last_btn
        # what the Run box says about the run (app/run/report.py says it for the engine's run)
        self.set_progress, self.set_state_text, self.add_log = c.set_progress, c.set_state_text, c.add_log

        split = QSplitter()
        split.addWidget(self.picker)
        split.addWidget(center)
        split.addWidget(c)
        split.setStretchFactor(1, 1)
        split.setSizes([300, 520, 380])
        self.splitter = split
        lay = QVBoxLayout(self)
        lay.addWidget(split)

        self._validate_timer = QTimer(self)
        self._validate_timer.setSingleShot(True)
        self._validate_timer.setInterval(350)
        self._validate_timer.timeout.connect(self.validate)
        self.model.catalogue_changed.connect(self._catalogue_arrived)
        self.model.changed.connect(self._model_changed)
        self.model.method_changed.connect(lambda _m: self._rebuild_method_options())
        self.picker.fill()
        self._model_changed("")
        self.set_engine_state("idle")

    # -- the view protocol ------------------------------------------------------------------
    def is_ready(self) -> bool:
        return self.model.catalogue is not None and bool(self.service.is_ready)

    def menu_entries(self) -> list[MenuEntry]:
        return [MenuEntry("File", "Load config…", self.load_config_dialog, "Ctrl+L"),
                MenuEntry("File", "Save config…", self.save_config_dialog, QKeySequence.StandardKey.Save),
                MenuEntry("File", "Copy config as command", self.copy_command, "Ctrl+Shift+C"),
                MenuEntry("Run", "Start", self.request_start, "Ctrl+R", "Start a run")]

    def save_state(self):
        return self.splitter.saveState()

    def restore_state(self, state) -> None:
        self.splitter.restoreState(state)

    # -- catalogue / methods --------------------------------------------------------------
    def _catalogue_arrived(self) -> None:
        self.picker.fill()
        self.form.add_section("run", "Run", "", field_specs(RunConfig), skip=RUN_SKIP,
                              suggestions={"backbone": ["auto"] + self.model.backbones()})
        self._rebuild_method_options()
        self._model_changed("")

    def select_method(self, name: str) -> None:
        self.picker.select(name)

    def _rebuild_method_options(self) -> None:
        info = self.model.method_info()
        title = f"Method options ({info['title']})" if info else "Method options"
        self.form.add_section("method_options", title, "method_options", self.model.option_specs())
        self.form.set_values(self.model.config())
        self.picker.sync()

    # -- editing ---------------------------------------------------------------------------
    def _edited(self, path: str, value) -> None:
        self.model.set(path, value)

    def _model_changed(self, path: str) -> None:
        self.form.set_values(self.model.config())
        self.commands.refresh()
        self._validate_timer.start()
        self._update_buttons()

    def command_line(self) -> str:
        return self.commands.command_line()

    def copy_command(self) -> None:
        self.commands.copy_command()

    def copy_torchrun(self, nnodes: int = 1) -> str:
        return self.commands.copy_torchrun(nnodes)

    def save_slurm(self, path: str) -> None:
        self.commands.save_slurm(path)

    def reset_to_defaults(self) -> None:
        m = self.model.method
        defaults = self.model.method_defaults_dict(m)
        for key, value in defaults["optim"].items():
            self.model.set(f"optim.{key}", value)
        self.model.reset_options(m)
        self.message.emit(f"{m}: recommended optimiser settings and options restored")

    # -- files -----------------------------------------------------------------------------
    def save_config_dialog(self) -> None:
        path = dialogs.save_file(self, "Save the run config", "run-config.json", "JSON (*.json)")
        if path:
            self.save_config(path)

    def save_config(self, path: str) -> None:
        from engine.runs import atomic_write_text

        try:
            atomic_write_text(path, json.dumps(self.model.config(), indent=2))
        except OSError as exc:
            self.message.emit(f"Could not save {path}: {exc}")
            return
        self.message.emit(f"Saved the config to {path}")

    def load_config_dialog(self) -> None:
        path = dialogs.open_file(self, "Load a run config", "", "JSON (*.json)")
        if path:
            self.load_config(path)

    def load_config(self, path: str) -> bool:
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            self.message.emit(f"Could not read {path}: {exc}")
            self._show_general(f"Could not read {path}: {exc}. Choose a config JSON saved by the workbench "
                               "or a run folder's config.json.")
            return False
        if not isinstance(data, dict) or "method" not in data:
            self._show_general(f"{path} is not a run config (no \"method\" in it).")
            return False
        self.model.load_dict(data)
        self.message.emit(f"Loaded the config from {path}")
        return True

    # -- validation and start ------------------------------------------------------------------
    def _show_general(self, text: str) -> None:
        self.general_error.setText(text)
        self.general_error.setVisible(bool(text))

    def validate(self) -> None:
        if not self.service.is_ready and self._validate_rid is not None:
            return
        cfg = self.model.config()
        self._validate_rid = self.service.request("validate_config", {"config": cfg},
                                                  kind="validate_config", on_done=lambda r, c=cfg: self._validated(r, c),
                                                  on_error=lambda e: self._validated(
                                                      {"ok": False, "errors": [e]}, None))

    def _validated(self, res: dict, cfg: dict | None) -> None:
        self._validate_rid = None
        self.server_errors = list(res.get("errors", []))
        rest = self.form.show_errors(self.server_errors)
        self._show_general("\n".join(f"{e.get('path') + ': ' if e.get('path') else ''}{e['message']}"
                                     for e in rest))
        self._update_buttons()
        if self._start_after_validation:
            self._start_after_validation = False
            if res.get("ok") and cfg is not None and not self.form.invalid:
                self.start_requested.emit(cfg)
            else:
                self.message.emit("The config has errors: see the messages next to the fields.")

    def request_start(self) -> None:
        if self.form.invalid:
            path, msg = next(iter(self.form.invalid.items()))
            self.message.emit(f"Fix {path} first: {msg}")
            return
        self._start_after_validation = True
        self.start_btn.setEnabled(False)
        self.controls.state_label.setText("Checking the config …")
        self.validate()

    def _pause_or_resume(self) -> None:
        if self.engine_state == "paused":
            self.resume_requested.emit()
        else:
            self.pause_requested.emit()

    # -- the engine's run ----------------------------------------------------------------------
    def follow_engine(self, engine) -> EngineReport:
        """Show what the training client ``engine`` says: state line, progress, log and the buttons."""
        report = EngineReport(engine, self)
        report.state.connect(self.set_engine_state)
        report.state_text.connect(self.set_state_text)
        report.log.connect(self.add_log)
        report.progress.connect(self.set_progress)
        return report

    def show_run(self, ref: RunRef) -> None:
        """A run this window started or resumed goes into the log."""
        if ref.origin == "started":
            self.add_log(f"starting {ref.name} in {ref.run_dir}")
        elif ref.origin == "resumed":
            self.add_log(f"resuming {ref.run_dir} from its last checkpoint")

    def set_engine_state(self, state: str, can_resume: bool = False) -> None:
        self.engine_state = state
        self._can_resume = can_resume
        self._update_buttons()

    def _update_buttons(self) -> None:
        b = button_states(self.engine_state, not self.form.invalid and not self.server_errors,
                          self._start_after_validation, self._can_resume)
        self.controls.set_buttons(b)
        for w in (self.load_btn, self.reset_btn):
            w.setEnabled(b["edit"])


def run_view(ctx: ViewContext) -> RunPanel:
    """The window's Run view: Start and Resume from checkpoint ask the run model (the window owns the run),
    Pause and Stop go to the training client; the Run box follows the client and the run model."""
    panel = RunPanel(ctx.service, ctx.config)
    panel.message.connect(ctx.status)
    panel.start_requested.connect(ctx.run.request_start)
    panel.resume_last_requested.connect(ctx.run.request_resume)
    panel.pause_requested.connect(ctx.engine.pause)
    panel.resume_requested.connect(ctx.engine.resume)
    panel.stop_requested.connect(ctx.engine.stop)
    panel.follow_engine(ctx.engine)
    ctx.run.runChanged.connect(panel.show_run)
    ctx.run.notice.connect(panel.set_state_text)
    return panel
