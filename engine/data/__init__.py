"""Datasets: the built-in shapes, image folders and torchvision datasets behind one spec string.

``load_dataset(spec, image_size)`` accepts:
- ``builtin:shapes`` (``builtin:shapes:N`` for N images; ``shapes`` works too;
  ``builtin:shapes:N?shortcut=colour`` brings back the colour shortcut, ``?colours=typical`` gives each
  shape typical colours, see ``engine.data.shapes``),
- ``builtin:clips`` (``builtin:clips:N`` for N clips of the shapes moving, :mod:`engine.data.clips`),
- ``clips:PATH``: a folder of clips (one sub-folder of frames per clip, or video files; class
  folders above them give labels); a folder that holds video files is read as clips without it,
- a folder path (class sub-folders give labels; a flat folder is unlabeled),
- ``torchvision:NAME[@SPLIT][:ROOT]`` (cifar10, cifar100, stl10, mnist, fashionmnist, svhn).
"""

from __future__ import annotations

import threading
from pathlib import Path

from engine.data.base import Cancelled, DataError, ImageData, ProgressFn, resize_uint8, stratified_split
from engine.data.shapes import SHAPES

BUILTIN = ("shapes", "clips")


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
    if low.startswith("clips:"):
        return "clips", spec.split(":", 1)[1]
    return "folder", spec


def builtin_dataset(rest: str) -> tuple[str, str, int, dict]:
    """What follows ``builtin:`` (``shapes-test:500?shortcut=colour``) -> (name, split, count, options):
    the built-in dataset it names, its count and options checked; a :class:`DataError` otherwise. Loading,
    the quick check and the worker's form check all read a built-in spec here."""
    name, _, count = rest.partition(":")
    name, split = name.strip().lower(), "train"
    if name in ("shapes-test", "clips-test"):
        name, split = name[:-5], "test"
    if name not in BUILTIN:
        raise DataError(f"unknown built-in dataset {name!r}; choose one of: {', '.join(BUILTIN)}")
    try:
        if name == "clips":
            from engine.data.clips import parse_clips_spec

            return name, split, parse_clips_spec(count.strip()), {}
        from engine.specs import parse_shapes_query

        n, options = parse_shapes_query(count)
        return name, split, n, options
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _query_after_colon(rest: str) -> str:
    """``shapes?shortcut=colour`` -> ``shapes:?shortcut=colour``: the name, a colon, then count and options."""
    name, sep, query = rest.partition("?")
    if sep and ":" not in name:
        return f"{name}:?{query}"
    return rest


CLIP_CHOICES = "builtin:clips, clips:FOLDER (one sub-folder of frames per clip) or a folder of videos"


def spec_is_clips(spec: str) -> bool:
    """Whether ``spec`` names clips (``builtin:clips[:N]``, ``clips:FOLDER``, a folder of video files),
    decided without loading it."""
    try:
        kind, rest = _split_spec(spec)
    except DataError:
        return False
    if kind == "clips":
        return True
    if kind == "builtin":
        return rest.partition(":")[0].strip().lower() in ("clips", "clips-test")
    if kind == "folder":
        from engine.data.clip_folder import holds_clips

        path = Path(rest).expanduser()
        return path.is_dir() and holds_clips(path)
    return False


def has_clips(data) -> bool:
    """Whether a loaded dataset is clips (:class:`engine.data.clips.ClipData`)."""
    return getattr(data, "clips", None) is not None


def input_mismatch(method: str, input_kind: str, clips: bool, spec: str) -> str | None:
    """The one-line message when ``method`` (whose ``input_kind`` is "images" or "clips") cannot train
    on the data ``spec`` (``clips``: whether they are clips); None when it can. Image methods train on
    the frames of clips, so only a clip method on single images is a mismatch."""
    if input_kind == "clips" and not clips:
        return f"{method} trains on clips, and {spec} holds single images; choose {CLIP_CHOICES}"
    return None


def load_dataset(spec: str, image_size: int = 32, *, download: bool = False,
                 progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                 max_images: int = 0, memory_limit_mb: int = 0, workers: int = 4,
                 use_cache: bool = True, seed: int = 0):
    """Load a dataset by spec. Raises :class:`DataError` with a message a user can act on."""
    if not 8 <= int(image_size) <= 512:
        raise DataError(f"image size {image_size} is out of range; choose 8 to 512 pixels")
    kind, rest = _split_spec(spec)
    if kind == "builtin":
        name, split, n, options = builtin_dataset(rest)
        n = min(n, max_images) if max_images else n
        if name == "clips":
            from engine.data.clips import load_builtin_clips

            if progress:
                progress(0, n, "generating clips")
            return load_builtin_clips(n, image_size, split=split, seed=seed)
        from engine.data.shapes import load_shapes

        if progress:
            progress(0, n, "generating shapes")
        data = load_shapes(n, image_size, split=split, seed=seed, shortcut=options["shortcut"],
                           colours=options["colours"])
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
    from engine.data.clip_folder import holds_clips, load_clip_folder
    from engine.data.folder import load_folder

    path = Path(rest).expanduser()
    if kind == "clips" or (path.is_dir() and holds_clips(path)):
        return load_clip_folder(path, image_size, progress=progress, cancel=cancel, max_clips=max_images,
                                workers=workers)
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
        builtin_dataset(rest)
        return {"kind": kind, "labelled": True}
    if kind == "torchvision":
        from engine.data.tv import parse_tv_spec

        parse_tv_spec(rest)
        return {"kind": kind, "labelled": True}
    if kind == "clips":
        path = Path(rest).expanduser()
        if not path.is_dir():
            raise DataError(f"{path}: no such folder of clips; give a folder with one sub-folder of frames per clip")
        return {"kind": kind, "labelled": None}
    from engine.data.folder import check_folder

    return {"kind": kind, "labelled": check_folder(Path(rest).expanduser(), image_size)}


ONE_CLASS = "only one class folder ("  # how a folder scan's note begins when it found a single class


def why_unlabelled(data) -> str:
    """Why ``data`` has no usable labels, for a message after its name: a single class folder (labels need
    two classes at least) or no class folders at all."""
    for note in getattr(data, "notes", None) or []:
        if note.startswith(ONE_CLASS) and ")" in note:
            name = note[len(ONE_CLASS):note.index(")")]
            return (f"has only one class folder ({name}), and labels need at least two classes: add a folder "
                    "for each other class")
    return "has no labels (its images are not in class folders)"


__all__ = ["why_unlabelled", "load_dataset", "check_dataset", "ImageData", "DataError", "Cancelled", "stratified_split", "resize_uint8", "SHAPES",
           "spec_is_clips", "has_clips", "input_mismatch", "CLIP_CHOICES"]
