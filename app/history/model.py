"""The Run history without Qt: where runs are listed from (the runs directory and the folders the user
added), what the last listing found, and which runs may be resumed or deleted. The panel
(app/history/panel.py) lists the folders on an I/O thread and shows what this model holds."""

from __future__ import annotations

from pathlib import Path


def resumable(info) -> bool:
    """A run (engine.runs.RunInfo) that stopped, failed or was interrupted, and has a checkpoint."""
    return (info is not None and not info.live and info.state in ("stopped", "interrupted", "failed", "paused")
            and (Path(info.path) / "checkpoints" / "last.pt").exists())


def is_encoder(info) -> bool:
    """An encoder opened with File > Open encoder… (engine.runs.RunInfo.kind), not a run trained here."""
    return info is not None and getattr(info, "kind", "run") == "encoder"


def deletable(info, protected: bool) -> bool:
    """A run nothing writes now: not live, and not ``protected`` (training in this window)."""
    return info is not None and not info.live and not protected


class RunListing:
    def __init__(self):
        self.roots: list[str] = []  # the runs directory
        self.extra: list[str] = []  # folders the user added
        self.infos: list = []  # engine.runs.RunInfo of the last listing
        self.finals: dict = {}  # their final evaluations (app.common.measures.final_of; None: none yet)

    def all_roots(self) -> list[str]:
        return list(dict.fromkeys(self.roots + self.extra))

    def set_roots(self, roots: list[str]) -> bool:
        """Where runs are listed from; True when that changed."""
        roots = [str(Path(r).expanduser()) for r in roots if r]
        if roots == self.roots:
            return False
        self.roots = roots
        return True

    def set_extra(self, folders: list[str]) -> None:
        self.extra = [str(f) for f in folders]

    def add_folder(self, folder: str) -> bool:
        """Add a folder of runs (or one run folder); True when it is new."""
        folder = str(Path(folder).expanduser().resolve())
        if folder in self.extra:
            return False
        self.extra.append(folder)
        return True

    def lists(self, run_dir: str) -> bool:
        """Is ``run_dir`` under a listed folder (or one itself)?"""
        path = Path(run_dir).resolve()
        return str(path.parent) in self.roots or str(path) in self.extra

    def update(self, infos: list, finals: dict | None = None) -> bool:
        """The runs a listing found (and their final evaluations); True when a row changed (path, state, step,
        kNN or whether it is final)."""
        finals = dict(finals or {})
        key = [(i.path, i.state, i.step, i.knn_top1, finals.get(i.path) is None) for i in infos]
        changed = key != [(i.path, i.state, i.step, i.knn_top1, self.finals.get(i.path) is None) for i in self.infos]
        self.infos, self.finals = infos, finals
        return changed

    def info(self, path: str | None):
        return next((i for i in self.infos if i.path == path), None) if path else None
