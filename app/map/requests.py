"""Everything the embedding map asks of the analysis process, in one place (one adapter over the
analysis client): the panel passes what to do with each kind of reply."""

from __future__ import annotations

from collections.abc import Callable

Handler = Callable | None


class MapRequests:
    def __init__(self, client=None):
        self.client = client
        self.map_id: int | None = None  # the map request in flight (a newer one cancels it)

    @property
    def available(self) -> bool:
        return self.client is not None

    @property
    def alive(self) -> bool:
        return self.client is not None and self.client.alive

    def snapshots(self, run_dir: str, on_done: Handler, on_error: Handler = None, kind: str = "snapshots") -> None:
        if self.client is not None:
            self.client.request("snapshots", {"run_dir": run_dir}, kind=kind, on_done=on_done, on_error=on_error)

    def map(self, args: dict, on_progress: Handler, on_partial: Handler, on_done: Handler, on_error: Handler) -> int:
        """A map (stages: preview, first, meta, extras, layout; then the final layout); a newer one
        cancels it and its late replies are dropped."""
        self.map_id = self.client.request("map", args, kind="map", on_progress=on_progress, on_partial=on_partial,
                                          on_done=on_done, on_error=on_error)
        return self.map_id

    def map_finished(self) -> None:
        self.map_id = None

    def cancel_map(self) -> None:
        if self.client is not None and self.map_id is not None:
            self.client.cancel(self.map_id)
        self.map_id = None

    def earlier_map(self, args: dict, on_partial: Handler, on_done: Handler, on_error: Handler) -> None:
        """The map of an earlier snapshot the attract/repel figure needs (its own kind: the map shown is not
        cancelled by it, and a newer one replaces it)."""
        self.client.request("map", args, kind="map-earlier", on_partial=on_partial, on_done=on_done,
                            on_error=on_error)

    def retrieve(self, args: dict, on_done: Handler, on_error: Handler) -> None:
        self.client.request("retrieve", args, kind="retrieve", on_done=on_done, on_error=on_error)

    def export_embedding(self, args: dict, on_done: Handler, on_error: Handler, on_reply: Handler) -> int | None:
        return self.client.request("export_embedding", args, on_done=on_done, on_error=on_error, on_reply=on_reply)

    def export_encoder(self, args: dict, on_done: Handler, on_error: Handler, on_reply: Handler) -> int | None:
        return self.client.request("export_encoder", args, on_done=on_done, on_error=on_error, on_reply=on_reply)
