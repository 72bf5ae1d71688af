"""The Data room without Qt: the dataset spec both ways (``parse_spec``: spec -> the Source box's fields,
``build_spec``: fields -> spec) and the summary line of a loaded dataset."""

from __future__ import annotations

from app.models.dataset import ViewDataset
from engine.specs import DEFAULT_COUNT, shapes_colours, shapes_parts, shapes_shortcut

TV_FALLBACK = [{"name": n, "splits": ["train", "test"]} for n in
               ("cifar10", "cifar100", "stl10", "mnist", "fashionmnist", "svhn")]
KINDS = ("Built-in shapes", "Image folder", "torchvision dataset", "Clips")
CLIPS_KIND = 3
DEFAULT_CLIPS = 1200  # builtin:clips without a count (engine.data.clips)


def clips_parts(spec: str) -> dict | None:
    """``builtin:clips[:N]`` -> {"clips_builtin": True, "count": N}; ``clips:FOLDER`` -> {"clips_builtin": False,
    "folder": FOLDER}; None for a spec that does not name clips by itself (a folder of videos is one only once
    loaded: :func:`kind_of_loaded`)."""
    s = (spec or "").strip()
    low = s.lower()
    rest = s[len("builtin:"):] if low.startswith("builtin:") else s if low in ("clips", "clips-test") else None
    if rest is not None:
        name, _, count = rest.partition(":")
        if name.strip().lower() in ("clips", "clips-test"):
            count = count.strip()
            return {"clips_builtin": True, "count": int(count) if count.isdigit() else DEFAULT_CLIPS}
        return None
    if low.startswith("clips:"):
        return {"clips_builtin": False, "folder": s.split(":", 1)[1]}
    return None


def kind_of_loaded(spec: str, is_clips: bool) -> dict:
    """The Source box's fields for a dataset as loaded: ``parse_spec``'s, with a folder that turned out to hold
    clips (videos, or sub-folders of frames) shown as Clips."""
    p = parse_spec(spec)
    if is_clips and p["kind"] == 1:
        return {"kind": CLIPS_KIND, "clips_builtin": False, "folder": p["folder"]}
    return p


def parse_spec(spec: str) -> dict:
    """A dataset spec -> the panel's fields (kind, count, shortcut, light and typical colours, folder, tv
    name/split/root)."""
    s = (spec or "").strip()
    low = s.lower()
    clips = clips_parts(s)
    if clips is not None:
        return {"kind": CLIPS_KIND, **clips}
    parts = shapes_parts(s)
    if parts is not None:
        count, query = parts
        shortcut = shapes_shortcut(query)
        return {"kind": 0, "count": int(count) if count.isdigit() else DEFAULT_COUNT,
                "shortcut": shortcut == "colour", "light": shortcut == "light",
                "typical": shapes_colours(query) == "typical"}
    if low.startswith("torchvision:") or low.startswith("tv:"):
        rest = s.split(":", 1)[1]
        name_part, _, root = rest.partition(":")
        name, _, split = name_part.partition("@")
        return {"kind": 2, "tv_name": name.lower(), "tv_split": split.lower(), "tv_root": root}
    return {"kind": 1, "folder": s}


def build_spec(kind: int, count: int = 0, shortcut: bool = False, folder: str = "", tv_name: str = "",
               tv_split: str = "", tv_root: str = "", light: bool = False, clips_builtin: bool = True,
               typical: bool = False) -> str:
    """The panel's fields -> a dataset spec (the inverse of ``parse_spec``); "" for a folder not chosen.
    ``shortcut``: the colour lesson; ``light``: the light lesson (one of them: colour wins); ``typical``: colours
    that follow the shape (not with the colour lesson). Clips: the built-in ones (``count``) or a folder of clips
    (``folder``)."""
    if kind == CLIPS_KIND:
        if clips_builtin:
            return f"builtin:clips:{count or DEFAULT_CLIPS}"
        return f"clips:{folder.strip()}" if folder.strip() else ""
    if kind == 0:
        options = ["shortcut=colour"] if shortcut else ["shortcut=light"] if light else []
        if typical and not shortcut:
            options.append("colours=typical")
        return f"builtin:shapes:{count}" + ("?" + "&".join(options) if options else "")
    if kind == 1:
        return folder.strip()
    spec = f"torchvision:{tv_name}@{tv_split}"
    if tv_root.strip():
        spec += f":{tv_root.strip()}"
    return spec


def dataset_summary(ds: ViewDataset) -> str:
    """The summary line (rich text): name, image count (and how many the grid shows), size, labels, source."""
    labelled = "labelled, " + f"{len(ds.class_names)} classes" if ds.labelled else "unlabeled"
    total = f"{ds.total:,}" + (f" (the grid shows {len(ds):,})" if ds.total != len(ds) else "")
    return (f"<b>{ds.name or ds.spec}</b><br>{total} images, {ds.image_size}×{ds.image_size} px, "
            f"{labelled}<br><span style='color:#666'>{ds.source or ds.spec}</span>")
