"""The dataset the window shows: a memory-mapped ``(N, H, W, 3)`` uint8 array and its metadata
(for clips, each clip's middle frame, and the clips themselves as a second array).

The service process decodes the dataset and writes the array once; the window maps it, so a
50k-image grid costs no memory beyond the thumbnails on screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ViewDataset:
    spec: str
    image_size: int
    images: np.ndarray  # (N, H, W, 3) uint8, memory-mapped
    labels: np.ndarray | None = None  # (N,) int64
    class_names: list[str] | None = None
    paths: list[str] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    name: str = ""
    source: str = ""
    total: int = 0  # images in the dataset (the grid may show fewer)
    images_path: str = ""
    eval_source: str = ""
    streaming: bool = False
    download: bool = False  # torchvision: loaded with download allowed
    clips: np.ndarray | None = None  # clips (N, T, H, W, C) uint8, memory-mapped (C = 4: the object's mask)

    @classmethod
    def from_result(cls, res: dict) -> ViewDataset:
        images = np.load(res["images_path"], mmap_mode="r")
        clips = np.load(res["clips_path"], mmap_mode="r") if res.get("clips_path") else None
        labels = res.get("labels")
        return cls(spec=res["spec"], image_size=int(res["image_size"]), images=images,
                   labels=None if labels is None else np.asarray(labels, dtype=np.int64),
                   class_names=res.get("class_names"), paths=res.get("paths"),
                   skipped=[tuple(s) for s in res.get("skipped", [])], notes=list(res.get("notes", [])),
                   name=res.get("name", ""), source=res.get("source", ""), total=int(res.get("total", len(images))),
                   images_path=res["images_path"], eval_source=res.get("eval_source", ""),
                   streaming=bool(res.get("streaming", False)), clips=clips)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def labelled(self) -> bool:
        return self.labels is not None and bool(self.class_names) and len(self.class_names) > 1

    def label_name(self, i: int) -> str:
        if self.labels is None or not self.class_names:
            return ""
        k = int(self.labels[i])
        return self.class_names[k] if 0 <= k < len(self.class_names) else str(k)

    def class_counts(self) -> list[tuple[str, int]]:
        if self.labels is None or not self.class_names:
            return []
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return list(zip(self.class_names, counts.tolist()))

    def indices_of_class(self, k: int) -> np.ndarray:
        if self.labels is None:
            return np.arange(len(self))
        return np.flatnonzero(self.labels == k)

    def describe(self, i: int) -> str:
        parts = [f"#{i}"]
        if self.labels is not None:
            parts.append(self.label_name(i))
        if self.paths:
            parts.append(self.paths[i])
        return "  ".join(parts)
