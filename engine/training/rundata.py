"""The run's data: the one place where a run's splits and fixed samples are made.

The training session and everything that re-opens a run folder later (the analysis worker, the
evaluation protocol) call :func:`prepare_data` with the run's config, so the hold-out split, the kNN
bank and the indices of the embedding snapshots (``embeddings/step_*.npz``) are the same images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine import seeds
from engine.data import DataError, has_clips, input_mismatch, load_dataset, stratified_split
from engine.params import ConfigError


@dataclass
class RunData:
    data: object  # the training images (after the hold-out split; every frame of clips for image methods)
    eval_data: object | None  # labelled query images for kNN / the linear probe (None: no evaluation)
    bank_data: object | None  # labelled bank images for kNN (None: no evaluation)
    embed_source: object  # where the embedding and reconstruction samples come from
    embed_idx: np.ndarray  # the fixed embedding-snapshot sample (sorted indices into embed_source)
    recon_idx: np.ndarray  # the fixed reconstruction sample (indices into embed_source)
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, key: str):
        """Mapping access (``rd["embed_source"]``) for callers that hold the run's data as a dict."""
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def ready(self, cfg, method_cls, device) -> RunData:
        """Check that the method can train on this data and place it (see :meth:`place`)."""
        if method_cls.needs_labels and not self.data.labelled:
            raise ConfigError("method", f"{cfg.method} needs labels, and {cfg.data.spec} is unlabeled; "
                                        "choose a dataset with class folders or another method")
        self.place(device, cfg.data.in_memory_limit_mb)
        return self

    def place(self, device, memory_limit_mb: float) -> None:
        """Small datasets live on the training device as one uint8 tensor."""
        if self.data.streaming or device.type == "cpu":
            return
        if getattr(self.data, "clips", self.data.images).numel() / 2**20 <= memory_limit_mb:
            self.data.to(device)


def prepare_data(cfg, progress: Callable[[int, int, str], None] | None = None, *, download: bool | None = None,
                 tolerate_missing_eval: bool = False) -> RunData:
    """The data of the run ``cfg``: training, evaluation and bank splits, the fixed samples, notes.

    ``download``: fetch torchvision sets that are missing (default: ``cfg.data.download``; re-opening
    a finished run passes False). ``tolerate_missing_eval``: an evaluation set that cannot be read
    becomes a note instead of a DataError (re-opening a run whose eval folder has moved).

    Clips: a method that trains on clips (``input_kind == "clips"``) needs them (a ConfigError on
    single images); a method that trains on images trains on every frame of the training clips
    (``ClipData.frame_data``). Evaluation, the kNN bank and the samples stay one frame per clip (the
    middle one) for every method, so image and clip methods are scored on the same images.
    """
    from engine.methods import get_method_class

    input_kind = get_method_class(cfg.method).input_kind
    dc = cfg.data
    download = dc.download if download is None else download
    data = load_dataset(dc.spec, dc.image_size, download=download, progress=progress, max_images=dc.max_images,
                        memory_limit_mb=dc.in_memory_limit_mb, workers=dc.workers, seed=seeds.DATASET_SEED)
    notes = list(getattr(data, "notes", []))
    if len(data) < 2:
        raise DataError(f"the dataset {dc.spec} has {len(data)} image(s); training needs at least 2")
    mismatch = input_mismatch(cfg.method, input_kind, has_clips(data), dc.spec)
    if mismatch:
        raise ConfigError("method", mismatch)
    eval_data = None
    eval_spec = dc.eval_spec or data.eval_source
    if eval_spec:
        try:
            eval_data = load_dataset(eval_spec, dc.image_size, download=download, seed=seeds.DATASET_SEED,
                                     memory_limit_mb=dc.in_memory_limit_mb)
        except DataError as exc:
            if not tolerate_missing_eval:
                raise
            notes.append(f"the evaluation set {eval_spec} cannot be read ({exc})")
        if eval_data is not None and not eval_data.labelled:
            notes.append(f"the evaluation set {eval_spec} is unlabeled: kNN and the linear probe are skipped")
            eval_data = None
        elif eval_data is not None and data.labelled and eval_data.class_names != data.class_names:
            notes.append("the evaluation set's classes differ from the training set's: "
                         "the kNN bank and probe use the evaluation set's own labels split in two")
    elif data.labelled and dc.holdout_fraction > 0 and not data.streaming:
        train_idx, hold_idx = stratified_split(data.labels, len(data), dc.holdout_fraction,
                                               seed=seeds.HOLDOUT_SPLIT_SEED)
        if len(hold_idx) >= 2:
            eval_data = data.subset(hold_idx)
            data = data.subset(train_idx)
            notes.append(f"held out {len(hold_idx)} labelled images for evaluation "
                         f"({dc.holdout_fraction:.0%}); training on {len(data)}")
    if not data.labelled and eval_data is None:
        from engine.data import why_unlabelled

        notes.append(f"the dataset {why_unlabelled(data)}: kNN accuracy and the linear probe are skipped; the loss "
                     "and the collapse indicator still show progress")
    bank_data = data if data.labelled and (eval_data is None or eval_data.class_names == data.class_names) \
        else None
    if eval_data is not None and bank_data is None:
        # labels only in the eval set: split it into a bank and a query half
        tr, te = stratified_split(eval_data.labels, len(eval_data), 0.5, seed=seeds.BANK_SPLIT_SEED)
        bank_data, eval_data = eval_data.subset(tr), eval_data.subset(te)

    # fixed samples for the embedding and reconstruction snapshots
    src = eval_data if eval_data is not None else data
    rng = seeds.snapshot_rng(cfg.seed)
    embed_idx = np.sort(rng.choice(len(src), size=min(cfg.eval.embed_size, len(src)), replace=False))
    recon_idx = rng.choice(len(src), size=min(seeds.RECONSTRUCTION_SAMPLES, len(src)), replace=False)
    if has_clips(data) and input_kind == "images":
        notes.append(f"{cfg.method} trains on images: every frame of the {len(data)} training clips "
                     f"({len(data) * data.frames} images); evaluation embeds each clip's middle frame")
        data = data.frame_data()
    return RunData(data, eval_data, bank_data, src, embed_idx, recon_idx, notes)


__all__ = ["RunData", "prepare_data"]
