"""Run history: the run folders of the runs directory and of any folder the user opened.

Select a run to see its config, data and results; open it to see its curves (a run another
process is writing, e.g. a headless ``main.py train``, is followed live); overlay it on the
current curves; resume it from its checkpoint; delete it (after a confirmation). Folders are
read on an I/O thread, never on the GUI thread. The listing's state and rules are app/history/model.py's,
a run's summary app/history/details.py's. ``history_view(ctx)`` makes the window's view: it lists the run
config's runs directory and the folders added to it (kept in the settings), opens and resumes runs through
the run model and never deletes a run the window trains."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QPoint, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.common import dialogs
from app.common import settings as S
from app.common.measures import knn_cell, list_runs_with_finals
from app.common.tasks import run_in_thread
from app.common.view import MenuEntry, View, ViewContext
from app.history.details import details_html, fmt_duration, fmt_pct, read_details
from app.history.model import RunListing, deletable, is_encoder, resumable
from app.models.run_model import RunRef

COLUMNS = ("Run", "Method", "Data", "Started", "Duration", "State", "Steps", "kNN top-1", "Linear top-1")
STATE_COLORS = {"running": "#2e7d32", "paused": "#ef6c00", "loading": "#2e7d32", "evaluating": "#2e7d32",
                "failed": "#c62828", "interrupted": "#c62828", "finished": "#1565c0", "stopped": "#6d4c41"}


ENCODER_COLOR = "#7b1fa2"


def kind_icon(kind: str) -> QIcon:
    """The Run cell's mark: a purple diamond for an opened encoder, a blue dot for a trained run."""
    pm = QPixmap(14, 14)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    if kind == "encoder":
        p.setBrush(QColor(ENCODER_COLOR))
        p.drawPolygon([QPoint(7, 1), QPoint(13, 7), QPoint(7, 13), QPoint(1, 7)])
    else:
        p.setBrush(QColor("#1565c0"))
        p.drawEllipse(3, 3, 8, 8)
    p.end()
    return QIcon(pm)


class SortItem(QTableWidgetItem):
    """Sorts by a hidden key (numbers, timestamps) instead of the shown text."""

    def __init__(self, text: str, key):
        super().__init__(text)
        self.key = key

    def __lt__(self, other):  # noqa: D105
        a, b = self.key, getattr(other, "key", None)
        if a is None:
            return True
        if b is None:
            return False
        return a < b


class RunTable(QTableWidget):
    """The runs, a row each, sortable by every column (newest first); a row holds its folder."""

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSortingEnabled(True)
        self.setAlternatingRowColors(True)
        hh = self.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.sortItems(3, Qt.SortOrder.DescendingOrder)  # newest first

    def fill(self, infos: list, finals: dict | None = None) -> None:
        """A row per run (engine.runs.RunInfo; ``finals``: their final evaluations, the kNN column says whether
        a figure is one or the online monitor's); no selection signals meanwhile."""
        self.setSortingEnabled(False)
        self.blockSignals(True)
        self.setRowCount(len(infos))
        for r, info in enumerate(infos):
            state = "live" if info.live and info.state == "running" else info.state
            knn, knn_tip, measure = knn_cell(info, (finals or {}).get(info.path))
            cells = [
                SortItem(Path(info.path).name, Path(info.path).name),
                SortItem(info.method, info.method),
                SortItem(info.data, info.data),
                SortItem(time.strftime("%Y-%m-%d %H:%M", time.localtime(info.started)), info.started),
                SortItem(fmt_duration(info.duration_s), info.duration_s),
                SortItem(state + (" ●" if info.live else ""), state),
                SortItem(str(info.step), info.step),
                SortItem(knn, info.knn_top1 if info.knn_top1 is not None else -1),
                SortItem(fmt_pct(info.linear_top1), info.linear_top1 if info.linear_top1 is not None else -1),
            ]
            cells[0].setData(Qt.ItemDataRole.UserRole, info.path)
            cells[0].setToolTip(info.path)
            cells[0].setIcon(kind_icon(getattr(info, "kind", "run")))
            if is_encoder(info):
                cells[0].setToolTip(f"An opened encoder: {info.encoder or '?'}\n{info.path}")
                cells[1].setForeground(QColor(ENCODER_COLOR))
                cells[1].setToolTip(f"An encoder opened with File > Open encoder… ({info.encoder or '?'}); it trained "
                                    "nothing here")
            cells[5].setForeground(QColor(STATE_COLORS.get(info.state, "#333")))
            if info.state == "interrupted":
                cells[5].setToolTip("Its process is gone (killed, or the machine stopped) while it was "
                                    f"{getattr(info, 'was', None) or 'running'}; Resume continues from its last "
                                    "checkpoint")
            cells[7].setToolTip(knn_tip)
            if measure == "monitor":
                cells[7].setForeground(QColor("#777"))
            for c, item in enumerate(cells):
                if c >= 6:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(r, c, item)
        self.blockSignals(False)
        self.setSortingEnabled(True)

    def selected(self) -> str | None:
        """The selected run's folder."""
        rows = self.selectionModel().selectedRows()
        if not rows:
            return None
        return self.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)

    def select(self, run_dir: str) -> bool:
        for r in range(self.rowCount()):
            if self.item(r, 0).data(Qt.ItemDataRole.UserRole) == str(run_dir):
                self.selectRow(r)
                return True
        return False


class HistoryPanel(QWidget, View):
    open_requested = Signal(str, bool)  # (run_dir, live)
    overlay_requested = Signal(str, bool)
    resume_requested = Signal(str)
    use_config_requested = Signal(dict)
    train_from_requested = Signal(dict)  # an opened encoder's config.json: start a run from its weights
    message = Signal(str)
    refreshed = Signal()
    folders_changed = Signal(list)  # all_roots(): where runs are listed from

    def __init__(self, protected: Callable[[str], bool] | None = None, parent=None):
        """``protected(run_dir)``: does the window train that run now (it is never deleted)?"""
        super().__init__(parent)
        self.listing = RunListing()
        self.protected = protected or (lambda _path: False)
        self._busy = False
        self._again = False  # the folders changed while listing: list again
        self._details_for: str | None = None
        self.select_after: str | None = None  # a run to select once a listing has it
        self.details: dict | None = None
        self.confirm = self._confirm_dialog

        self.table = RunTable()
        self.table.itemSelectionChanged.connect(self._selected)
        self.table.itemDoubleClicked.connect(lambda _i: self.open_selected())
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)

        self.open_btn = QPushButton("Open")
        self.open_btn.setToolTip("Show this run's curves in the Curves tab (double-click does the same)")
        self.open_btn.clicked.connect(self.open_selected)
        self.overlay_btn = QPushButton("Overlay on curves")
        self.overlay_btn.setToolTip("Add this run's curves to the Curves tab for comparison")
        self.overlay_btn.clicked.connect(self.overlay_selected)
        self.resume_btn = QPushButton("Resume")
        self.resume_btn.setToolTip("Continue this run from its last checkpoint")
        self.resume_btn.clicked.connect(lambda: self.selected() and self.resume_requested.emit(self.selected()))
        self.use_btn = QPushButton("Use its config")
        self.use_btn.setToolTip("Load this run's config into the Run panel")
        self.use_btn.clicked.connect(self._use_config)
        self.train_btn = QPushButton("Train from this encoder")
        self.train_btn.setToolTip("Start the Run panel's config from this encoder's weights (main.py train --init)")
        self.train_btn.clicked.connect(self.train_from_selected)
        self.delete_btn = QPushButton("Delete…")
        self.delete_btn.clicked.connect(self.delete_selected)
        self.show_btn = QPushButton("Show folder")
        self.show_btn.clicked.connect(self._show_folder)
        self.add_btn = QPushButton("Add folder…")
        self.add_btn.setToolTip("Add a run folder, or a folder of run folders, to the list")
        self.add_btn.clicked.connect(self._add_dialog)
        self.refresh_btn = QPushButton("Refresh")
        self.refresh_btn.clicked.connect(self.refresh)
        bar = QHBoxLayout()
        for b in (self.open_btn, self.overlay_btn, self.resume_btn, self.use_btn, self.train_btn, self.delete_btn,
                  self.show_btn):
            bar.addWidget(b)
        bar.addStretch(1)
        bar.addWidget(self.add_btn)
        bar.addWidget(self.refresh_btn)
        self.where = QLabel("")
        self.where.setObjectName("hint")
        self.where.setWordWrap(True)

        self.summary = QTextBrowser()
        self.summary.setOpenExternalLinks(False)
        self.config_text = QPlainTextEdit()
        self.config_text.setReadOnly(True)
        self.config_text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        tabs = QTabWidget()
        tabs.addTab(self.summary, "Results and data")
        tabs.addTab(self.config_text, "Config")
        self.detail_tabs = tabs

        top = QWidget()
        vt = QVBoxLayout(top)
        vt.setContentsMargins(0, 0, 0, 0)
        vt.addLayout(bar)
        vt.addWidget(self.table, 1)
        vt.addWidget(self.where)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(tabs)
        split.setSizes([360, 400])
        self.splitter = split
        lay = QVBoxLayout(self)
        lay.addWidget(split)

        self._timer = QTimer(self)
        self._timer.setInterval(5000)
        self._timer.timeout.connect(self.refresh)
        self._timer.start()
        self._update_buttons()

    roots = property(lambda self: self.listing.roots)
    extra = property(lambda self: self.listing.extra)  # folders the user added
    infos = property(lambda self: self.listing.infos)

    # -- the view protocol -----------------------------------------------------------------
    def menu_entries(self) -> list[MenuEntry]:
        return [MenuEntry("View", "Refresh run history", self.refresh, "F5")]

    def is_ready(self) -> bool:
        """Listed, and (for a screenshot) a run's details shown: selects the first run if none is."""
        if self.infos and self.selected() is None and self.table.rowCount():
            self.table.selectRow(0)
        return not self.busy and self.table.rowCount() == len(self.infos) and \
            (not self.infos or self.details is not None)

    def show_run(self, ref: RunRef) -> None:
        """A run opened elsewhere (File menu, --open) is listed (its folder added if need be) and selected."""
        if ref.origin != "opened":
            return
        if not self.listing.lists(ref.run_dir):
            self.add_folder(ref.run_dir)
        if not self.select(ref.run_dir):  # a folder made just now (an opened encoder): selected once listed
            self.select_after = ref.run_dir
            self.refresh()

    # -- folders ---------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """Listing the run folders (on an I/O thread) now."""
        return self._busy

    def set_roots(self, roots: list[str]) -> None:
        if self.listing.set_roots(roots):
            self.folders_changed.emit(self.all_roots())
            self.refresh()

    def set_extra(self, folders: list[str]) -> None:
        """Folders the user added in an earlier session."""
        self.listing.set_extra(folders)
        self.folders_changed.emit(self.all_roots())

    def add_folder(self, folder: str) -> None:
        if self.listing.add_folder(folder):
            self.folders_changed.emit(self.all_roots())
        self.refresh()

    def _add_dialog(self) -> None:
        path = dialogs.existing_folder(self, "Add a run folder (or a folder of runs)")
        if path:
            self.add_folder(path)

    def all_roots(self) -> list[str]:
        return self.listing.all_roots()

    # -- listing ---------------------------------------------------------------------------
    def refresh(self) -> None:
        if self._busy:
            self._again = True  # the listing under way may miss a folder added meanwhile
            return
        self._busy = True
        roots = self.all_roots()
        self.where.setText(self.where_text(roots))
        run_in_thread(list_runs_with_finals, *roots, on_done=self._listed, on_error=self._list_failed)

    def where_text(self, roots: list[str], found: int | None = None) -> str:
        """The line under the table: where the runs are read from, and with none found, how to make one."""
        where = ("Runs from: " + "; ".join(roots)) if roots else ""
        if found == 0:
            where += (". " if where else "") + ("No runs there yet: press Start in the Run panel or start the demo "
                                                "(Help > Run the demo); Add folder… lists runs kept elsewhere.")
        return where

    def _list_failed(self, err: dict) -> None:
        self._busy = False
        self.message.emit(f"Could not list runs: {err['message']}")

    def _listed(self, found: tuple) -> None:
        infos, finals = found
        self._busy = False
        self.where.setText(self.where_text(self.all_roots(), len(infos)))
        keep = self.selected()
        if self.select_after and self.listing.info(self.select_after) is None and \
                any(i.path == self.select_after for i in infos):
            keep, self.select_after = self.select_after, None
        if self.listing.update(infos, finals) or self.table.rowCount() != len(infos):
            self._fill(keep)
        self.refreshed.emit()
        if self._again:
            self._again = False
            self.refresh()

    def _fill(self, keep: str | None) -> None:
        self.table.fill(self.infos, self.listing.finals)
        if keep:
            self.select(keep)
        self._update_buttons()

    # -- selection -------------------------------------------------------------------------
    def selected(self) -> str | None:
        return self.table.selected()

    def selected_info(self):
        return self.listing.info(self.selected())

    def select(self, run_dir: str) -> bool:
        return self.table.select(run_dir)

    def _selected(self) -> None:
        self._update_buttons()
        path = self.selected()
        if path and path != self._details_for:
            self._details_for = path
            run_in_thread(read_details, path, on_done=lambda d, p=path: self._show_details(p, d))

    def _update_buttons(self) -> None:
        info = self.selected_info()
        has = info is not None
        encoder = is_encoder(info)
        for b in (self.open_btn, self.show_btn):
            b.setEnabled(has)
        for b in (self.overlay_btn, self.use_btn):  # an encoder has no curves, and a config that trains nothing
            b.setEnabled(has and not encoder)
        self.train_btn.setVisible(encoder)
        self.train_btn.setEnabled(encoder)
        self.resume_btn.setVisible(not encoder)
        self.resume_btn.setEnabled(resumable(info))
        self.delete_btn.setEnabled(deletable(info, has and self.protected(info.path)))

    def protected_changed(self) -> None:
        """A run started or stopped training in the window: Delete follows."""
        self._update_buttons()

    def _show_details(self, path: str, d: dict) -> None:
        if path != self.selected():
            return
        self.details = d
        self.config_text.setPlainText(json.dumps(d.get("config") or {}, indent=2))
        self.summary.setHtml(details_html(path, d))

    # -- actions ---------------------------------------------------------------------------
    def open_selected(self) -> None:
        info = self.selected_info()
        if info is not None:
            self.open_requested.emit(info.path, bool(info.live))

    def overlay_selected(self) -> None:
        info = self.selected_info()
        if info is not None:
            self.overlay_requested.emit(info.path, bool(info.live))

    def _context_menu(self, pos) -> QMenu | None:
        """Right-click on a row: what the buttons do, for that row."""
        item = self.table.itemAt(pos)
        if item is None:
            return None
        self.table.selectRow(item.row())
        menu = self.context_menu()
        menu.popup(self.table.viewport().mapToGlobal(pos))
        return menu

    def context_menu(self) -> QMenu:
        """The selected row's actions (the enabled buttons, in their order)."""
        menu = QMenu(self)
        for b in (self.open_btn, self.train_btn, self.overlay_btn, self.resume_btn, self.use_btn, self.show_btn,
                  self.delete_btn):
            if b.isEnabled() and not b.isHidden():
                menu.addAction(b.text(), b.click)
        return menu

    def train_from_selected(self) -> None:
        """"Train from this encoder": its folder's config (read off the GUI thread when not read yet)."""
        info = self.selected_info()
        if not is_encoder(info):
            return
        d = self.details or {}
        if self._details_for == info.path and d.get("config"):
            self.train_from_requested.emit({**d["config"], "run_dir": info.path})
            return
        from engine.runs import read_json

        run_in_thread(read_json, str(Path(info.path) / "config.json"), on_done=lambda c: c and
                      self.train_from_requested.emit({**c, "run_dir": info.path}),
                      on_error=lambda e: self.message.emit(f"Could not read {info.path}: {e['message']}"))

    def _use_config(self) -> None:
        d = self.details or {}
        if d.get("config"):
            self.use_config_requested.emit(d["config"])

    def _show_folder(self) -> None:
        path = self.selected()
        if path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(path))

    @staticmethod
    def _confirm_dialog(parent, text: str) -> bool:
        return QMessageBox.question(parent, "Delete run", text,
                                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                    QMessageBox.StandardButton.Cancel) == QMessageBox.StandardButton.Yes

    def delete_selected(self) -> bool:
        info = self.selected_info()
        if info is None:
            return False
        if not deletable(info, self.protected(info.path)):
            self.message.emit("That run is still running; stop it before deleting it.")
            return False
        if not (Path(info.path) / "config.json").exists():
            self.message.emit(f"{info.path} is not a run folder; nothing deleted.")
            return False
        if not self.confirm(self, f"Delete the run folder\n{info.path}\nwith its checkpoints and results? "
                                  "This cannot be undone."):
            return False

        def done(_v, path=info.path):
            self.message.emit(f"Deleted {path}")
            self._details_for = None
            self.summary.clear()
            self.config_text.clear()
            self.refresh()

        run_in_thread(shutil.rmtree, info.path, on_done=done,
                      on_error=lambda err: self.message.emit(f"Could not delete {info.path}: {err['message']}"))
        return True


def history_view(ctx: ViewContext) -> HistoryPanel:
    """The window's Run history: it lists the run config's runs directory and the folders the user added
    (kept in the settings), lists again when the engine's run starts, ends or stops, and asks the run
    model to open, overlay and resume runs; runs the window trains are never deleted."""
    panel = HistoryPanel(protected=ctx.run.is_protected)
    panel.message.connect(ctx.status)
    panel.folders_changed.connect(ctx.run.set_roots)
    panel.set_extra([p for p in (S.get_json("history/folders") or []) if isinstance(p, str)])
    panel.folders_changed.connect(lambda _roots: S.set_json("history/folders", panel.extra))

    def runs_root(path: str = "") -> None:
        if path in ("", "runs_root"):
            root = Path(ctx.config.get("runs_root") or "runs").expanduser()
            panel.set_roots([str(root.resolve())])

    runs_root()
    ctx.config.changed.connect(runs_root)
    ctx.run.runChanged.connect(panel.show_run)
    ctx.run.protectedChanged.connect(panel.protected_changed)
    ctx.engine.run_started.connect(lambda _msg: panel.refresh())
    ctx.engine.finished.connect(lambda _msg: panel.refresh())
    ctx.engine.state_changed.connect(lambda _s: panel.refresh() if not ctx.engine.active and ctx.engine.run_dir
                                     else None)

    def open_run(run_dir: str, live: bool) -> None:
        ctx.run.request_open(run_dir, live)
        ctx.show_view("embedding" if is_encoder(panel.listing.info(run_dir)) else "curves")  # an encoder has no curves

    def overlay(run_dir: str, live: bool) -> None:
        ctx.run.request_overlay(run_dir, live)
        ctx.show_view("curves")

    def use_config(cfg: dict) -> None:
        ctx.config.load_dict(cfg)
        ctx.show_view("run")
        ctx.status("Loaded the run's config into the Run panel")

    panel.open_requested.connect(open_run)
    panel.overlay_requested.connect(overlay)
    panel.resume_requested.connect(ctx.run.request_resume)
    panel.use_config_requested.connect(use_config)

    panel.train_from_requested.connect(ctx.train_from_encoder)
    return panel
