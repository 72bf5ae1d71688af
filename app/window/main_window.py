"""The workbench window: one tab per view, menus with shortcuts, a status bar, and the run's life
cycle (start, pause, resume, stop, open).

The window owns the models and the three helper-process clients and hands them to every view in
a :class:`app.common.view.ViewContext`:

- ``engine`` (:class:`EngineClient`): the training process (``engine.worker.train_process``), one session;
- ``service`` (:class:`WorkerClient`): method catalogue, config validation, dataset decoding, previews;
  it starts with the window and imports torch in the background;
- ``analysis`` (:class:`AnalysisClient`): embedding maps, evaluation, retrieval, exports; it starts
  shortly after the window shows and warms UMAP up;
- ``run`` (:class:`RunModel`): the workflow state (the run shown, the runs training here, the dataset,
  the chosen image) and the views' requests (start, resume, open a run);
- ``config`` (:class:`ConfigModel`): the run config being edited, its method and the method catalogue.

The views come from the list in ``app/views.py`` (key, title, factory); each implements the small
protocol of ``app/common/view.py``. The window wires models, clients and its own parts (menus, status
bar, banner); it calls nothing on a view but that protocol, and acts on the run model's requests. This
process never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app import views as view_list
from app.common import dialogs
from app.common import settings as S
from app.common.analysis_client import AnalysisClient
from app.common.banner import Banner
from app.common.engine_client import EngineClient
from app.common.qt import FolderDrop
from app.common.run_text import finished_text
from app.common.view import View, ViewContext, ViewSpec
from app.common.worker_client import WorkerClient
from app.models.config_model import ConfigModel, default_run_config
from app.models.encoders import opened_text
from app.models.run_model import RunModel
from app.window.encoder_dialog import OpenEncoderDialog
from app.window.menus import Menus, WindowActions
from app.window.state import initial_data, remember_dataset, restore_config, restore_layout, save_window
from app.window.status_bar import RunStatusBar

ANALYSIS_START_DELAY_MS = 1500  # let the window show (and the service process start) first


class MainWindow(FolderDrop, QMainWindow):
    def __init__(self, data_spec: str | None = None, open_run: str | None = None, start_service: bool = True,
                 views: Sequence[ViewSpec] | None = None):
        super().__init__()
        self.setWindowTitle("SSL Workbench")
        self.setAcceptDrops(True)
        self.confirm_quit = True
        self.catalogue_fresh = False  # the service's own answer arrived (not only the cached one)

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

        # -- the window's own parts: banner, status bar, menus -------------------------------------
        self.banner = Banner()
        central = QWidget()
        vc = QVBoxLayout(central)
        vc.setContentsMargins(0, 0, 0, 0)
        vc.setSpacing(0)
        vc.addWidget(self.banner)
        vc.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.run_status = RunStatusBar(self.statusBar(), self.engine, self.run_model, self)
        self.menus = Menus(self, WindowActions(
            open_run=self.open_run_dialog, open_encoder=self.open_encoder_dialog, quit=self.close,
            toggle_pause=self.toggle_pause, stop=self.engine.stop,
            snapshot=self.engine.snapshot, resume_last=self.resume_last, demo=self.start_demo,
            show_view=self.show_view, device_text=lambda: self.run_status.device.text()),
            self.specs, {key: list(view.menu_entries()) for key, view in self.views.items()})
        self._wire()
        self._restore(data_spec)
        if start_service:
            self.service.start()
            self._request_catalogue()
            if os.environ.get("SSLWB_PREWARM", "1") != "0":
                # the next run's process imports torch while the window and the service start, so that
                # Start pressed the moment the window is ready shows the first loss within a second or two
                self.engine.enable_prewarm(0)
            self.run_model.choose_data(*self._initial_data)
        # the window is the timer's context: a window closed (and deleted) before it fires cancels it
        QTimer.singleShot(ANALYSIS_START_DELAY_MS, self, lambda: self.analysis.start() if self.isVisible() else None)
        if open_run:
            self.open_run(open_run)

    # -- views ---------------------------------------------------------------------------------
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
        """The models, the clients and the window's parts; the views connected themselves in their factories."""
        run, e = self.run_model, self.engine
        self.service.ready.connect(lambda _i: self.run_status.service_ready())
        self.service.died.connect(lambda t: self.banner.show_message(t, error=True))
        run.datasetChanged.connect(self._dataset_changed)
        run.startRequested.connect(self.start_run)
        run.resumeRequested.connect(lambda d: self.resume_run(d) if d else self.resume_last())
        run.openRequested.connect(self.open_run)
        e.state_changed.connect(self._engine_state)
        e.warning.connect(self.status_message)
        e.finished.connect(lambda msg: self.status_message(finished_text(msg, e.config)))
        e.failed.connect(lambda msg: self.banner.show_message(f"The run failed: {msg.error}", "Show log",
                                                              lambda: self.show_view("run")))
        e.died.connect(self._engine_died)

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
        self.run_status.show_catalogue_device(cat)

    # -- data ------------------------------------------------------------------------------
    def _dataset_changed(self, ds) -> None:
        """The run config uses the dataset shown (the Data view put it in the run model)."""
        self.model.set("data.spec", ds.spec)
        self.model.set("data.image_size", ds.image_size)
        if ds.download:
            self.model.set("data.download", True)
        remember_dataset(ds)
        self.status_message(f"Dataset {ds.name or ds.spec}: {len(ds)} images (the run config uses it)")

    def folder_dropped(self, folder: str) -> None:
        self.show_view("data")
        self.run_model.choose_data(folder)

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
            self.run_model.tell(f"Could not start: {exc}", error=True)
            return None
        self.banner.hide()
        self.save_settings()  # the config of every started run survives a crash of the window
        self.run_model.protect(run_dir)
        self.run_model.set_run(run_dir, live=True, name=name, origin="started")
        self.show_view("curves")
        return run_dir

    def start_demo(self) -> str | None:
        """One click to the demo: the built-in shapes, the default run (SimCLR, two minutes) and its
        embedding map, which fills in as the run trains (``main.py --demo``, Help > Run the demo)."""
        if self.engine.active:
            self.status_message("A run is in progress; stop it first to start the demo.")
            self.show_view("embedding" if "embedding" in self.views else "curves")
            return None
        cfg = default_run_config()
        cfg["runs_root"] = self.model.get("runs_root") or cfg["runs_root"]  # the user's folder of runs stays
        self.model.load_dict(cfg)
        spec, size = cfg["data"]["spec"], int(cfg["data"]["image_size"])
        ds, run = self.dataset, self.run_model
        if (ds is None or ds.spec != spec or ds.image_size != size) and run.loading_spec != spec:
            run.choose_data(spec, size)
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
            self.run_model.tell(f"Could not resume: {exc}", error=True)
            return
        self.banner.hide()
        self.run_model.protect(str(run_dir))
        self.run_model.set_run(str(run_dir), live=True, origin="resumed")
        self.show_view("curves")

    def open_run(self, run_dir: str, live: bool | None = None) -> None:
        if self.engine.active and self.engine.run_dir == str(run_dir):
            return  # already shown live
        if not (Path(run_dir) / "config.json").exists():
            self.banner.show_message(f"{run_dir} is not a run folder (it has no config.json); choose a folder "
                                     "that a run wrote, e.g. runs/20261122-153000-simclr-shapes")
            return
        from engine.runs import read_status

        status = read_status(run_dir)
        if live is None:
            live = bool(status.get("live"))
        self.run_model.set_run(str(run_dir), live=bool(live), origin="opened")  # the views follow it
        if status.get("state") == "interrupted":
            self._offer_resume(str(run_dir), status)

    def _offer_resume(self, run_dir: str, status: dict) -> None:
        """An opened run whose process is gone (killed, or the machine stopped): say so, and offer Resume."""
        name = Path(run_dir).name
        was = f" while {status['was']}" if status.get("was") else ""
        text = f"The run {name} was interrupted{was} after step {status.get('step', 0)}: its process is gone."
        if (Path(run_dir) / "checkpoints" / "last.pt").exists():
            self.banner.show_message(text + " Resume continues from its last checkpoint.", "Resume",
                                     lambda: self.run_model.request_resume(run_dir))
        else:
            self.banner.show_message(text + " It wrote no checkpoint, so it cannot be resumed; start it again.")

    def open_run_dialog(self) -> None:
        path = dialogs.existing_folder(self, "Open a run folder")
        if path:
            self.open_run(path)
            self.show_view("curves")

    def open_encoder_dialog(self) -> OpenEncoderDialog:
        """File > Open encoder…: the dialog opens it in the analysis process; the window then shows its folder."""
        ds = self.dataset
        data = ds.spec if ds is not None else str(self.model.get("data.spec") or "")
        dlg = OpenEncoderDialog(self.analysis, lambda: str(Path(self.model.get("runs_root") or "runs").expanduser()),
                                data, self.model.backbones(), self)
        dlg.opened.connect(self.show_encoder)
        dlg.setModal(True)
        dlg.show()
        self.encoder_dialog = dlg
        return dlg

    def show_encoder(self, reply: dict) -> None:
        """An encoder was opened: its folder is shown like a run (the Run history lists it), its map first."""
        self.open_run(reply["run_dir"], live=False)
        self.status_message(opened_text(reply))
        self.show_view("embedding" if "embedding" in self.views else "curves")

    def toggle_pause(self) -> None:
        if self.engine.state == "paused":
            self.engine.resume()
        elif self.engine.state == "running":
            self.engine.pause()

    def _engine_state(self, state: str) -> None:
        e, run = self.engine, self.run_model
        if not e.active and e.run_dir:
            run.release(e.run_dir)  # it may be deleted now
        self.menus.set_run_state(state, e.active)
        ref = run.run
        if ref is not None and ref.owned and ref.same_run(e.run_dir):
            run.set_live(e.active)

    def _engine_died(self, text: str) -> None:
        if self.engine.can_resume():
            self.banner.show_message(text, "Resume from checkpoint", self.resume_last)
        else:
            self.banner.show_message(text)

    # -- settings (app/window/state.py) -----------------------------------------------------
    def _restore(self, data_spec: str | None) -> None:
        restore_config(self.model)
        self._initial_data = initial_data(data_spec, self.model)
        spec, size, download = self._initial_data
        self.run_model.choose_data(spec, size, download, load=False)
        restore_layout(self, self.views, self.specs, self.show_view)

    def save_settings(self) -> None:
        save_window(self, self.tabs.tabText(self.tabs.currentIndex()), self.views, self.model)

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
