"""Everything the embedding map asks of the analysis process, in one place (one adapter over the
analysis client): the panel passes what to do with each kind of reply."""

from __future__ import annotations

from collections.abc import Callable

from engine.messages import Progress

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

    def _request(self, op: str, args: dict, on_done: Handler = None, on_error: Handler = None,
                 on_progress: Handler = None, on_partial: Handler = None, on_reply: Handler = None,
                 current: Callable[[int], bool] | None = None) -> int | None:
        """Send ``op``; each reply goes to its handler: progress (a Progress), partial and done (the
        reply's dict), error (``{"message": ...}``); ``on_reply`` sees every reply as it came."""
        if self.client is None:
            return None

        def deliver(reply) -> None:
            if current is not None and not current(reply.id):
                return  # the reply of a replaced request
            if reply.kind == "progress" and on_progress:
                d = reply.data
                on_progress(Progress(op, int(d.get("done", 0)), int(d.get("total", 1)), d.get("text") or ""))
            elif reply.kind == "partial" and on_partial:
                on_partial(reply.data)
            elif reply.kind == "result" and on_done:
                on_done(reply.data)
            elif reply.kind == "error" and on_error:
                on_error({"message": reply.data.get("error", "")})
            if on_reply and reply.kind in ("result", "error", "cancelled"):
                on_reply(reply)

        return self.client.request(op, deliver, **args)

    # -- the requests ----------------------------------------------------------------------------------
    def snapshots(self, run_dir: str, on_done: Handler, on_error: Handler = None) -> None:
        self._request("snapshots", {"run_dir": run_dir}, on_done, on_error)

    def map(self, args: dict, on_progress: Handler, on_partial: Handler, on_done: Handler, on_error: Handler) -> int:
        """A map (stages: preview, first, meta, extras, layout; then the final layout). Cancels the map
        asked for before; its late replies are dropped."""
        self.cancel_map()
        self.map_id = self._request("map", {**args, "supersede": "map"}, on_done, on_error, on_progress, on_partial,
                                    current=lambda rid: rid == self.map_id)
        return self.map_id

    def map_finished(self) -> None:
        self.map_id = None

    def cancel_map(self) -> None:
        if self.client is not None and self.map_id is not None:
            self.client.cancel(self.map_id)
        self.map_id = None

    def retrieve(self, args: dict, on_done: Handler, on_error: Handler) -> None:
        self._request("retrieve", args, on_done, on_error)

    def export_embedding(self, args: dict, on_done: Handler, on_error: Handler, on_reply: Handler) -> int | None:
        return self._request("export_embedding", args, on_done, on_error, on_reply=on_reply)

    def export_encoder(self, args: dict, on_done: Handler, on_error: Handler, on_reply: Handler) -> int | None:
        return self._request("export_encoder", args, on_done, on_error, on_reply=on_reply)
