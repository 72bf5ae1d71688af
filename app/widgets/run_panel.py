"""The Run panel: method picker, the config form, config files, "copy as command", run controls
and a log of what the engine said."""

from __future__ import annotations

import json
import time

from PySide6.QtCore import QRect, QSignalBlocker, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontMetrics, QGuiApplication, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.view import MenuEntry, View, ViewContext
from app.widgets.config_form import ConfigForm
from engine.config import DataConfig, EvalConfig, OptimConfig, RunConfig
from engine.params import field_specs

RUN_SKIP = ("method", "method_options")


class MethodDelegate(QStyledItemDelegate):
    """A method as its title (bold) over its one-line summary, wrapped to the list's width."""

    PAD = 6

    def __init__(self, view):
        super().__init__(view)
        self.view = view

    def _texts(self, index):
        return index.data(Qt.ItemDataRole.DisplayRole) or "", index.data(Qt.ItemDataRole.UserRole + 1) or ""

    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        title, summary = self._texts(index)
        w = max(120, self.view.viewport().width() - 2 * self.PAD)
        bold = QFont(option.font)
        bold.setBold(True)
        h1 = QFontMetrics(bold).boundingRect(QRect(0, 0, w, 1000), Qt.TextFlag.TextWordWrap, title).height()
        h2 = QFontMetrics(option.font).boundingRect(QRect(0, 0, w, 1000), Qt.TextFlag.TextWordWrap, summary).height()
        return QSize(w, h1 + h2 + 3 * self.PAD)

    def paint(self, painter: QPainter, option, index) -> None:
        title, summary = self._texts(index)
        r = option.rect
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(r, option.palette.highlight())
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.fillRect(r, option.palette.alternateBase())
        painter.setPen(option.palette.mid().color())
        painter.drawLine(r.bottomLeft(), r.bottomRight())
        color = option.palette.highlightedText().color() if selected else option.palette.text().color()
        inner = r.adjusted(self.PAD, self.PAD, -self.PAD, -self.PAD)
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(color)
        tr = painter.boundingRect(inner, Qt.TextFlag.TextWordWrap, title)
        painter.drawText(inner, Qt.TextFlag.TextWordWrap, title)
        painter.setFont(option.font)
        painter.drawText(inner.adjusted(0, tr.height() + self.PAD // 2, 0, 0), Qt.TextFlag.TextWordWrap, summary)


class MethodList(QListWidget):
    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.doItemsLayout()  # heights follow the width


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
        self.server_errors: list[dict] = []
        self._validate_rid: int | None = None
        self._start_after_validation = False

        # -- method picker -----------------------------------------------------------------
        self.methods = MethodList()
        self.methods.setItemDelegate(MethodDelegate(self.methods))
        self.methods.setMouseTracking(True)
        self.methods.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.methods.currentItemChanged.connect(self._method_clicked)
        self.description = QLabel("Starting the engine …")
        self.description.setWordWrap(True)
        self.description.setTextFormat(Qt.TextFormat.RichText)
        self.description.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.description.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        pick = QGroupBox("Method")
        vp = QVBoxLayout(pick)
        vp.addWidget(self.methods, 3)
        vp.addWidget(self.description, 2)

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
        self.start_btn = QPushButton("Start")
        self.start_btn.setObjectName("primary")
        self.start_btn.setToolTip("Start a new run with this config (Ctrl+R)")
        self.start_btn.clicked.connect(self.request_start)
        self.pause_btn = QPushButton("Pause")
        self.pause_btn.clicked.connect(self._pause_or_resume)
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setToolTip("Stop with a checkpoint (resume later)")
        self.stop_btn.clicked.connect(self.stop_requested)
        self.resume_last_btn = QPushButton("Resume from checkpoint")
        self.resume_last_btn.setToolTip("Continue the last run from its last checkpoint")
        self.resume_last_btn.clicked.connect(self.resume_last_requested)
        self.state_label = QLabel("Ready. Press Start to train.")
        self.state_label.setWordWrap(True)
        self.state_label.setObjectName("runState")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.progress.setVisible(False)
        self.command = QPlainTextEdit()
        self.command.setReadOnly(True)
        self.command.setFixedHeight(84)
        self.command.setObjectName("command")
        self.command.setToolTip("The same run from a terminal")
        self.copy_btn = QToolButton()
        self.copy_btn.setText("Copy as command")
        self.copy_btn.setToolTip("Copy the python line; the arrow offers torchrun (several GPUs or nodes) and a "
                                 "Slurm script")
        self.copy_btn.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.copy_btn.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.copy_btn.clicked.connect(self.copy_command)
        copy_menu = QMenu(self.copy_btn)
        copy_menu.addAction("Copy python line", self.copy_command)
        copy_menu.addAction("Copy torchrun line (every GPU of one machine)", lambda: self.copy_torchrun(1))
        copy_menu.addAction("Copy torchrun line (several nodes, c10d rendezvous)", lambda: self.copy_torchrun(2))
        copy_menu.addAction("Save Slurm script…", self.save_slurm_dialog)
        self.copy_btn.setMenu(copy_menu)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setPlaceholderText("What the engine says during a run appears here.")
        controls = QGroupBox("Run")
        vr = QVBoxLayout(controls)
        row = QHBoxLayout()
        for b in (self.start_btn, self.pause_btn, self.stop_btn):
            row.addWidget(b)
        vr.addLayout(row)
        vr.addWidget(self.resume_last_btn)
        vr.addWidget(self.progress)
        vr.addWidget(self.state_label)
        vr.addWidget(QLabel("Command line:"))
        vr.addWidget(self.command)
        vr.addWidget(self.copy_btn)
        vr.addWidget(QLabel("Log:"))
        vr.addWidget(self.log, 1)

        split = QSplitter()
        split.addWidget(pick)
        split.addWidget(center)
        split.addWidget(controls)
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
        self._fill_methods()
        self._model_changed("")
        self.set_engine_state("idle")

    # -- the view protocol ------------------------------------------------------------------
    @classmethod
    def create(cls, ctx: ViewContext) -> RunPanel:
        """Start and Resume last go to the window (it owns the run); the other buttons to the engine."""
        panel = cls(ctx.service, ctx.config)
        panel.message.connect(ctx.status)
        panel.pause_requested.connect(ctx.engine.pause)
        panel.resume_requested.connect(ctx.engine.resume)
        panel.stop_requested.connect(ctx.engine.stop)
        return panel

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
        self._fill_methods()
        self.form.add_section("run", "Run", "", field_specs(RunConfig), skip=RUN_SKIP,
                              suggestions={"backbone": ["auto"] + self.model.backbones()})
        self._rebuild_method_options()
        self._model_changed("")

    def _fill_methods(self) -> None:
        with QSignalBlocker(self.methods):
            self.methods.clear()
            for m in self.model.methods():
                item = QListWidgetItem(m["title"] or m["name"])
                item.setData(Qt.ItemDataRole.UserRole, m["name"])
                item.setData(Qt.ItemDataRole.UserRole + 1, m["summary"])
                item.setToolTip(m.get("description", ""))
                self.methods.addItem(item)
                if m["name"] == self.model.method:
                    self.methods.setCurrentItem(item)
        self._show_description()

    def _show_description(self) -> None:
        info = self.model.method_info()
        if info is None:
            self.description.setText(f"<b>{self.model.method}</b><br><i>Loading the method catalogue …</i>")
            return
        extra = []
        if info.get("needs_labels"):
            extra.append("needs labelled data")
        extra.append({"vit": "ViT backbones", "cnn": "CNN backbones", "any": "any backbone"}.get(
            info.get("backbone_kind", "any"), ""))
        self.description.setText(
            f"<b>{info['title']}</b> <span style='color:#777'>({info.get('family', '')}; {', '.join(extra)})</span>"
            f"<p>{info.get('description', '')}</p><p style='color:#777'>{info.get('paper', '')}</p>")

    def _method_clicked(self, item, _prev=None) -> None:
        if item is None:
            return
        name = item.data(Qt.ItemDataRole.UserRole)
        notes = self.model.set_method(name)
        if notes:
            self.message.emit(f"{name}: its recommended settings apply ({', '.join(notes)})")

    def select_method(self, name: str) -> None:
        for k in range(self.methods.count()):
            if self.methods.item(k).data(Qt.ItemDataRole.UserRole) == name:
                self.methods.setCurrentRow(k)
                return
        self.model.set_method(name)

    def _rebuild_method_options(self) -> None:
        info = self.model.method_info()
        title = f"Method options ({info['title']})" if info else "Method options"
        self.form.add_section("method_options", title, "method_options", self.model.option_specs())
        self.form.set_values(self.model.config())
        with QSignalBlocker(self.methods):
            for k in range(self.methods.count()):
                if self.methods.item(k).data(Qt.ItemDataRole.UserRole) == self.model.method:
                    self.methods.setCurrentRow(k)
        self._show_description()

    # -- editing ---------------------------------------------------------------------------
    def _edited(self, path: str, value) -> None:
        self.model.set(path, value)

    def _model_changed(self, path: str) -> None:
        self.form.set_values(self.model.config())
        self.command.setPlainText(self.command_line())
        self._validate_timer.start()
        self._update_buttons()

    def command_line(self) -> str:
        from engine.cli import config_to_command

        return config_to_command(*self._command_base())

    def copy_command(self) -> None:
        text = self.command_line()
        QGuiApplication.clipboard().setText(text)
        self.message.emit("Copied the command line to the clipboard.")

    def _command_base(self) -> tuple[dict, dict]:
        cfg = self.model.config()
        base = self.model.method_defaults_dict(cfg["method"])
        if not self.model.method_info(cfg["method"]):  # no catalogue yet: spell every option out
            base["method_options"] = {}
        return cfg, base

    def copy_torchrun(self, nnodes: int = 1) -> str:
        from engine.cli import torchrun_command

        text = torchrun_command(*self._command_base(), nnodes=nnodes)
        QGuiApplication.clipboard().setText(text)
        where = "this machine's GPUs" if nnodes == 1 else "every node (set JOB_ID and HEAD_NODE)"
        self.message.emit(f"Copied the torchrun line for {where} to the clipboard.")
        return text

    def save_slurm_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save a Slurm script for this run", "slurm_train.sh",
                                              "Shell scripts (*.sh)")
        if path:
            self.save_slurm(path)

    def save_slurm(self, path: str) -> None:
        import os

        from engine.cli import slurm_script
        from engine.runs import atomic_write_text

        try:
            atomic_write_text(path, slurm_script(*self._command_base()))
            os.chmod(path, 0o755)
        except OSError as exc:
            self.message.emit(f"Could not save {path}: {exc}")
            return
        self.message.emit(f"Saved a Slurm script to {path} (2 nodes x 4 GPUs: edit the #SBATCH lines, then sbatch it)")

    def reset_to_defaults(self) -> None:
        m = self.model.method
        defaults = self.model.method_defaults_dict(m)
        for key, value in defaults["optim"].items():
            if key != "batch_size":
                self.model.set(f"optim.{key}", value)
        self.model.reset_options(m)
        self.message.emit(f"{m}: recommended optimiser settings and options restored")

    # -- files -----------------------------------------------------------------------------
    def save_config_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the run config", "run-config.json", "JSON (*.json)")
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
        path, _ = QFileDialog.getOpenFileName(self, "Load a run config", "", "JSON (*.json)")
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
        self.state_label.setText("Checking the config …")
        self.validate()

    def _pause_or_resume(self) -> None:
        if self.engine_state == "paused":
            self.resume_requested.emit()
        else:
            self.pause_requested.emit()

    # -- engine state --------------------------------------------------------------------------
    def set_engine_state(self, state: str, can_resume: bool = False) -> None:
        self.engine_state = state
        self._can_resume = can_resume
        self._update_buttons()

    def _update_buttons(self) -> None:
        s = self.engine_state
        active = s in ("starting", "loading", "running", "paused", "stopping", "evaluating")
        ok = not self.form.invalid and not self.server_errors
        self.start_btn.setEnabled(not active and ok and not self._start_after_validation)
        self.pause_btn.setEnabled(s in ("running", "paused"))
        self.pause_btn.setText("Resume" if s == "paused" else "Pause")
        self.stop_btn.setEnabled(active and s != "stopping")
        self.resume_last_btn.setEnabled(not active and getattr(self, "_can_resume", False))
        self.resume_last_btn.setVisible(not active and getattr(self, "_can_resume", False))
        for w in (self.load_btn, self.reset_btn):
            w.setEnabled(not active)

    def set_progress(self, fraction: float, text: str) -> None:
        self.progress.setVisible(True)
        self.progress.setValue(int(1000 * max(0.0, min(1.0, fraction))))
        self.progress.setFormat(text)

    def set_state_text(self, text: str, error: bool = False) -> None:
        self.state_label.setText(text)
        self.state_label.setProperty("error", error)
        self.state_label.style().unpolish(self.state_label)
        self.state_label.style().polish(self.state_label)

    def add_log(self, text: str) -> None:
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")
