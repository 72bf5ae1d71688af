"""The workbench window: one tab per view, menus with shortcuts, a status bar, and the run's life
cycle (start, pause, resume, stop, open).

The window owns the models and the three helper-process clients and hands them to every view in
a :class:`app.common.view.ViewContext`:

- ``engine`` (:class:`EngineClient`): the training process (``engine.worker.train_process``), one session;
- ``service`` (:class:`WorkerClient`): method catalogue, config validation, dataset decoding, previews;
  it starts with the window and imports torch in the background;
- ``analysis`` (:class:`AnalysisClient`): embedding maps, evaluation, retrieval, exports; it starts
  shortly after the window shows and warms UMAP up;
- ``run`` (:class:`RunModel`): the run shown (started, resumed or opened), live or not, and the dataset;
- ``config`` (:class:`ConfigModel`): the run config being edited and the method catalogue.

The views come from the list in ``app/views.py`` (key, title, factory); each implements the small
protocol of ``app/view.py``. Data, Pretext preview, Run, Curves and Run history are the window's
workflow: it links them through their public methods. This process never imports torch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app import views as view_list
from app.common import settings as S
from app.common.analysis_client import AnalysisClient
from app.common.banner import Banner
from app.common.engine_client import EngineClient
from app.common.view import View, ViewContext, ViewSpec
from app.common.worker_client import WorkerClient
from app.curves.panel import CurvesPanel
from app.data.panel import DataPanel
from app.history.panel import HistoryPanel
from app.models.config_model import ConfigModel
from app.models.run_model import RunModel
from app.preview.panel import PreviewPanel
from app.run.panel import RunPanel
from app.window.menus import build_menus
from app.window.run_report import RunReport, add_status_labels
from app.window.state import initial_data, remember_dataset, restore_config, restore_layout, save_window

ANALYSIS_START_DELAY_MS = 1500  # let the window show (and the service process start) first


class MainWindow(QMainWindow):
    def __init__(self, data_spec: str | None = None, open_run: str | None = None, start_service: bool = True,
                 views: Sequence[ViewSpec] | None = None):
        super().__init__()
        self.setWindowTitle("SSL Workbench")
        self.setAcceptDrops(True)
        self.confirm_quit = True
        self.catalogue_fresh = False  # the service's own answer arrived (not only the cached one)
        self._t_created = time.perf_counter()

        # -- models and process clients: the window owns them, the views get them ---------------
        self.model = ConfigModel(self)
        self.run_model = RunModel(self)
        self.service = WorkerClient(parent=self)
        self.engine = EngineClient(self)
        warm = os.environ.get("SSLWB_ANALYSIS_WARMUP", "1") != "0"  # tests may skip the UMAP warm-up
        self.analysis = AnalysisClient(self, start=False, warm=warm)
        self.context = ViewContext(run=self.run_model, config=self.model, engine=self.engine, service=self.service,
                                   analysis=self.analysis, status=self.status_message, show_view=self.show_view)

        # -- views -------------------------------------------------------------------------
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.specs: tuple[ViewSpec, ...] = tuple(view_list.VIEWS if views is None else views)
        self.views: dict[str, View] = {}
        for spec in self.specs:
            if spec.key in self.views:
                raise ValueError(f"two views have the key {spec.key!r}; give each view its own key")
            widget = spec.factory(self.context)
            self.views[spec.key] = widget
            self.tabs.addTab(widget, spec.title)

        self.banner = Banner()
        central = QWidget()
        vc = QVBoxLayout(central)
        vc.setContentsMargins(0, 0, 0, 0)
        vc.setSpacing(0)
        vc.addWidget(self.banner)
        vc.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        add_status_labels(self)
        build_menus(self)
        self._wire()
        self._restore(data_spec)
        if start_service:
            self.service.start()
            self._request_catalogue()
            if os.environ.get("SSLWB_PREWARM", "1") != "0":
                # the next run's process imports torch while the window and the service start, so that
                # Start pressed the moment the window is ready shows the first loss within a second or two
                self.engine.enable_prewarm(0)
            self.data_panel.load(self._initial_spec, self._initial_size, self._initial_download)
        # the window is the timer's context: a window closed (and deleted) before it fires cancels it
        QTimer.singleShot(ANALYSIS_START_DELAY_MS, self, lambda: self.analysis.start() if self.isVisible() else None)
        if open_run:
            self.open_run(open_run)

    # -- views ---------------------------------------------------------------------------------
    @property
    def data_panel(self) -> DataPanel:
        return self.views["data"]

    @property
    def preview_panel(self) -> PreviewPanel:
        return self.views["pretext"]

    @property
    def run_panel(self) -> RunPanel:
        return self.views["run"]

    @property
    def curves(self) -> CurvesPanel:
        return self.views["curves"]

    @property
    def history(self) -> HistoryPanel:
        return self.views["history"]

    @property
    def dataset(self):
        """The dataset loaded (app.models.dataset.ViewDataset) or None."""
        return self.run_model.dataset

    def view(self, name: str) -> View:
        return self.views[name]

    def show_view(self, name: str) -> None:
        self.tabs.setCurrentWidget(self.views[name])

    def is_view_ready(self, name: str) -> bool:
        """Has the view drawn what it should (for --screenshot)?"""
        return bool(self.views[name].is_ready())

    # -- wiring ----------------------------------------------------------------------------
    def _wire(self) -> None:
        """What the views do not connect themselves: the status bar, the banner and the workflow between
        the Data, Pretext preview, Run, Curves and Run history views."""
        self.service.ready.connect(lambda _i: self.st_device.setText(self.st_device.text().replace(
            "starting …", "ready")))
        self.service.died.connect(lambda t: self.banner.show_message(t, error=True))
        self.run_model.datasetChanged.connect(self._dataset_changed)
        self.data_panel.image_chosen.connect(self.preview_panel.choose_image)
        self.preview_panel.train_method.connect(self._train_method)
        self.run_panel.start_requested.connect(self.start_run)
        self.run_panel.resume_last_requested.connect(self.resume_last)
        self.report = RunReport(self)  # the engine's state in the status bar, the Run view and the banner
        self.history.open_requested.connect(lambda p, live: (self.open_run(p, live), self.show_view("curves")))
        self.history.overlay_requested.connect(lambda p, live: (self.curves.open_run(p, overlay=True, live=live),
                                                                self.show_view("curves")))
        self.history.resume_requested.connect(self.resume_run)
        self.history.use_config_requested.connect(self._use_config)
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
        self.model.set_catalogue(cat)  # the views that show the catalogue follow the model
        if not self.engine.active:
            self.st_device.setText(f"Device: {cat.get('device_name', cat.get('device', '?'))}")

    # -- data ------------------------------------------------------------------------------
    def _dataset_changed(self, ds) -> None:
        """The run config uses the dataset shown (the Data view put it in the run model)."""
        self.model.set("data.spec", ds.spec)
        self.model.set("data.image_size", ds.image_size)
        if ds.download:
            self.model.set("data.download", True)
        remember_dataset(ds)
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
        self.history.protected.add(run_dir)
        self.run_model.set_run(run_dir, live=True, name=name, origin="started")
        self.run_panel.add_log(f"starting {name} in {run_dir}")
        self.show_view("curves")
        return run_dir

    def start_demo(self) -> str | None:
        """One click to the demo: the built-in shapes, the default run (SimCLR, two minutes) and its
        embedding map, which fills in as the run trains (``main.py --demo``, Help > Run the demo)."""
        from app.models.config_model import default_run_config

        if self.engine.active:
            self.status_message("A run is in progress; stop it first to start the demo.")
            self.show_view("embedding" if "embedding" in self.views else "curves")
            return None
        cfg = default_run_config()
        cfg["runs_root"] = self.model.get("runs_root") or cfg["runs_root"]  # the user's folder of runs stays
        self.model.load_dict(cfg)
        spec, size = cfg["data"]["spec"], int(cfg["data"]["image_size"])
        ds = self.dataset
        if (ds is None or ds.spec != spec or ds.image_size != size) and not (
                self.data_panel.loading and self.data_panel.spec_from_ui() == spec):
            self.data_panel.set_spec(spec, size)
            self.data_panel.load_from_ui()
        run_dir = self.start_run(self.model.config())
        if run_dir and "embedding" in self.views:
            self.show_view("embedding")
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
        try:
            self.engine.start({}, str(run_dir), resume=True)
        except (OSError, RuntimeError) as exc:
            self.run_panel.set_state_text(f"Could not resume: {exc}", error=True)
            return
        self.banner.hide()
        self.history.protected.add(str(run_dir))
        self.run_model.set_run(str(run_dir), live=True, origin="resumed")
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
        self.run_model.set_run(str(run_dir), live=bool(live), origin="opened")  # the views follow it

    def open_run_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a run folder")
        if path:
            self.open_run(path)
            self.show_view("curves")

    def toggle_pause(self) -> None:
        if self.engine.state == "paused":
            self.engine.resume()
        elif self.engine.state == "running":
            self.engine.pause()

    # -- settings (app/window_state.py) -----------------------------------------------------
    def _restore(self, data_spec: str | None) -> None:
        restore_config(self.model, self.history)
        self._config_changed("")
        self._initial_spec, self._initial_size, self._initial_download = initial_data(data_spec, self.model)
        self.data_panel.set_spec(self._initial_spec, self._initial_size)
        restore_layout(self)

    def save_settings(self) -> None:
        save_window(self)

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
        for view in self.views.values():
            view.shutdown()
        self.engine.shutdown(timeout=15.0)
        self.service.shutdown()
        self.analysis.shutdown()
        event.accept()
