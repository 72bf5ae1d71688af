"""Loads the map of a timeline entry: a cached layout at once, or a request to the analysis process
whose stages (a first look, PCA, thumbnails, clusters, layout frames, the final layout) it hands over
as signals for the panel to draw. SnapshotFeed finds the timeline's entries: the run's snapshots on disk."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from app.map.model import Entry, MapState, MapStore
from app.map.requests import MapRequests
from engine.eval.projection import PROJECTION_TITLES
from engine.messages import MapStage


class MapLoader(QObject):
    display = Signal(object, object, bool)  # (MapState, coords or None to keep the points, animate)
    status = Signal(str, bool)  # (text, error)
    busy = Signal(bool)
    progress = Signal(int, int)  # (done, total)
    failed = Signal(str)
    shown = Signal(str)  # the key of the map now drawn (a first look or the first stage)
    finished = Signal(str)  # the projection whose final layout is drawn
    metaArrived = Signal(object)  # MapState: thumbnails, class names, labels
    extrasArrived = Signal(object)  # MapState: clusters, per-point properties
    moved = Signal(object, int)  # (coords, duration in ms; 0: the map's default)
    entryChanged = Signal()  # an entry learned its step and epoch

    def __init__(self, store: MapStore, requests: MapRequests, parent=None):
        super().__init__(parent)
        self.store, self.requests = store, requests
        self.request_id: int | None = None
        self.pending_key: str | None = None
        self.projection = "umap"
        self._warm_start = False

    def show(self, entry: Entry, projection: str, split: str, sample: int, shown: np.ndarray | None) -> None:
        """Show ``entry`` in ``projection``; ``shown``: the coordinates drawn now (a layout that shows the
        same images starts from them)."""
        store = self.store
        store.current_entry = entry
        self.projection = projection
        coords = store.cached_layout(entry, projection)
        if coords is not None:
            state = store.states[entry.key]
            self.display.emit(state, coords, True)
            self.status.emit(store.summary(state), False)
            return
        if not self.requests.available or not store.run_dir:
            return
        args = {"run_dir": store.run_dir, "projection": projection, "key": entry.key,
                **store.map_source(entry, split, sample)}
        init = store.warm_start(entry, shown)
        self._warm_start = bool(init)
        args.update(init, thumbs=store.needs_thumbs(entry))
        self.pending_key = entry.key
        self.request_id = self.requests.map(args, self._on_progress, self._on_partial, self._on_done, self._on_error)
        self.busy.emit(True)
        self.status.emit(f"Computing the map ({entry.title})…", False)

    def cancel(self) -> None:
        self.requests.cancel_map()
        self.request_id = None
        self.pending_key = None
        self.busy.emit(False)

    def _computing(self) -> str:
        return f" · computing {PROJECTION_TITLES[self.projection]}…"

    def _end(self) -> None:
        self.requests.map_finished()
        self.request_id = None
        self.pending_key = None
        self.busy.emit(False)

    # -- the replies ---------------------------------------------------------------------------------------
    def _on_progress(self, p) -> None:
        self.progress.emit(p.done, p.total)
        if p.detail:
            self.status.emit(p.detail + "…", False)

    def _on_error(self, err: dict) -> None:
        self._end()
        message = err["message"] or "the map failed"
        self.status.emit(message, True)
        self.failed.emit(message)

    def _on_partial(self, d: dict) -> None:
        store = self.store
        stage, key = MapStage(d["stage"]), d.get("key") or self.pending_key
        if stage is MapStage.PREVIEW:  # part of the sample while the rest is extracted: replaced by the full map
            state = MapState.from_reply(f"{key}#preview", d, with_meta=True)
            entry = store.entry(key)
            state.data = entry.data if entry is not None else ""
            state.layouts["pca"] = np.asarray(d["coords"], np.float32)
            self.display.emit(state, state.layouts["pca"], False)
            self.status.emit(store.summary(state) + f" · a first look at {len(state.indices):,} of "
                                                    f"{d.get('total', 0):,} images; extracting the rest…", False)
            self.shown.emit(state.key)
            return
        if stage is MapStage.FIRST:
            state = store.first_map(key, d)
            self.entryChanged.emit()
            same = self._warm_start and store.current is not None and state.same_points(store.current)
            self.display.emit(state, None if same else state.layouts["pca"], True)
            if not d.get("final"):
                self.status.emit(store.summary(state) + self._computing(), False)
            self.shown.emit(key)
            return
        state = store.states.get(key)
        if state is None:
            return
        if stage is MapStage.META:
            store.apply_meta(state, d, store.entry(key))
            if state is store.current:
                self.metaArrived.emit(state)
                self.status.emit(store.summary(state) + (self._computing() if self.request_id is not None else ""),
                                 False)
        elif stage is MapStage.EXTRAS:
            state.clusters = d.get("clusters")
            state.properties = dict(d.get("properties") or {})
            if state is store.current:
                self.extrasArrived.emit(state)
        elif stage is MapStage.LAYOUT and state is store.current:
            self.moved.emit(d["coords"], 250)

    def _on_done(self, d: dict) -> None:
        state = self.store.states.get(d.get("key") or self.pending_key)
        if state is None:
            return
        proj = d.get("projection", self.projection)
        state.layouts[proj] = np.asarray(d["coords"], np.float32)
        if state is self.store.current:
            self.moved.emit(state.layouts[proj], 0)
        self._end()
        seconds = d.get("seconds")
        extra = f" · {PROJECTION_TITLES[proj]} in {seconds:.1f} s" if seconds else ""
        self.status.emit(self.store.summary(state) + extra, False)
        self.finished.emit(proj)


class SnapshotFeed(QObject):
    """The embedding snapshots of the run shown, on disk (a headless job's too): listed when the run opens,
    polled every 10 s while it trains and once more when it ends. Answers about a run shown before are
    dropped."""

    listed = Signal(dict)  # the first listing ({"run_dir", "snapshots"})
    arrived = Signal(list)  # [Entry]: snapshots not on the timeline yet

    def __init__(self, store: MapStore, requests: MapRequests, parent=None):
        super().__init__(parent)
        self.store, self.requests = store, requests
        self.timer = QTimer(self, interval=10_000)
        self.timer.timeout.connect(self.poll)

    def follow(self, on: bool) -> None:
        """Poll (a live run) or not."""
        self.timer.stop()
        if on:
            self.timer.start()

    def list(self, on_error) -> None:
        self.requests.snapshots(self.store.run_dir, self._listed, on_error)

    def poll(self, when_alive: bool = True) -> None:
        """Ask for snapshots not known yet (only while the analysis process is alive, unless told)."""
        if self.store.run_dir and (self.requests.alive or not when_alive):
            self.requests.snapshots(self.store.run_dir, self._polled, kind="snapshots-poll")

    def _listed(self, d: dict) -> None:
        if d.get("run_dir") == self.store.run_dir:
            self.listed.emit(d)

    def _polled(self, d: dict) -> None:
        if d.get("run_dir") == self.store.run_dir:
            new = self.store.unknown_snapshots(d.get("snapshots", []))
            if new:
                self.arrived.emit(new)
