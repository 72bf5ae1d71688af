"""Datasets: the built-in shapes, image folders and torchvision datasets behind one spec string.

``load_dataset(spec, image_size)`` accepts:
- ``builtin:shapes`` (``builtin:shapes:N`` for N images; ``shapes`` works too;
  ``builtin:shapes:N?shortcut=colour`` brings back the colour shortcut, see ``engine.data.shapes``),
- a folder path (class sub-folders give labels; a flat folder is unlabeled),
- ``torchvision:NAME[@SPLIT][:ROOT]`` (cifar10, cifar100, stl10, mnist, fashionmnist, svhn).
"""

from __future__ import annotations

import threading
from pathlib import Path

from engine.data.base import Cancelled, DataError, ImageData, ProgressFn, resize_uint8, stratified_split
from engine.data.shapes import SHAPES

BUILTIN = ("shapes",)


def describe_spec(spec: str) -> str:
    kind, _ = _split_spec(spec)
    return kind


def _split_spec(spec: str) -> tuple[str, str]:
    spec = (spec or "").strip()
    if not spec:
        raise DataError("no dataset given; use builtin:shapes, a folder path, or torchvision:NAME[:ROOT]")
    low = spec.lower()
    if low.startswith("builtin:"):
        return "builtin", _query_after_colon(spec[len("builtin:"):])
    if low in BUILTIN or low.startswith(("shapes:", "shapes?")):
        return "builtin", _query_after_colon(spec)
    if low.startswith("torchvision:") or low.startswith("tv:"):
        return "torchvision", spec.split(":", 1)[1]
    return "folder", spec


def _query_after_colon(rest: str) -> str:
    """``shapes?shortcut=colour`` -> ``shapes:?shortcut=colour``: the name, a colon, then count and options."""
    name, sep, query = rest.partition("?")
    if sep and ":" not in name:
        return f"{name}:?{query}"
    return rest


def load_dataset(spec: str, image_size: int = 32, *, download: bool = False,
                 progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                 max_images: int = 0, memory_limit_mb: int = 0, workers: int = 4,
                 use_cache: bool = True, seed: int = 0):
    """Load a dataset by spec. Raises :class:`DataError` with a message a user can act on."""
    if not 8 <= int(image_size) <= 512:
        raise DataError(f"image size {image_size} is out of range; choose 8 to 512 pixels")
    kind, rest = _split_spec(spec)
    if kind == "builtin":
        from engine.data.shapes import load_shapes, parse_shapes_query

        name, _, count = rest.partition(":")
        name = name.strip().lower()
        split = "train"
        if name == "shapes-test":
            name, split = "shapes", "test"
        if name not in BUILTIN:
            raise DataError(f"unknown built-in dataset {name!r}; choose one of: {', '.join(BUILTIN)}")
        try:
            n, options = parse_shapes_query(count)
        except ValueError as exc:
            raise DataError(str(exc)) from None
        if max_images:
            n = min(n, max_images)
        if progress:
            progress(0, n, "generating shapes")
        data = load_shapes(n, image_size, split=split, seed=seed, shortcut=options["shortcut"])
        if progress:
            progress(n, n, "generated")
        return data
    if kind == "torchvision":
        from engine.data.tv import load_torchvision

        data = load_torchvision(rest, image_size, download=download)
        if max_images and len(data) > max_images:
            import numpy as np

            keep = np.sort(np.random.default_rng(0).choice(len(data), max_images, replace=False))
            data = data.subset(keep)
        return data
    from engine.data.folder import load_folder

    path = Path(rest).expanduser()
    return load_folder(path, image_size, progress=progress, cancel=cancel, use_cache=use_cache,
                       max_images=max_images, memory_limit_mb=memory_limit_mb, workers=workers)


def check_dataset(spec: str, image_size: int = 32) -> dict:
    """A quick check that ``spec`` can be loaded, without loading it: the spec parses, a folder
    exists and holds images of which at least one decodes (and so does its ``val/`` split).
    Raises :class:`DataError` with the same message loading would give. Entry points call it
    before they create a run folder, so a bad dataset never leaves a stub run behind.
    Returns ``{"kind", "labelled"}`` (``labelled`` is None when only loading can tell)."""
    if not 8 <= int(image_size) <= 512:
        raise DataError(f"image size {image_size} is out of range; choose 8 to 512 pixels")
    kind, rest = _split_spec(spec)
    if kind == "builtin":
        from engine.data.shapes import parse_shapes_spec

        name, _, count = rest.partition(":")
        if name.strip().lower() not in BUILTIN + ("shapes-test",):
            raise DataError(f"unknown built-in dataset {name.strip().lower()!r}; choose one of: {', '.join(BUILTIN)}")
        try:
            parse_shapes_spec(count.strip())
        except ValueError as exc:
            raise DataError(str(exc)) from None
        return {"kind": kind, "labelled": True}
    if kind == "torchvision":
        from engine.data.tv import parse_tv_spec

        parse_tv_spec(rest)
        return {"kind": kind, "labelled": True}
    from engine.data.folder import check_folder

    return {"kind": kind, "labelled": check_folder(Path(rest).expanduser(), image_size)}


__all__ = ["load_dataset", "check_dataset", "ImageData", "DataError", "Cancelled", "stratified_split", "resize_uint8", "SHAPES"]
