"""Messages that cross the process boundary (engine -> GUI or CLI) and commands (GUI -> engine).

Plain frozen dataclasses holding python scalars, strings, dicts and numpy arrays only: they pickle
cheaply, never drag torch into the GUI process, and are easy to assert on in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


@dataclass(frozen=True)
class Message:
    """Base class. ``kind`` names the message for logs and dispatch."""

    @property
    def kind(self) -> str:
        return type(self).__name__


# -- engine -> consumer -----------------------------------------------------------------------
@dataclass(frozen=True)
class RunStarted(Message):
    run_dir: str
    config: dict
    device: str
    device_name: str
    num_images: int
    steps_per_epoch: int
    total_steps: int  # 0 when the run is time-bounded
    start_step: int = 0
    resumed: bool = False
    notes: tuple = ()


@dataclass(frozen=True)
class StepMetrics(Message):
    """Means over the steps since the last message (the engine sends a few per second)."""

    step: int
    epoch: float
    values: dict  # loss, lr, images_per_s, and method extras (pretext_acc, ...)
    elapsed_s: float = 0.0
    eta_s: float | None = None
    progress: float = 0.0  # 0..1 of the run's budget


@dataclass(frozen=True)
class EvalResult(Message):
    kind_name: str  # "knn_monitor", "final", "collapse", ...
    step: int
    epoch: float
    values: dict


@dataclass(frozen=True)
class Embedding(Message):
    step: int
    epoch: float
    features: np.ndarray  # (N, D) float32, L2-normalised
    labels: np.ndarray | None  # (N,) int64 or None
    indices: np.ndarray  # (N,) indices into the dataset
    coords: np.ndarray | None = None  # (N, 2) when already projected
    # two-view methods: two views of a few sample images, encoded (P, 2, D) float32 L2-normalised, and the
    # rows of those images in ``features`` (P,) (the map's attract/repel figure); None for other methods
    pair_features: np.ndarray | None = None
    pair_rows: np.ndarray | None = None


@dataclass(frozen=True)
class Reconstruction(Message):
    step: int
    epoch: float
    originals: np.ndarray  # (N, H, W, 3) uint8
    inputs: np.ndarray  # what the model saw (masked, noisy, ...)
    outputs: np.ndarray  # its reconstruction
    caption: str = ""


@dataclass(frozen=True)
class CheckpointSaved(Message):
    path: str
    step: int
    epoch: float


@dataclass(frozen=True)
class StateChanged(Message):
    state: str  # "loading", "running", "paused", "stopping", "evaluating"
    detail: str = ""


@dataclass(frozen=True)
class Progress(Message):
    """Progress of a long preparation step (dataset scan, feature extraction)."""

    task: str
    done: int
    total: int
    detail: str = ""


@dataclass(frozen=True)
class RunFinished(Message):
    reason: str  # "completed", "stopped", "time budget"
    run_dir: str
    step: int
    summary: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunFailed(Message):
    error: str  # one line a person can act on
    traceback: str = ""
    run_dir: str = ""


@dataclass(frozen=True)
class Warning(Message):  # noqa: A001 - the protocol's name
    text: str


@dataclass(frozen=True)
class Collapse(Message):
    """A sign of collapse appeared at ``step`` (:mod:`engine.eval.collapse`): ``where`` is "encoder" (its
    features) or "outputs" (the method's); ``text`` says what it means and what to try."""

    step: int
    where: str
    text: str


# -- consumer -> engine --------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    name: str  # "pause", "resume", "stop", "snapshot", "embed"
    args: dict = field(default_factory=dict)


PAUSE, RESUME, STOP, SNAPSHOT, EMBED = "pause", "resume", "stop", "snapshot", "embed"


# -- analysis requests (engine.analysis <-> the GUI) ------------------------------------------------------
class MapStage(str, Enum):
    """The stages of a map request, in the order their ``Partial`` replies arrive (then ``Result``)."""

    PREVIEW = "preview"  # an evenly spread part of the sample, while the rest is extracted
    FIRST = "first"  # features, labels and the PCA layout: enough to draw the map
    META = "meta"  # thumbnails, class names and paths (when the run's data was not in memory yet)
    EXTRAS = "extras"  # k-means clusters, neighbour agreement, image properties
    LAYOUT = "layout"  # an intermediate UMAP layout (with its ``fraction`` done)


class FeatureSource(str, Enum):
    """Where the features of a map come from."""

    LIVE = "live"  # an Embedding message of the running session (features sent with the request)
    SNAPSHOT = "snapshot"  # a saved embeddings/step_*.npz of the run
    CHECKPOINT = "checkpoint"  # extracted now from the run's checkpoint
