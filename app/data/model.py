"""The Data room without Qt: the dataset spec both ways (``parse_spec``: spec -> the Source box's fields,
``build_spec``: fields -> spec) and the summary line of a loaded dataset."""

from __future__ import annotations

from app.models.dataset import ViewDataset
from engine.specs import DEFAULT_COUNT, shapes_parts, shapes_shortcut

TV_FALLBACK = [{"name": n, "splits": ["train", "test"]} for n in
               ("cifar10", "cifar100", "stl10", "mnist", "fashionmnist", "svhn")]
KINDS = ("Built-in shapes", "Image folder", "torchvision dataset")


def parse_spec(spec: str) -> dict:
    """A dataset spec -> the panel's fields (kind, count and shortcut, folder, tv name/split/root)."""
    s = (spec or "").strip()
    low = s.lower()
    parts = shapes_parts(s)
    if parts is not None:
        count, query = parts
        shortcut = shapes_shortcut(query)
        return {"kind": 0, "count": int(count) if count.isdigit() else DEFAULT_COUNT,
                "shortcut": shortcut == "colour", "light": shortcut == "light"}
    if low.startswith("torchvision:") or low.startswith("tv:"):
        rest = s.split(":", 1)[1]
        name_part, _, root = rest.partition(":")
        name, _, split = name_part.partition("@")
        return {"kind": 2, "tv_name": name.lower(), "tv_split": split.lower(), "tv_root": root}
    return {"kind": 1, "folder": s}


def build_spec(kind: int, count: int = 0, shortcut: bool = False, folder: str = "", tv_name: str = "",
               tv_split: str = "", tv_root: str = "", light: bool = False) -> str:
    """The panel's fields -> a dataset spec (the inverse of ``parse_spec``); "" for a folder not chosen.
    ``shortcut``: the colour lesson; ``light``: the light lesson (one of them: colour wins)."""
    if kind == 0:
        return f"builtin:shapes:{count}" + ("?shortcut=colour" if shortcut else "?shortcut=light" if light else "")
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
