"""The Embedding map panel: the map of a run's embeddings with its controls, legend, timeline and side tabs.

The state lives in a Qt-free store (app/map/model.py); the pieces are their own widgets (the map in
map_widget.py, controls, legend, timeline, neighbours, selection, the Export menu in export_button.py);
maps are loaded by loader.py, exports written by export.py, and everything asked of the analysis process
goes through one adapter (requests.py). Each piece gets the store and narrow inputs, never the panel;
this class puts them together and connects them. It holds plain numpy arrays only.

Feed it (``map_view(ctx)`` does, for the window):
    panel.set_run(run_dir, live)       # open a run (finished or live): its snapshots fill the timeline
    panel.on_engine_message(msg)       # RunStarted / Embedding messages of the live engine
    panel.embedRequested -> engine.embed   # "Snapshot now" during a live run
    panel.engine_trains = predicate    # is this live run the one the engine (that takes snapshots) trains?
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSplitter, QTabWidget, QVBoxLayout, QWidget

from app.common.measures import read_run_facts
from app.common.tasks import run_in_thread
from app.common.view import View, ViewContext
from app.map.attract import AttractOverlay
from app.map.controls import MapControls, StatusRow
from app.map.export import MapExports
from app.map.export_button import ExportButton
from app.map.legend import MapLegend, palette_for
from app.map.loader import MapLoader, SnapshotFeed
from app.map.map_widget import EmbeddingMap
from app.map.model import COLOR_CLUSTER, Entry, MapState, MapStore
from app.map.neighbours import NeighboursTab
from app.map.pairs import figure, has_pairs, snapshots_wanted
from app.map.requests import MapRequests
from app.map.selection import SelectionTab
from app.map.timeline import MapTimeline
from app.models.run_model import RunRef
from engine.messages import MapStage


class EmbeddingPanel(QWidget, View):
    embedRequested = Signal()  # a live run: ask the engine for a fresh snapshot
    statusMessage = Signal(str)
    mapShown = Signal(str)  # key of the map now drawn (stage "first" or a final layout)
    layoutFinished = Signal(str)  # projection name when a final layout is drawn
    imagePicked = Signal(str, int, str, str)  # (run_dir, index, split, data): a point was clicked

    def __init__(self, client=None, parent=None, engine_trains: Callable[[str | None], bool] | None = None):
        """``client``: the analysis client; ``engine_trains(run_dir)``: does the engine that answers
        ``embedRequested`` train this live run (default: every live run is its)? Other live runs (a
        headless job's) are mapped from their checkpoint."""
        super().__init__(parent)
        self.engine_trains = engine_trains or (lambda _run_dir: True)
        self.store = MapStore()
        self.requests = MapRequests(client)
        self.loader = MapLoader(self.store, self.requests, self)
        self._build()
        self.exports = MapExports(self.store, self.requests, lambda: self.map.coords, lambda: self.projection_name,
                                  lambda: self.color_by.currentText(), self.figure, self.set_status, self)
        self.map.describe = self.store.describe
        self.timeline_bar.ready = lambda: self.request_id is None and not self.map.animating
        self.feed = SnapshotFeed(self.store, self.requests, self)  # the run's snapshots on disk
        self._connect()
        self._update_enabled()

    def _build(self) -> None:
        """The widgets: controls and status row, the figure (map and legend) beside the side tabs, the timeline."""
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        root.setSpacing(4)
        export = ExportButton(lambda: str(Path(self.run_dir) / "export") if self.run_dir else "",
                              self.export_embedding, self.save_png, lambda path, fmt: self.export_encoder(path, fmt))
        self.controls = c = MapControls(export)
        self.status_row = StatusRow()
        self.map = EmbeddingMap()
        self.map.setMinimumSize(360, 300)
        self.attract = AttractOverlay(self.map.plot, self.map)  # the attract/repel figure (two-view methods)
        self.earlier_asked: tuple | None = None  # the earlier snapshot's map the figure asked for, on its way
        self.legend_panel = MapLegend()
        self.figure = QFrame()  # what "Map as PNG" saves: the map and its legend
        fl = QHBoxLayout(self.figure)
        fl.setContentsMargins(0, 0, 0, 0)
        fl.setSpacing(2)
        fl.addWidget(self.map, 1)
        fl.addWidget(self.legend_panel)
        self.neighbours_tab, self.selection_tab = NeighboursTab(), SelectionTab()
        self.side = QTabWidget()
        self.side.setMinimumWidth(260)
        self.side.addTab(self.neighbours_tab, "Neighbours")
        self.side.addTab(self.selection_tab, "Selection")
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.figure)
        split.addWidget(self.side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setSizes([800, 300])
        self.timeline_bar = MapTimeline()
        self.alarm = QLabel("")  # a collapse sign of the run (engine.messages.Collapse, or its record)
        self.alarm.setObjectName("alarm")
        self.alarm.setWordWrap(True)
        self.alarm.setStyleSheet("QLabel#alarm { color: #8a1c1c; background: #fdecea; border: 1px solid #f5c2c0;"
                                 " padding: 4px 8px; }")
        self.alarm.hide()
        for w in (c, self.status_row, self.alarm):
            root.addWidget(w)
        root.addWidget(split, 1)
        root.addWidget(self.timeline_bar)
        # the parts tests and benches reach
        self.projection, self.color_by, self.mode_buttons, self.sample, self.split = \
            c.projection, c.color_by, c.mode_buttons, c.sample, c.split
        self.status, self.legend = self.status_row.label, self.legend_panel.list
        self.timeline, self.timeline_label = self.timeline_bar.slider, self.timeline_bar.label
        self.follow, self.k, self.neighbors = self.timeline_bar.follow, self.neighbours_tab.k, self.neighbours_tab.grid
        self.sel_grid, self.histogram = self.selection_tab.grid, self.selection_tab.histogram

    def _connect(self) -> None:
        c, ld = self.controls, self.loader
        self.feed.listed.connect(self._on_snapshots)
        self.feed.arrived.connect(self._on_new_snapshots)
        c.projectionChanged.connect(self._on_projection)
        c.colorChanged.connect(self._recolor)
        c.modeChanged.connect(self.map.set_mode)
        c.refreshClicked.connect(self.refresh)
        c.attractToggled.connect(lambda _on: self.show_attract())
        self.map.animationFinished.connect(self.show_attract)
        self.status_row.cancelClicked.connect(self.cancel)
        self.legend_panel.entryClicked.connect(self._on_legend_click)
        self.neighbours_tab.kChanged.connect(lambda _k: self.show_neighbors(self.clicked_row)
                                             if self.clicked_row >= 0 else None)
        self.neighbours_tab.searchAll.connect(self._search_all)
        self.neighbours_tab.picked.connect(self._on_neighbor_click)
        self.selection_tab.picked.connect(lambda i: self._on_pick_row(int(self.selected_rows[i]))
                                          if i < len(self.selected_rows) else None)
        self.timeline_bar.moved.connect(self._on_timeline)
        self.timeline_bar.exportGif.connect(self.exports.ask_gif)
        self.map.hoveredChanged.connect(self._on_hover)
        self.map.pointClicked.connect(self._on_pick_row)
        self.map.selectionChanged.connect(self.set_selection)
        ld.display.connect(self._display)
        ld.status.connect(self.set_status)
        ld.busy.connect(self.status_row.busy)
        ld.progress.connect(self.status_row.set_progress)
        ld.failed.connect(lambda text: self.map.set_message("No map: " + text) if self.current is None else None)
        ld.shown.connect(self.mapShown)
        ld.finished.connect(self.layoutFinished)
        ld.metaArrived.connect(self._on_meta)
        ld.extrasArrived.connect(lambda _s: self._fill_color_choices())
        ld.moved.connect(lambda xy, ms: self.map.move_to(xy, animate=True, **({"duration_ms": ms} if ms else {})))
        ld.entryChanged.connect(lambda: self.timeline_bar.set_text(self.store.timeline_text(self.timeline.value()))
                                if self.entries else None)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(1100, 700)

    # -- the state, read where the panel used to hold it -------------------------------------------------------
    client = property(lambda self: self.requests.client)
    request_id = property(lambda self: self.loader.request_id)  # the map request in flight
    run_dir = property(lambda self: self.store.run_dir)
    entries = property(lambda self: self.store.entries)
    thumb_cache = property(lambda self: self.store.thumb_cache)
    selected_rows = property(lambda self: self.store.selected_rows)
    clicked_row = property(lambda self: self.store.clicked_row)
    neighbor_rows = property(lambda self: self.store.neighbor_rows)
    error_shown = property(lambda self: self.status_row.error)
    projection_name = property(lambda self: self.controls.projection_name)
    live = property(lambda self: self.store.live, lambda self, on: setattr(self.store, "live", on))
    current = property(lambda self: self.store.current, lambda self, s: setattr(self.store, "current", s))

    # -- public API --------------------------------------------------------------------------------------------
    def set_client(self, client) -> None:
        self.requests.client = client
        self._update_enabled()

    def set_run(self, run_dir: str | None, live: bool = False) -> None:
        """Show the maps of ``run_dir`` (its snapshots, or a fresh map from its checkpoint)."""
        self.cancel()
        self.store.open(run_dir, live)
        self.map.set_points(np.zeros((0, 2), np.float32))  # and forgets the previous run's rings
        self.show_attract()
        self.map.set_headline("")
        self._show_alarm()
        self.neighbours_tab.clear()
        self.selection_tab.clear()
        self.timeline_bar.set_entries(0, 0, "no snapshots")
        self._update_enabled()
        self.feed.follow(bool(live and self.run_dir))
        if not self.run_dir:
            self.map.set_message("No run open")
            return
        self.map.set_message("Loading the map…")
        self.set_status(f"Run {self.store.run_name}: looking for embedding snapshots…")
        self.feed.list(lambda e: self.set_status(e["message"], error=True))
        self.read_facts()

    def read_facts(self) -> None:
        """The run's final evaluation, what its monitor scores and its collapse signs, read off the GUI thread."""
        run_dir = self.run_dir
        if run_dir:
            run_in_thread(read_run_facts, run_dir, on_done=self._on_facts, on_error=lambda _e: None)

    def _on_facts(self, facts: dict) -> None:
        if facts.get("run_dir") != self.run_dir:
            return  # another run is shown now
        self.store.set_facts(facts)
        self._show_headline()
        self._show_alarm()

    def _show_headline(self) -> None:
        self.map.set_headline(self.store.headline(), self.store.headline_detail())

    def _show_alarm(self) -> None:
        text = self.store.alarm_text()
        self.alarm.setText("⚠ " + text if text else "")
        self.alarm.setVisible(bool(text))

    def wait_for_run(self, name: str = "") -> None:
        """A run was started or resumed here: its map comes with the engine's first messages."""
        self.cancel()
        self.store.open(None)
        self.map.set_points(np.zeros((0, 2), np.float32))
        self.show_attract()
        self.map.set_headline("")
        self._show_alarm()
        self.timeline_bar.set_entries(0, 0, "no snapshots yet")
        self._update_enabled()
        what = f"The run {name} is starting" if name else "The run is starting"
        self.map.set_message(f"{what}:\nits map appears with its first embedding snapshot")
        self.set_status(f"{what}: reading its data; the first embedding snapshot follows within seconds")

    def on_engine_message(self, msg) -> None:
        """RunStarted / Embedding / RunFinished messages of the live engine session."""
        kind = type(msg).__name__
        if kind == "RunStarted":
            self.set_run(msg.run_dir, live=True)
        elif kind == "EvalResult" and msg.kind_name == "knn_monitor" and self.live:
            if self.store.knn.add(msg.step, msg.values):
                self._show_headline()
        elif kind == "Collapse" and self.live:
            self.store.add_alarm(msg.step, msg.where, msg.text)
            self._show_alarm()
        elif kind == "Embedding":
            self._add_entry(Entry.live_message(msg), show=self.follow.isChecked() or self.current is None)
        elif kind in ("RunFinished", "RunFailed"):
            self.live = False
            self.feed.follow(False)
            self._update_enabled()
            if kind == "RunFinished":
                self.feed.poll(when_alive=False)
                self.read_facts()  # its final evaluation: the headline shows it

    def refresh(self) -> None:
        """A live run of the engine: ask it for a snapshot; any other run (finished, or written by a headless
        job) is mapped from its checkpoint."""
        if not self.run_dir:
            return
        if self.live and self.engine_trains(self.run_dir):
            self.embedRequested.emit()
            self.set_status("Asked the training engine for a fresh embedding snapshot…")
            return
        split, data = self.controls.source()
        entry = Entry.checkpoint(split, self.sample.value(), data)
        self.store.states.pop(entry.key, None)
        self._add_entry(entry, show=True)

    def cancel(self) -> None:
        self.loader.cancel()

    def show_entry(self, entry: Entry) -> None:
        shown = self.map.coords if self.current is not None and self.map.count == len(self.current.indices) else None
        self.loader.show(entry, self.projection_name, self.controls.source()[0], self.sample.value(), shown)

    def set_loaded_dataset(self, ds) -> None:
        """The dataset loaded in the Data view (app.models.dataset.ViewDataset) can be mapped with the run's
        encoder: "Map from checkpoint" offers it next to the run's own images."""
        if ds is not None:
            self.controls.set_loaded(ds.spec, ds.name or ds.spec, int(getattr(ds, "total", len(ds))))

    # -- the timeline ------------------------------------------------------------------------------------------
    def _on_new_snapshots(self, new: list[Entry]) -> None:
        for i, entry in enumerate(new):
            self._add_entry(entry, show=i == len(new) - 1 and self.follow.isChecked() and self.request_id is None)

    def _on_snapshots(self, d: dict) -> None:
        if not self.live:  # a run opened later: its headline from the kNN it logged
            for rec in d.get("knn", []):
                self.store.knn.add(rec["step"], rec)
        for s in d.get("snapshots", []):
            self._add_entry(Entry.snapshot(s), show=False)
        if self.entries:
            self.timeline.setValue(len(self.entries) - 1)
            self.show_entry(self.entries[-1])
        elif not self.live:
            self.refresh()
        else:
            self.map.set_message("The map appears with the first embedding snapshot\n(or press Snapshot now)")
            self.set_status("Live run: waiting for an embedding snapshot (eval.snapshot_every_s or "
                             "eval.embed_every_epochs), or press Snapshot now")

    def _add_entry(self, entry: Entry, show: bool) -> None:
        i = self.store.add_entry(entry)
        at = i if show else min(self.timeline.value(), len(self.entries) - 1)
        self.timeline_bar.set_entries(len(self.entries), i if show else None, self.store.timeline_text(at))
        if show:
            self.show_entry(entry)

    def _on_timeline(self, i: int) -> None:
        if 0 <= i < len(self.entries):
            self.timeline_bar.set_text(self.store.timeline_text(i))
            self.show_entry(self.entries[i])

    # -- drawing a map -----------------------------------------------------------------------------------------
    def _display(self, state: MapState, coords: np.ndarray | None, animate: bool = True) -> None:
        """Draw ``state``; ``coords`` None keeps the points where they are (a warm start in progress)."""
        prev = self.current
        same = coords is None or (prev is not None and state.same_points(prev) and self.map.count == len(coords))
        self.store.show(state, same)
        if prev is not state:
            self._fill_color_choices()
            self._show_headline()
            if not state.key.startswith("ckpt:"):
                self.controls.show_count(len(state.indices))
            elif "#" not in state.key and len(state.indices) < int(state.key.rsplit(":", 1)[1]):
                self.controls.show_count(len(state.indices))  # fewer images than asked for: the box says so
        if same:
            self.map.thumbs = state.thumbs
            self._recolor()
            if coords is None:
                return
            self.map.move_to(coords, animate=animate)
        else:
            self._recolor()  # stores the new colours; set_points draws with them
            self.map.set_points(coords, state.thumbs)
            self.neighbours_tab.clear()
            self.set_selection(np.zeros(0, np.int64))
        if self.clicked_row >= 0:
            self.show_neighbors(self.clicked_row)
        self._update_enabled()
        self.show_attract()

    def show_attract(self) -> None:
        """Draw the attract/repel figure when it is asked for and the map shown carries pairs of views."""
        button = self.controls.attract
        button.setEnabled(has_pairs(self.current))
        fig = None
        if button.isChecked() and button.isEnabled() and self.map.count:
            fig = figure(self.store, self.map.coords, self.projection_name, self.clicked_row)
        if fig is not None:
            self._load_earlier()
        top = 6
        for label in (self.map.headline, self.map.headline_detail):
            if label.isVisibleTo(self.map):
                top = max(top, label.y() + label.height() + 2)
        self.attract.draw(fig, top)

    def _load_earlier(self) -> None:
        """Map the earlier snapshots the figure needs (one at a time, in the layout shown as a start): their
        trails and arrows appear as they arrive."""
        cur = self.current
        wanted = snapshots_wanted(self.store, cur) if self.requests.available and self.run_dir else []
        if not wanted or self.map.count != len(cur.indices):
            return
        entry, projection = wanted[0], self.projection_name
        if self.earlier_asked == (self.run_dir, entry.key, projection):
            return  # on its way (a redraw asks again; a new request would cancel it)
        self.earlier_asked = (self.run_dir, entry.key, projection)
        args = {"run_dir": self.run_dir, "projection": projection, "key": entry.key, "thumbs": False,
                **self.store.map_source(entry, "eval", len(cur.indices)),
                "init": self.map.coords.copy(), "init_indices": cur.indices}

        def partial(d: dict) -> None:  # a map like any other: thumbnails from the cache, then its clusters
            if d.get("key") != entry.key or self.store.run_dir != args["run_dir"]:
                return
            if MapStage(d["stage"]) is MapStage.FIRST and entry.key not in self.store.states:
                state = self.store.states[entry.key] = MapState.from_reply(entry.key, d)
                self.store.apply_meta(state, {}, entry)
            elif MapStage(d["stage"]) is MapStage.EXTRAS and entry.key in self.store.states:
                state = self.store.states[entry.key]
                state.clusters, state.properties = d.get("clusters"), dict(d.get("properties") or {})

        def done(d: dict) -> None:
            self.earlier_asked = None
            state = self.store.states.get(entry.key)
            if state is None or self.store.run_dir != args["run_dir"]:
                return
            state.layouts[d.get("projection", projection)] = np.asarray(d["coords"], np.float32)
            if has_pairs(state):  # an older snapshot without pairs: the figure goes no further back
                self.show_attract()

        def failed(_err: dict) -> None:  # the figure makes do with the snapshots it has
            self.earlier_asked = None

        self.requests.earlier_map(args, partial, done, failed)

    def _on_meta(self, state: MapState) -> None:
        self.map.thumbs = state.thumbs
        self._fill_color_choices()

    def _fill_color_choices(self) -> None:
        self.controls.set_color_choices(self.store.color_choices())
        self._recolor()

    def _recolor(self) -> None:
        c = self.store.coloring(self.color_by.currentText() or COLOR_CLUSTER)
        if c is None:
            self.legend_panel.clear()
            return
        palette = palette_for(c)
        self.legend_panel.show_coloring(c, palette, self.store.isolated)
        self.map.set_colors(c.idx, palette, c.dim)

    def _on_legend_click(self, i: int) -> None:
        self.store.toggle_isolated(i)
        self._recolor()

    # -- hover, click, neighbours, selection ----------------------------------------------------------------
    def _on_hover(self, row: int) -> None:
        if row >= 0 and self.current is not None:
            self.statusMessage.emit(f"image #{int(self.current.indices[row])} {self.store.label_text(row)}")

    def _on_pick_row(self, row: int) -> None:
        self.store.clicked_row = row
        self.side.setCurrentIndex(0)
        self.show_neighbors(row)
        self.show_attract()
        s = self.current
        if s is not None and 0 <= row < len(s.indices) and self.run_dir:
            self.imagePicked.emit(self.run_dir, int(s.indices[row]), s.split or "eval", s.data or "")

    def show_neighbors(self, row: int) -> None:
        found = self.store.query(row, self.k.value())
        if found is not None:
            self.map.set_focus(row)
            self.map.set_marked(found[0])
            self.neighbours_tab.show_query(self.store, row, *found)

    def _on_neighbor_click(self, i: int) -> None:
        rows = self.neighbor_rows
        if rows is not None and i < len(rows):
            self._on_pick_row(int(rows[i]))

    def _search_all(self) -> None:
        s = self.current
        if s is None or self.clicked_row < 0 or not self.requests.available:
            return
        self.set_status("Searching all images…")
        self.requests.retrieve({"run_dir": self.run_dir, "index": int(s.indices[self.clicked_row]), "split": s.split,
                                "k": self.k.value(), **({"data": s.data} if s.data else {})}, self._on_retrieved,
                               lambda e: self.set_status(e["message"], error=True))

    def _on_retrieved(self, d: dict) -> None:
        self.store.neighbor_rows = None
        self.neighbours_tab.show_retrieved(d)
        self.set_status(f"Nearest neighbours among all {d.get('bank_size', 0):,} images of the set")

    def set_selection(self, rows: np.ndarray) -> None:
        self.store.select(rows)
        if self.current is None:
            return
        self.selection_tab.show_selection(self.store)
        if len(self.selected_rows):
            self.side.setCurrentIndex(1)
        self._recolor()

    # -- export (app/map/export.py writes) ----------------------------------------------------------------------
    def export_embedding(self, path: str, callback=None) -> int | None:
        return self.exports.embedding(path, callback)

    def export_gif(self, path: str, callback=None) -> bool:
        return self.exports.gif(path, callback)

    def save_png(self, path: str) -> bool:
        return self.exports.png(path)

    def export_encoder(self, path: str, fmt: str = "own", callback=None, show: bool = True) -> int | None:
        return self.exports.encoder(path, fmt, callback, show)

    def shown_step(self) -> int | None:
        """The training step of the map drawn now (None: no map, or one from a checkpoint of unknown step)."""
        return self.current.step if self.current is not None else None

    def set_following(self, on: bool) -> None:
        """Jump to each new snapshot of a live run (the timeline's Follow box)."""
        self.follow.setChecked(on)

    # -- the view protocol -------------------------------------------------------------------------------------
    def show_run(self, ref: RunRef) -> None:
        """The window opened a run; a started or resumed one arrives with the engine's RunStarted (until then
        the map says it is starting)."""
        if ref.origin == "opened":
            self.set_run(ref.run_dir, ref.live)
        else:
            self.wait_for_run(ref.name)

    def is_ready(self) -> bool:
        if not self.run_dir or self.error_shown:
            return True
        return self.current is not None and self.request_id is None and not self.map.animating

    def shutdown(self) -> None:
        self.cancel()
        self.feed.follow(False)
        self.timeline_bar.stop()

    # -- misc --------------------------------------------------------------------------------------------------
    def save_state(self) -> str:
        """What the map remembers between sessions: the projection, the attract/repel figure on or off, and
        which images a map from the checkpoint shows (JSON). Not the image count: the box shows the count of the
        map last drawn (``MapControls.show_count``), a tiny run's would cut the next run's map short."""
        split = self.split.currentData()
        return json.dumps({"projection": self.projection_name, "attract": self.controls.attract.isChecked(),
                           "split": split if split in ("eval", "train") else "eval"})

    def restore_state(self, state) -> None:
        """Gets back what :meth:`save_state` wrote; a state it cannot read (an older or damaged settings file)
        changes nothing."""
        try:
            saved = json.loads(str(state))
        except (TypeError, ValueError):
            return
        if not isinstance(saved, dict):
            return
        for box, key in ((self.projection, "projection"), (self.split, "split")):
            i = box.findData(saved.get(key))
            if i >= 0:
                box.setCurrentIndex(i)
        if isinstance(saved.get("attract"), bool):
            self.controls.attract.setChecked(saved["attract"])

    def _on_projection(self) -> None:
        if self.store.current_entry is not None:
            self.show_entry(self.store.current_entry)

    def set_status(self, text: str, error: bool = False) -> None:
        if self.status_row.set_text(text, error):
            self.statusMessage.emit(text)

    def _update_enabled(self) -> None:
        has_run = bool(self.run_dir) and self.requests.available
        self.controls.set_run_state(has_run, self.live)
        self.neighbours_tab.search_all.setEnabled(has_run)


def map_view(ctx: ViewContext) -> EmbeddingPanel:
    """The window's Embedding map: it asks the analysis process for maps, the training client for snapshots of
    the run it trains, and follows the run model's opened runs and the client's messages."""
    panel = EmbeddingPanel(ctx.analysis, engine_trains=ctx.run.owns_live)
    panel.embedRequested.connect(ctx.engine.embed)
    panel.statusMessage.connect(ctx.status)
    ctx.engine.message.connect(panel.on_engine_message)  # a started run arrives with RunStarted
    ctx.run.runChanged.connect(panel.show_run)
    ctx.run.datasetChanged.connect(panel.set_loaded_dataset)
    panel.imagePicked.connect(ctx.run.choose_point)  # the Inspector's Attention tab shows where it looks
    return panel
