"""The configuration of a run: plain dataclasses that go to and from JSON.

A run is fully described by a :class:`RunConfig`. The run folder stores it as ``config.json``;
the GUI edits it through a form built from the field metadata (:mod:`engine.params`); the CLI
sets it from flags. ``method_options`` holds the chosen method's own config as a dict (each
method declares its dataclass in ``engine/methods``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.params import ConfigError, from_dict, param, to_dict
from engine.specs import shapes_parts, shapes_shortcut

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
OPTIMIZERS = ("adamw", "sgd", "lars")


@dataclass
class DataConfig:
    spec: str = param("builtin:shapes", "What to train on: builtin:shapes[:N][?shortcut=colour|light][&colours=typical], "
                      "an image folder path, "
                      "or torchvision:NAME[:ROOT]", label="dataset")
    image_size: int = param(32, "Images are resized (shorter side) and centre-cropped to this many pixels",
                            min=8, max=512)
    eval_spec: str = param("", "A labelled dataset to evaluate on (kNN monitor, final probe). "
                           "Empty: hold out a part of the training data", label="eval dataset")
    holdout_fraction: float = param(0.1, "Part of a labelled training set held out for evaluation "
                                    "when no eval dataset is given", min=0.0, max=0.5, advanced=True)
    max_images: int = param(0, "Use at most this many training images (0: all)", min=0, advanced=True)
    download: bool = param(False, "Allow torchvision datasets to be downloaded when missing")
    in_memory_limit_mb: int = param(2048, "Datasets smaller than this are decoded once into one uint8 "
                                    "tensor on the training device; larger ones stream", min=0,
                                    advanced=True)
    workers: int = param(2, "Decoding workers for streamed datasets", min=0, max=64, advanced=True)


@dataclass
class OptimConfig:
    optimizer: str = param("adamw", "Optimiser", choices=OPTIMIZERS)
    lr: float = param(1e-3, "Peak learning rate (after warm-up)", min=1e-7, max=10.0, log=True,
                      label="learning rate")
    weight_decay: float = param(1e-4, "Weight decay", min=0.0, max=1.0, log=True)
    momentum: float = param(0.9, "Momentum (SGD and LARS)", min=0.0, max=0.999, advanced=True)
    batch_size: int = param(0, "Images per step, over all processes (each of N processes takes 1/N). 0 (auto): the "
                            "method's batch for the device: its CPU batch on a CPU; on a GPU a larger one sized to "
                            "the GPU's free memory, the learning rate scaled with it", min=2, max=65536, zero="auto")
    warmup_fraction: float = param(0.05, "Part of the run spent warming the learning rate up",
                                   min=0.0, max=0.5, advanced=True)
    schedule: str = param("cosine", "Learning-rate schedule after warm-up", choices=("cosine", "constant"),
                          advanced=True)
    grad_clip: float = param(0.0, "Clip the gradient norm to this (0: off)", min=0.0, advanced=True)


@dataclass
class EvalConfig:
    knn_every_epochs: int = param(1, "Online kNN monitor every N epochs (0: off)", min=0)
    knn_k: int = param(20, "Neighbours for kNN", min=1, max=1000)
    knn_temperature: float = param(0.07, "Temperature of the weighted kNN vote", min=0.001, max=10.0)
    bank_size: int = param(10000, "Labelled training images used as the kNN memory bank", min=10)
    monitor_size: int = param(2000, "Held-out images scored by the online kNN monitor", min=10)
    linear_probe_epochs: int = param(100, "Epochs of the final linear probe (0: skip)", min=0, max=10000)
    final_eval: bool = param(True, "Run kNN and the linear probe at the end of the run")
    embed_every_epochs: int = param(0, "Save an embedding snapshot every N epochs (0: off)", min=0)
    embed_size: int = param(5000, "Images in an embedding snapshot", min=10, max=100000)
    snapshot_every_s: float = param(0.0, "Embedding snapshot and kNN monitor every N seconds of training, and "
                                    "one before the first step (0: only by epochs). Spaced out further when "
                                    "they would cost training more than 10% of its speed", min=0.0, max=86400.0)


@dataclass
class RunConfig:
    method: str = param("simclr", "Self-supervised method (see `python main.py methods`)")
    backbone: str = param("auto", "Encoder: auto (small_cnn on CPU, resnet18 on GPU), small_cnn, "
                          "resnet18, vit_tiny, ...")
    init: str = param("", "Start the backbone from an encoder's weights instead of random ones: torchvision:NAME:WEIGHTS, "
                      "timm:NAME, a weights file (with its architecture) or a run folder; the backbone becomes "
                      "its architecture. Empty: random init", label="initial weights", advanced=True)
    init_arch: str = param("", "The architecture of an initial weights file: torchvision:NAME, timm:NAME or a "
                           "workbench backbone (not needed for names and run folders)", label="its architecture",
                           advanced=True)
    init_select: str = param("", "Which network of an initial checkpoint that holds several (teacher, student, "
                             "base_encoder, momentum_encoder, ...); empty: the teacher, else the online network",
                             label="network in the file", advanced=True)
    epochs: int = param(0, "Train for this many epochs (0: use minutes)", min=0, max=100000)
    minutes: float = param(0.0, "Train for this many minutes (0: use epochs)", min=0.0, max=100000.0)
    device: str = param("auto", "auto, cpu, cuda or mps", choices=DEVICES)
    precision: str = param("auto", "auto (bf16/fp16 on GPU; bf16 on CPUs that compute it natively, "
                           "AMX or AVX512-BF16, else fp32), fp32, bf16, fp16",
                           choices=PRECISIONS, advanced=True)
    gather: bool = param(True, "Several processes: losses that couple samples (contrastive negatives, "
                         "cross-correlation, variance, DINO's centre) see the global batch, gathered from every "
                         "process; off: each process's own batch (for comparison)", advanced=True)
    sync_bn: str = param("auto", "Several processes: BatchNorm statistics over the global batch (auto: on GPUs)",
                         choices=("auto", "on", "off"), advanced=True)
    compile: bool = param(False, "Compile the training step with torch.compile (GPU speed; the first steps "
                          "are slow while it compiles)", advanced=True)
    seed: int = param(0, "Random seed: the same seed reproduces the run on the CPU", min=0, max=2**31 - 1)
    checkpoint_every_minutes: float = param(5.0, "Write a checkpoint every N minutes (0: off)", min=0.0,
                                            advanced=True)
    checkpoint_every_epochs: int = param(0, "Keep a checkpoint every N epochs (0: only the last)", min=0,
                                         advanced=True)
    name: str = param("", "A name for the run folder (made safe; empty: method and dataset)")
    runs_root: str = param("runs", "Folder that holds run folders", advanced=True)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method_options: dict = field(default_factory=dict)

    def check(self, path: str = "") -> None:
        from engine.methods import get_method_class

        cls = get_method_class(self.method)  # raises ConfigError listing the methods
        from_dict(cls.Config, self.method_options, "method_options")

    def method_config(self):
        from engine.methods import get_method_class

        return from_dict(get_method_class(self.method).Config, self.method_options, "method_options")

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        return from_dict(cls, data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """Read a config JSON file; every problem is a one-line :class:`ConfigError` naming the file."""
        path = Path(path)
        data = read_config_json(path)
        if not isinstance(data, dict):
            raise ConfigError("", f"config file {path} must hold a JSON object ({{...}}), "
                                  f"not a {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(exc.path, f"{exc.message} (in config file {path})") from None

    def save(self, path: str | Path) -> None:
        from engine.runs import atomic_write_text

        atomic_write_text(Path(path), self.to_json())


MAX_CONFIG_BYTES = 4 * 2**20


def read_config_json(path: Path):
    """The parsed content of a config file, checked to be a readable, not too large UTF-8 JSON file."""
    import os
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError("", f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path} ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        hint = " (a run folder's config is its config.json)" if (path / "config.json").exists() else ""
        raise ConfigError("", f"{path} is a folder, not a config file; give a config JSON file{hint}")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError("", f"{path} is not a regular file (a pipe or device?); give a config JSON file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError("", f"{path} is {st.st_size / 2**20:.0f} MB, too large for a config file; "
                              "give a config JSON file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path} ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError("", f"config file {path} is not a text (UTF-8 JSON) file; "
                              "give a config JSON file such as a run's config.json") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError("", f"config file {path} is not valid JSON ({exc})") from None


# The built-in shapes' colours are random by design, so two views that keep an image's colours can be told
# apart by colour alone (the shortcut): on them every method with view augmentations runs colour jitter at
# full strength and crops of at least 40% (measured: BYOL 0.44 -> 0.62 kNN at the same 368 steps). The
# ``?shortcut=colour`` variant keeps the methods' own recipes: it is the lesson of why this matters.
SHAPES_RECIPE = {"augment": {"hue": 0.5, "gray_p": 0.5, "crop_scale_min": 0.4}}


def data_recipe(spec: str) -> dict:
    """Method options that a dataset recommends to every method trained on it (a method takes the ones
    it has; what a user sets wins): today the built-in shapes' ``augment`` (see SHAPES_RECIPE)."""
    parts = shapes_parts(spec)
    if parts is not None and shapes_shortcut(parts[1]) != "colour":
        return json.loads(json.dumps(SHAPES_RECIPE))  # the ?shortcut=light lesson is about RotNet: it keeps it
    return {}


def recipe_options(option_names, spec: str) -> dict:
    """The part of ``data_recipe(spec)`` that a method with options ``option_names`` takes."""
    return {k: v for k, v in data_recipe(spec).items() if k in set(option_names)}


def apply_run_defaults(base: dict, run_defaults: dict) -> dict:
    """A method's ``run_defaults()`` applied to the config dict ``base`` (in place, and returned), section by
    section, all but its batch size: that is the method's batch on a CPU, which auto (0) takes there
    (engine.training.batch), so a config keeps auto."""
    for section, values in run_defaults.items():
        if isinstance(values, dict):
            base[section].update({k: v for k, v in values.items() if (section, k) != ("optim", "batch_size")})
        else:
            base[section] = values
    return base


def default_config(method: str = "simclr", **overrides) -> RunConfig:
    """The recommended config for ``method``: the method's own optimiser and data defaults applied, and
    what the dataset (``data.spec`` of the overrides) recommends (:func:`data_recipe`)."""
    from dataclasses import fields

    from engine.methods import get_method_class

    cls = get_method_class(method)
    base = apply_run_defaults(RunConfig(method=method).to_dict(), cls.run_defaults())
    base["method_options"] = to_dict(cls.Config())
    spec = (overrides.get("data") or {}).get("spec", base["data"]["spec"])
    base["method_options"].update(recipe_options([f.name for f in fields(cls.Config)], spec))
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key].update(value)
        else:
            base[key] = value
    return RunConfig.from_dict(base)


__all__ = ["RunConfig", "DataConfig", "OptimConfig", "EvalConfig", "ConfigError", "default_config", "data_recipe",
           "recipe_options", "apply_run_defaults", "SHAPES_RECIPE"]
