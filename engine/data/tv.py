"""torchvision datasets through torchvision's own classes.

``torchvision:NAME[@SPLIT][:ROOT]``. The files are read from ROOT when present; otherwise they
are downloaded only when the user allows it, and offline without the files the error says
exactly which files to put where.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from engine.data.base import DataError, ImageData, resize_uint8

# name -> (torchvision class, default split, eval split, what must be on disk)
DATASETS = {
    "cifar10": ("CIFAR10", "train", "test", "cifar-10-batches-py/ (from cifar-10-python.tar.gz)"),
    "cifar100": ("CIFAR100", "train", "test", "cifar-100-python/ (from cifar-100-python.tar.gz)"),
    "stl10": ("STL10", "train", "test", "stl10_binary/ (from stl10_binary.tar.gz)"),
    "mnist": ("MNIST", "train", "test", "MNIST/raw/ (the four *-ubyte files)"),
    "fashionmnist": ("FashionMNIST", "train", "test", "FashionMNIST/raw/ (the four *-ubyte files)"),
    "svhn": ("SVHN", "train", "test", "train_32x32.mat and test_32x32.mat"),
}
SPLITS = {
    "cifar10": ("train", "test"),
    "cifar100": ("train", "test"),
    "stl10": ("train", "test", "unlabeled", "train+unlabeled"),
    "mnist": ("train", "test"),
    "fashionmnist": ("train", "test"),
    "svhn": ("train", "test", "extra"),
}
ALIASES = {"cifar-10": "cifar10", "cifar-100": "cifar100", "stl-10": "stl10", "fashion-mnist": "fashionmnist",
           "fmnist": "fashionmnist", "fashion_mnist": "fashionmnist"}


def default_root() -> Path:
    env = os.environ.get("SSLWB_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "ssl-workbench" / "torchvision"


def parse_tv_spec(rest: str) -> tuple[str, str, Path]:
    """``NAME[@SPLIT][:ROOT]`` -> (name, split, root)."""
    name_part, _, root = rest.partition(":")
    name, _, split = name_part.partition("@")
    name = ALIASES.get(name.strip().lower(), name.strip().lower())
    if name not in DATASETS:
        raise DataError(f"unknown torchvision dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    split = split.strip().lower() or DATASETS[name][1]
    if split not in SPLITS[name]:
        raise DataError(f"{name} has no split {split!r}; choose one of: {', '.join(SPLITS[name])}")
    return name, split, Path(root).expanduser() if root.strip() else default_root()


def _construct(name: str, split: str, root: Path, download: bool):
    import torchvision.datasets as tvd

    cls = getattr(tvd, DATASETS[name][0])
    if name in ("stl10", "svhn"):
        return cls(str(root), split=split, download=download)
    return cls(str(root), train=(split == "train"), download=download)


def load_torchvision(rest: str, image_size: int, download: bool = False) -> ImageData:
    name, split, root = parse_tv_spec(rest)
    try:
        ds = _construct(name, split, root, download)
    except RuntimeError as exc:
        if "not found" in str(exc).lower() or "corrupted" in str(exc).lower():
            hint = ("allow downloading (the Download box, or --download on the command line) when online"
                    if not download else "the download did not give valid files; check the connection")
            raise DataError(f"torchvision dataset {name} ({split}) is not in {root}: put "
                            f"{DATASETS[name][3]} there, or {hint}") from None
        raise DataError(f"torchvision dataset {name} could not be read from {root}: {exc}") from None
    except OSError as exc:  # network errors while downloading
        raise DataError(f"could not download {name} to {root}: {exc}. Without internet, put "
                        f"{DATASETS[name][3]} in {root}") from None
    data = ds.data
    arr = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if arr.ndim == 3:  # (N, H, W) grayscale
        images = torch.from_numpy(np.ascontiguousarray(arr)).unsqueeze(1)
    elif arr.shape[-1] == 3:  # (N, H, W, 3)
        images = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2)
    else:  # (N, 3, H, W)
        images = torch.from_numpy(np.ascontiguousarray(arr))
    images = resize_uint8(images, image_size)
    labels_raw = getattr(ds, "targets", None)
    if labels_raw is None:
        labels_raw = getattr(ds, "labels", None)
    labels = None
    classes = list(getattr(ds, "classes", []) or [])
    if name == "svhn":
        classes = [str(i) for i in range(10)]
    if labels_raw is not None:
        labels = torch.as_tensor(np.asarray(labels_raw), dtype=torch.long)
        if (labels < 0).all():  # STL-10 unlabeled split: -1 everywhere
            labels = None
        elif (labels < 0).any():  # train+unlabeled: unlabeled images carry -1
            labels = None
    notes = []
    if labels is None:
        classes = None
        notes.append(f"{name} {split} is unlabeled: label-based evaluation uses the test split")
    eval_split = DATASETS[name][2]
    eval_source = f"torchvision:{name}@{eval_split}:{root}" if split != eval_split else ""
    return ImageData(name=f"{name} ({split})", source=f"torchvision:{name}@{split}:{root}", images=images,
                     labels=labels, class_names=classes, notes=notes, eval_source=eval_source)
