"""Folders too large to keep decoded in memory, where their decoded cache (:mod:`engine.data.shards`)
cannot be written: decoded batch by batch in DataLoader workers.

The batches are uint8 tensors of the same shape the in-memory path gives, so augmentations and
pretext tasks run on the training device exactly as for small datasets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from engine.data.base import StreamedData, digest
from engine.data.decode import decode_image


class _Files(torch.utils.data.Dataset):
    def __init__(self, paths: list[str], size: int):
        self.paths = paths
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return torch.from_numpy(decode_image(self.paths[i], self.size)).permute(2, 0, 1), i, ""
        except Exception as exc:
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8), i, str(exc) or type(exc).__name__


class StreamingFolderData(StreamedData):
    def __init__(self, folder: Path, paths: list, labels: list[int] | None, classes: list[str] | None,
                 image_size: int, notes: list[str], eval_source: str = "", workers: int = 2,
                 skipped: list[tuple[str, str]] | None = None):
        self.name = folder.name
        self.source = str(folder)
        self.paths = [str(p) for p in paths]
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.long)
        self.class_names = classes
        self._size = image_size
        self.notes = list(notes) + [f"{len(paths)} images are streamed from disk (too large to keep in memory)"]
        self.skipped: list[tuple[str, str]] = list(skipped or [])  # files found bad so far
        self._skipped_paths = {p for p, _ in self.skipped}
        self.eval_source = eval_source
        self.device = torch.device("cpu")
        self.workers = workers
        self._identity = ""

    @property
    def image_size(self) -> int:
        return self._size

    def get(self, indices) -> torch.Tensor:
        arrs = []
        for i in np.asarray(indices).tolist():
            try:
                arrs.append(decode_image(self.paths[i], self._size))
            except Exception:
                arrs.append(np.zeros((self._size, self._size, 3), np.uint8))
        return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).to(self.device)

    def identity(self) -> str:
        """What names these images: their files and the image size."""
        if not self._identity:
            self._identity = digest(self.source, self._size, "\n".join(self.paths))
        return self._identity

    def reading_order(self, order: torch.Tensor) -> torch.Tensor:
        return order  # every image is a file of its own: any order reads as fast

    def batches(self, batch_size: int, order: torch.Tensor, drop_last: bool = True,
                start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        order = order.cpu()
        n = len(order)
        stop = n - (n % batch_size) if drop_last else n
        chunks = [order[b:b + batch_size].tolist() for b in range(start * batch_size, stop, batch_size)]
        loader = torch.utils.data.DataLoader(
            _Files(self.paths, self._size), batch_sampler=chunks, num_workers=self.workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False)
        for images, idx, errors in loader:
            bad = [k for k, e in enumerate(errors) if e]
            for k in bad:
                path = self.paths[int(idx[k])]
                if path not in self._skipped_paths:  # reported once, not once an epoch
                    self._skipped_paths.add(path)
                    self.skipped.append((path, errors[k]))
            if bad:
                keep = torch.as_tensor([k for k in range(len(errors)) if not errors[k]], dtype=torch.long)
                images, idx = images[keep], idx[keep]
            labels = None if self.labels is None else self.labels[idx].to(self.device, non_blocking=True)
            yield images.to(self.device, non_blocking=True), labels, idx.to(self.device)

    def summary(self) -> dict:
        info = {"name": self.name, "source": self.source, "num_images": len(self), "image_size": self._size,
                "labelled": self.labelled, "class_names": list(self.class_names or []),
                "skipped": len(self.skipped), "skipped_files": [list(x) for x in self.skipped],
                "streaming": True}
        if self.labels is not None and self.class_names:
            counts = torch.bincount(self.labels, minlength=len(self.class_names)).tolist()
            info["class_counts"] = dict(zip(self.class_names, counts))
        return info
