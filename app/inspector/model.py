"""What the Inspector's tabs work on, without Qt: the analysis client that computes, the run shown (its
folder, whether it trains now, its method and config) and the folders of runs it is compared with. The
panel opens a run here; every tab reads it (``tab.target``) and never the panel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.common.run_text import NO_RUN_YET


class InspectorModel:
    def __init__(self, client=None, runs_roots: tuple = (), roots: Callable[[], list[str]] | None = None,
                 method_info: Callable[[str], dict | None] | None = None):
        """``client``: the analysis client (None: nothing can be asked); ``runs_roots``: folders of runs to
        compare with; ``roots()``: more of them (the Run history's); ``method_info(name)``: a method's
        catalogue entry."""
        self.client = client
        self.runs_roots = tuple(str(r) for r in runs_roots)
        self.roots = roots
        self.method_info = method_info
        self.run_dir: str | None = None
        self.live = False
        self.method: str | None = None  # the shown run's method
        self.config: dict = {}
        self.encoder: dict | None = None  # an opened encoder's entry (encoder.json), None for a trained run
        self.loaded: set[str] = set()  # the tabs that loaded what they show for this run

    def all_roots(self) -> list[str]:
        roots = list(self.runs_roots)
        if self.roots is not None:
            roots += [str(r) for r in self.roots()]
        return list(dict.fromkeys(roots))

    def open(self, run_dir: str | None, live: bool = False) -> bool:
        """Show ``run_dir`` (None: no run); True when it is another run than the one shown before."""
        other = (str(run_dir) if run_dir else None) != self.run_dir
        self.run_dir = str(run_dir) if run_dir else None
        self.live = live
        self.loaded = set()
        if self.run_dir:
            from engine.runs import encoder_entry, read_json

            self.config = read_json(Path(self.run_dir) / "config.json", {}) or {}
            self.encoder = encoder_entry(self.run_dir)
            self.method = self.config.get("method") or self.method
        else:
            self.encoder = None
        return other

    @property
    def is_encoder(self) -> bool:
        """Is the folder shown an opened encoder (File > Open encoder…), not a trained run?"""
        return self.encoder is not None

    def header(self) -> str:
        """The line above the tabs: the run, its method and data, and whether it trains."""
        if not self.run_dir:
            return f"No run open: {NO_RUN_YET}."
        data = (self.config.get("data") or {}).get("spec", "?")
        if self.encoder is not None:
            e = self.encoder
            return f"{Path(self.run_dir).name} · encoder {e.get('name') or e.get('spec', '?')} ({e.get('arch', '?')}) on {data}"
        return (f"{Path(self.run_dir).name} · {self.config.get('method', '?')} on {data}"
                + (" · training" if self.live else ""))

    def captions(self) -> list[str]:
        """The run's method's captions of a reconstruction (original, model input, output), or []."""
        info = self.method_info(self.method) if self.method_info is not None and self.method else None
        return [str(c) for c in (info or {}).get("reconstruct_captions") or []]

    def first_show(self, tab: str) -> bool:
        """Is this the first time ``tab`` is shown for this run (cheap tabs load then)?"""
        if tab in self.loaded:
            return False
        self.loaded.add(tab)
        return True
