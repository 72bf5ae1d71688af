"""The workbench window: tabs (Data, Pretext preview, Run, Curves, Embedding map, Inspector,
Run history), menus with shortcuts, a status bar, and the wiring between panels and processes.

Two helper processes do all heavy work: the *service* (``engine.worker.service_main``: method
catalogue, config validation, dataset decoding, previews) starts with the window and imports
torch in the background; the *training process* (``engine.worker.train_process``) runs one
session. This process never imports torch.

Other views plug in with :meth:`MainWindow.add_view`. A module ``app.widgets.embedding`` or
``app.widgets.inspector`` that defines ``create_view(window) -> QWidget`` replaces the
placeholder tab of the same title. A view that has ``on_engine_message(msg)`` receives every
engine message; one with ``set_run(run_dir, live)`` each run folder the user opens; one with
``set_dataset(ViewDataset)`` gets each loaded dataset; one with ``is_ready()`` tells
``--screenshot`` when it has drawn.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app import settings as S
from app.config_model import ConfigModel
from app.engine_client import EngineClient
from app.widgets import discard
from app.widgets.curves_panel import CurvesPanel
from app.widgets.data_panel import DataPanel
from app.widgets.history_panel import HistoryPanel
from app.widgets.placeholder import PlaceholderView
from app.widgets.preview_panel import PreviewPanel
from app.widgets.run_panel import RunPanel
from app.worker_client import WorkerClient
from engine import messages as M

VIEWS = ("data", "pretext", "run", "curves", "embedding", "inspector", "history")
TITLES = ("Data", "Pretext preview", "Run", "Curves", "Embedding map", "Inspector", "Run history")
PLUGINS = {"Embedding map": "app.widgets.embedding", "Inspector": "app.widgets.inspector"}
PLACEHOLDER_TEXT = {
    "Embedding map": "A live map of the encoder's embeddings (UMAP / PCA) will appear here.",
    "Inspector": "Nearest neighbours, reconstructions and evaluation of the encoder will appear here.",
}


def fmt_eta(s: float | None) -> str:
    if s is None:
        return "–"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Banner(QWidget):
    """A coloured line at the top of the window for something the user must know (not modal)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("banner")
        self.text = QLabel("")
        self.text.setWordWrap(True)
        self.action = QPushButton("")
        self.close_btn = QPushButton("Dismiss")
        self.close_btn.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 10, 6)
        lay.addWidget(self.text, 1)
        lay.addWidget(self.action)
        lay.addWidget(self.close_btn)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.hide()
        self._slot = None

    def show_message(self, text: str, action: str | None = None, slot=None, error: bool = True) -> None:
        self.text.setText(text)
        self.setProperty("error", error)
        self.style().unpolish(self)
        self.style().polish(self)
        if self._slot is not None:
            try:
                self.action.clicked.disconnect(self._slot)
            except (RuntimeError, TypeError):
                pass
            self._slot = None
        self.action.setVisible(bool(action))
        if action and slot:
            self.action.setText(action)
            self._slot = slot
            self.action.clicked.connect(slot)
        self.show()


class MainWindow(QMainWindow):
    dataset_changed = Signal(object)  # ViewDataset
    run_opened = Signal(str, bool)  # (run_dir, live): a run folder opened from history or the File menu

    def __init__(self, data_spec: str | None = None, open_run: str | None = None, start_service: bool = True):
        super().__init__()
        self.setWindowTitle("SSL Workbench")
        self.setAcceptDrops(True)
        self.dataset = None
        self.confirm_quit = True
        self.catalogue_fresh = False  # the service's own answer arrived (not only the cached one)
        self._t_created = time.perf_counter()

        self.model = ConfigModel(self)
        self.service = WorkerClient(parent=self)
        self.engine = EngineClient(self)

        # -- panels ------------------------------------------------------------------------
        self.data_panel = DataPanel(self.service)
        self.preview_panel = PreviewPanel(self.service, self.model)
        self.run_panel = RunPanel(self.service, self.model)
        self.curves = CurvesPanel()
        self.history = HistoryPanel()
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.views: dict[str, QWidget] = {}
        for title, w in (("Data", self.data_panel), ("Pretext preview", self.preview_panel), ("Run", self.run_panel),
                         ("Curves", self.curves)):
            self.add_view(title, w)
        for title in ("Embedding map", "Inspector"):
            self.add_view(title, self._plugin_or_placeholder(title))
        self.add_view("Run history", self.history)

        self.banner = Banner()
        central = QWidget()
        vc = QVBoxLayout(central)
        vc.setContentsMargins(0, 0, 0, 0)
        vc.setSpacing(0)
        vc.addWidget(self.banner)
        vc.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self._build_status_bar()
        self._build_menus()
        self._wire()
        self._restore(data_spec)
        if start_service:
            self.service.start()
            self._request_catalogue()
            self.data_panel.load(self._initial_spec, self._initial_size, self._initial_download)
        if open_run:
            self.open_run(open_run)

    # -- views ---------------------------------------------------------------------------------
    def _plugin_or_placeholder(self, title: str) -> QWidget:
        module = PLUGINS[title]
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            return PlaceholderView(title, PLACEHOLDER_TEXT[title])
        return mod.create_view(self)

    def add_view(self, title: str, widget: QWidget, index: int | None = None) -> QWidget:
        """Add a tab (or replace the tab of the same title) and connect the view to the window."""
        for i in range(self.tabs.count()):
            if self.tabs.tabText(i) == title:
                old = self.tabs.widget(i)
                self.tabs.removeTab(i)
                discard(old)
                index = i if index is None else index
                break
        if index is None:
            self.tabs.addTab(widget, title)
        else:
            self.tabs.insertTab(index, widget, title)
        self.views[title] = widget
        if hasattr(widget, "on_engine_message"):
            self.engine.message.connect(widget.on_engine_message)
        if hasattr(widget, "set_run"):
            self.run_opened.connect(widget.set_run)
        if hasattr(widget, "set_dataset"):
            self.dataset_changed.connect(widget.set_dataset)
            if self.dataset is not None:
                widget.set_dataset(self.dataset)
        return widget

    def view(self, name: str) -> QWidget:
        return self.views[TITLES[VIEWS.index(name)]]

    def show_view(self, name: str) -> None:
        self.tabs.setCurrentWidget(self.view(name))

    def is_view_ready(self, name: str) -> bool:
        """Has the view drawn what it should (for --screenshot)?"""
        w = self.view(name)
        if name == "data":
            return self.dataset is not None and not self.data_panel.loading
        if name == "pretext":
            return self.preview_panel.is_ready()
        if name == "run":
            return self.model.catalogue is not None and bool(self.service.is_ready)
        if name == "history":
            if self.history.infos and self.history.selected() is None and self.history.table.rowCount():
                self.history.table.selectRow(0)  # show a run's details
            return not self.history._busy and self.history.table.rowCount() == len(self.history.infos) \
                and (not self.history.infos or self.history.details is not None)
        ready = getattr(w, "is_ready", None)
        return bool(ready()) if callable(ready) else True

    # -- status bar ------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.st_device = QLabel("Device: starting …")
        self.st_state = QLabel("Idle")
        self.st_step = QLabel("")
        self.st_speed = QLabel("")
        self.st_eta = QLabel("")
        self.st_progress = QProgressBar()
        self.st_progress.setRange(0, 1000)
        self.st_progress.setFixedWidth(120)
        self.st_progress.setTextVisible(False)
        self.st_progress.setVisible(False)
        for w in (self.st_state, self.st_step, self.st_speed, self.st_eta, self.st_progress, self.st_device):
            sb.addPermanentWidget(w)

    # -- menus -----------------------------------------------------------------------------
    def _action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        menu.addAction(a)
        return a

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "Open image folder…", self.data_panel.browse_folder, QKeySequence.StandardKey.Open,
                     "Load a folder of images as the dataset")
        self._action(f, "Open run folder…", self._open_run_dialog, "Ctrl+Shift+O", "Show a run folder's curves")
        f.addSeparator()
        self._action(f, "Load config…", self.run_panel.load_config_dialog, "Ctrl+L")
        self._action(f, "Save config…", self.run_panel.save_config_dialog, QKeySequence.StandardKey.Save)
        self._action(f, "Copy config as command", self.run_panel.copy_command, "Ctrl+Shift+C")
        f.addSeparator()
        self._action(f, "Export curves as PNG…", self.curves._png_dialog, "Ctrl+E")
        self._action(f, "Export curves as CSV…", self.curves._csv_dialog, "Ctrl+Shift+E")
        f.addSeparator()
        self._action(f, "Quit", self.close, QKeySequence.StandardKey.Quit)
        r = mb.addMenu("&Run")
        self.act_start = self._action(r, "Start", self.run_panel.request_start, "Ctrl+R", "Start a run")
        self.act_pause = self._action(r, "Pause / resume", self._toggle_pause, "Ctrl+P")
        self.act_stop = self._action(r, "Stop", self.engine.stop, "Ctrl+.", "Stop with a checkpoint")
        self.act_snapshot = self._action(r, "Save a checkpoint now", self.engine.snapshot, "Ctrl+K")
        self.act_resume_last = self._action(r, "Resume the last run", self.resume_last, "Ctrl+Shift+R")
        v = mb.addMenu("&View")
        for k, title in enumerate(TITLES):
            self._action(v, title, lambda _=False, t=title: self.tabs.setCurrentWidget(self.views[t]), f"Ctrl+{k + 1}")
        v.addSeparator()
        self._action(v, "Refresh run history", self.history.refresh, "F5")
        h = mb.addMenu("&Help")
        self._action(h, "About SSL Workbench", self._about)
        self._action(h, "Keyboard shortcuts", self._shortcuts, "F1")

    def _about(self) -> None:
        QMessageBox.about(self, "SSL Workbench",
                          "<b>SSL Workbench</b><p>Preview pretext tasks, train self-supervised methods, watch "
                          "them learn and inspect what the encoder learned.</p>"
                          f"<p>{self.st_device.text()}</p>")

    def _shortcuts(self) -> None:
        lines = []
        for menu in self.menuBar().findChildren(QAction):
            if menu.shortcut().toString():
                lines.append(f"<tr><td>{menu.shortcut().toString()}</td><td>{menu.text()}</td></tr>")
        QMessageBox.information(self, "Keyboard shortcuts", "<table>" + "".join(lines) + "</table>")

    # -- wiring ----------------------------------------------------------------------------
    def _wire(self) -> None:
        self.service.ready.connect(lambda _i: self.st_device.setText(self.st_device.text().replace(
            "starting …", "ready")))
        self.service.died.connect(lambda t: self.banner.show_message(t, error=True))
        self.service.restarted.connect(self._service_restarted)
        self.data_panel.dataset_loaded.connect(self._dataset_loaded)
        self.data_panel.image_chosen.connect(self.preview_panel.choose_image)
        self.data_panel.message.connect(self.status_message)
        self.preview_panel.train_method.connect(self._train_method)
        self.run_panel.start_requested.connect(self.start_run)
        self.run_panel.pause_requested.connect(self.engine.pause)
        self.run_panel.resume_requested.connect(self.engine.resume)
        self.run_panel.stop_requested.connect(self.engine.stop)
        self.run_panel.resume_last_requested.connect(self.resume_last)
        self.run_panel.message.connect(self.status_message)
        self.engine.state_changed.connect(self._engine_state)
        self.engine.run_started.connect(self._run_started)
        self.engine.step.connect(self._step)
        self.engine.eval_result.connect(self._eval)
        self.engine.warning.connect(lambda t: (self.run_panel.add_log(f"note: {t}"), self.status_message(t)))
        self.engine.progress.connect(self._engine_progress)
        self.engine.checkpoint.connect(lambda m: self.run_panel.add_log(f"checkpoint saved at step {m.step}"))
        self.engine.finished.connect(self._run_finished)
        self.engine.failed.connect(self._run_failed)
        self.engine.died.connect(self._engine_died)
        self.history.open_requested.connect(lambda p, live: (self.open_run(p, live), self.show_view("curves")))
        self.history.overlay_requested.connect(lambda p, live: (self.curves.open_run(p, overlay=True, live=live),
                                                                self.show_view("curves")))
        self.history.resume_requested.connect(self.resume_run)
        self.history.use_config_requested.connect(self._use_config)
        self.history.message.connect(self.status_message)
        self.model.changed.connect(self._config_changed)

    def status_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 10000)

    # -- catalogue -------------------------------------------------------------------------
    def _request_catalogue(self) -> None:
        self.service.request("catalogue", on_done=self._catalogue, on_error=lambda e: self.banner.show_message(
            f"The engine could not list its methods: {e.get('message')}", error=True))

    def _catalogue(self, cat: dict) -> None:
        self.catalogue_fresh = True
        S.write_cache("catalogue.json", cat)
        self.model.set_catalogue(cat)
        self.data_panel.set_tv_datasets(cat.get("datasets", []))
        if not self.engine.active:
            self.st_device.setText(f"Device: {cat.get('device_name', cat.get('device', '?'))}")

    def _service_restarted(self) -> None:
        if self.dataset is None and not self.data_panel.loading:
            self.data_panel.load_from_ui()
        self.preview_panel._inflight = None
        self.preview_panel.request()

    # -- data ------------------------------------------------------------------------------
    def _dataset_loaded(self, ds) -> None:
        self.dataset = ds
        self.preview_panel.set_dataset(ds)
        self.model.set("data.spec", ds.spec)
        self.model.set("data.image_size", ds.image_size)
        if ds.download:
            self.model.set("data.download", True)
        s = S.settings()
        s.setValue("data/spec", ds.spec)
        s.setValue("data/image_size", ds.image_size)
        s.setValue("data/download", bool(ds.download))
        self.dataset_changed.emit(ds)
        self.status_message(f"Dataset {ds.name or ds.spec}: {len(ds)} images (the run config uses it)")

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if DataPanel.dropped_folder(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        folder = DataPanel.dropped_folder(event.mimeData())
        if folder:
            event.acceptProposedAction()
            self.show_view("data")
            self.data_panel.open_folder(folder)

    def _train_method(self, name: str) -> None:
        if name:
            self.run_panel.select_method(name)
            self.show_view("run")

    def _config_changed(self, path: str) -> None:
        if path in ("", "runs_root"):
            root = Path(self.model.get("runs_root") or "runs").expanduser()
            self.history.set_roots([str(root.resolve())])

    def _use_config(self, cfg: dict) -> None:
        self.model.load_dict(cfg)
        self.show_view("run")
        self.status_message("Loaded the run's config into the Run panel")

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, cfg: dict) -> str | None:
        if self.engine.active:
            self.status_message("A run is already in progress; stop it first.")
            return None
        from engine.runs import data_label

        name = f"{cfg['method']} on {data_label(cfg['data']['spec'])}"
        try:
            run_dir = self.engine.start(cfg)
        except (OSError, RuntimeError) as exc:
            self.run_panel.set_state_text(f"Could not start: {exc}", error=True)
            return None
        self.banner.hide()
        self.save_settings()  # the config of every started run survives a crash of the window
        self.curves.start_live(name, run_dir)
        self.history.protected.add(run_dir)
        self.run_panel.add_log(f"starting {name} in {run_dir}")
        self.show_view("curves")
        return run_dir

    def resume_last(self) -> None:
        if not self.engine.can_resume():
            self.status_message("There is no stopped run with a checkpoint to resume.")
            return
        self.resume_run(self.engine.run_dir)

    def resume_run(self, run_dir: str) -> None:
        if self.engine.active:
            self.status_message("A run is in progress; stop it before resuming another.")
            return
        main = self.curves.runs.get("main")
        same = main is not None and main.run_dir == str(run_dir)
        if not same:
            self.curves.start_live(Path(run_dir).name, str(run_dir), keep_history=True)
        try:
            self.engine.start({}, str(run_dir), resume=True)
        except (OSError, RuntimeError) as exc:
            self.run_panel.set_state_text(f"Could not resume: {exc}", error=True)
            return
        self.banner.hide()
        self.history.protected.add(str(run_dir))
        self.run_panel.add_log(f"resuming {run_dir} from its last checkpoint")
        self.show_view("curves")

    def open_run(self, run_dir: str, live: bool | None = None) -> None:
        if self.engine.active and self.engine.run_dir == str(run_dir):
            return  # already shown live
        if not (Path(run_dir) / "config.json").exists():
            self.banner.show_message(f"{run_dir} is not a run folder (it has no config.json); choose a folder "
                                     "that a run wrote, e.g. runs/20261122-153000-simclr-shapes")
            return
        if live is None:
            from engine.runs import run_info

            info = run_info(run_dir)
            live = bool(info and info.live)
        self.curves.open_run(run_dir, live=live)
        self.run_opened.emit(str(run_dir), bool(live))
        parent = str(Path(run_dir).resolve().parent)
        if parent not in self.history.roots and str(Path(run_dir).resolve()) not in self.history.extra:
            self.history.add_folder(run_dir)
        self.history.select(str(run_dir))

    def _open_run_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a run folder")
        if path:
            self.open_run(path)
            self.show_view("curves")

    def _toggle_pause(self) -> None:
        if self.engine.state == "paused":
            self.engine.resume()
        elif self.engine.state == "running":
            self.engine.pause()

    def _engine_state(self, state: str) -> None:
        labels = {"starting": "Starting the engine …", "loading": "Loading the data …", "running": "Running",
                  "paused": "Paused (checkpoint saved)", "stopping": "Stopping (writing a checkpoint) …",
                  "evaluating": "Evaluating (kNN and linear probe) …", "finished": "Finished", "stopped": "Stopped",
                  "failed": "Failed", "died": "The engine process died", "idle": "Idle"}
        self.st_state.setText(labels.get(state, state))
        self.st_progress.setVisible(state in ("running", "paused", "evaluating", "loading", "starting"))
        self.run_panel.set_engine_state(state, self.engine.can_resume())
        if state not in ("failed", "died"):
            self.run_panel.set_state_text(labels.get(state, state))
        self.run_panel.add_log(f"state: {state}")
        if not self.engine.active and self.engine.run_dir:
            self.history.protected.discard(self.engine.run_dir)
            self.history.refresh()
        self.act_pause.setEnabled(state in ("running", "paused"))
        self.act_stop.setEnabled(self.engine.active)

    def _run_started(self, msg: M.RunStarted) -> None:
        self.st_device.setText(f"Device: {msg.device_name}")
        budget = f"{msg.total_steps} steps" if msg.total_steps else f"{msg.config.get('minutes', 0):g} min"
        self.run_panel.add_log(f"run started on {msg.device_name}: {msg.num_images} images, {msg.steps_per_epoch} "
                               f"steps per epoch, {budget}" + (f" (resumed at step {msg.start_step})"
                                                               if msg.resumed else ""))
        self.history.refresh()

    def _step(self, msg: M.StepMetrics) -> None:
        v = msg.values
        self.st_step.setText(f"step {msg.step} · epoch {msg.epoch:.2f}")
        self.st_speed.setText(f"{v.get('images_per_s', 0):.0f} img/s")
        self.st_eta.setText(f"ETA {fmt_eta(msg.eta_s)}")
        self.st_progress.setValue(int(1000 * msg.progress))
        self.run_panel.set_progress(msg.progress, f"{msg.progress:.0%} · step {msg.step} · loss {v.get('loss', 0):.4f}"
                                                  f" · ETA {fmt_eta(msg.eta_s)}")

    def _eval(self, msg: M.EvalResult) -> None:
        vals = ", ".join(f"{k} {v:.3f}" for k, v in msg.values.items() if isinstance(v, (int, float)))
        self.run_panel.add_log(f"{msg.kind_name} at epoch {msg.epoch:g}: {vals}")

    def _engine_progress(self, p: M.Progress) -> None:
        if p.total:
            self.run_panel.set_progress(p.done / p.total, f"{p.task}: {p.detail} {p.done}/{p.total}")

    def _run_finished(self, msg: M.RunFinished) -> None:
        s = msg.summary
        knn = f", kNN top-1 {s['knn_top1']:.1%}" if isinstance(s.get("knn_top1"), (int, float)) else ""
        lin = f", linear probe {s['linear_top1']:.1%}" if isinstance(s.get("linear_top1"), (int, float)) else ""
        text = f"Run {msg.reason} after {msg.step} steps{knn}{lin}."
        if msg.reason == "stopped":
            text += " Resume continues from the checkpoint."
        self.run_panel.set_state_text(text)
        self.run_panel.add_log(text)
        self.status_message(text)
        self.history.refresh()

    def _run_failed(self, msg: M.RunFailed) -> None:
        text = f"The run failed: {msg.error}"
        self.run_panel.set_state_text(text, error=True)
        self.run_panel.add_log(text + (f"\n{msg.traceback}" if msg.traceback else ""))
        self.banner.show_message(text, "Show log", lambda: self.show_view("run"))
        self.run_panel.set_engine_state("failed", self.engine.can_resume())

    def _engine_died(self, text: str) -> None:
        self.run_panel.set_state_text(text, error=True)
        self.run_panel.add_log(text)
        can = self.engine.can_resume()
        self.run_panel.set_engine_state("died", can)
        if can:
            self.banner.show_message(text, "Resume from checkpoint", self.resume_last)
        else:
            self.banner.show_message(text)

    # -- settings --------------------------------------------------------------------------
    def _restore(self, data_spec: str | None) -> None:
        s = S.settings()
        cat = S.read_cache("catalogue.json")
        if isinstance(cat, dict) and cat.get("methods"):
            self.model.catalogue = cat  # shown at once; the service's fresh one replaces it
        state = S.get_json("config/state")
        if state:
            try:
                self.model.restore(state)
            except (KeyError, TypeError, ValueError):
                pass
        if cat:
            self.model.set_catalogue(cat)
            self.data_panel.set_tv_datasets(cat.get("datasets", []))
        self.history.extra = [p for p in (S.get_json("history/folders") or []) if isinstance(p, str)]
        self._config_changed("")
        spec = data_spec or s.value("data/spec") or self.model.get("data.spec")
        size = int(s.value("data/image_size") or self.model.get("data.image_size") or 32) if not data_spec else \
            int(self.model.get("data.image_size") or 32)
        self._initial_spec, self._initial_size = str(spec), size
        self._initial_download = str(s.value("data/download", "false")).lower() == "true" and not data_spec
        self.data_panel.set_spec(self._initial_spec, size)
        geo = s.value("window/geometry")
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            self.restoreGeometry(geo)
        else:
            self.resize(1360, 860)
        st = s.value("window/state")
        if isinstance(st, QByteArray) and not st.isEmpty():
            self.restoreState(st)
        for key, panel in (("data", self.data_panel), ("preview", self.preview_panel), ("run", self.run_panel)):
            sp = s.value(f"splitters/{key}")
            if isinstance(sp, QByteArray) and not sp.isEmpty():
                panel.splitter.restoreState(sp)
        tab = s.value("window/tab")
        if tab in TITLES:
            self.tabs.setCurrentWidget(self.views[tab])

    def save_settings(self) -> None:
        s = S.settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("window/tab", self.tabs.tabText(self.tabs.currentIndex()))
        for key, panel in (("data", self.data_panel), ("preview", self.preview_panel), ("run", self.run_panel)):
            s.setValue(f"splitters/{key}", panel.splitter.saveState())
        s.setValue("config/state", json.dumps(self.model.state()))
        s.setValue("history/folders", json.dumps(self.history.extra))
        s.sync()

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.engine.active and self.confirm_quit:
            answer = QMessageBox.question(
                self, "Quit", "A run is in progress. Stop it (a checkpoint is written, you can resume it later) "
                              "and quit?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.save_settings()
        if self.engine.active:
            self.hide()  # the run writes its checkpoint meanwhile; nothing left to click
        self.engine.shutdown(timeout=15.0)
        self.service.shutdown()
        event.accept()
