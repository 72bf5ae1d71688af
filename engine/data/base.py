"""The dataset objects the session, previews and evaluation share."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.errors import BadInput, Interrupted

ProgressFn = Callable[[int, int, str], None]


class DataError(BadInput, ValueError):
    """A dataset cannot be used; the message says why and what to do."""


class Cancelled(Interrupted, RuntimeError):
    """Loading was cancelled by the user."""


@dataclass
class ImageData:
    """A dataset held as one uint8 tensor ``(N, 3, H, W)`` (on the CPU or the training device).

    ``labels`` is None for unlabeled data, ``paths`` is None for generated or packed datasets.
    ``skipped`` lists ``(path, reason)`` for every file of the source that could not be used
    (unreadable, not a regular file, a duplicate link); a subset keeps its source's list.
    """

    name: str
    source: str
    images: torch.Tensor
    labels: torch.Tensor | None = None
    class_names: list[str] | None = None
    paths: list[str] | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    eval_source: str = ""  # a spec for the matching evaluation split, when the source has one
    fingerprint: str = field(default="", repr=False, compare=False)  # what names these images (see identity)

    streaming = False

    def identity(self) -> str:
        """A short name of exactly these images, for caches of what is computed from them (features):
        a folder's decoded-cache key (every file's path, size and time), a subset's parent identity and
        indices, else a digest of the source, the labels and an evenly spread sample of the images."""
        if not self.fingerprint:
            self.fingerprint = content_digest(self)
        return self.fingerprint

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def labelled(self) -> bool:
        return self.labels is not None and self.class_names is not None and len(self.class_names) > 1

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else 0

    def get(self, indices: Sequence[int] | torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 images ``(n, 3, H, W)`` for ``indices`` (on the tensor's device)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long, device=self.images.device)
        return self.images.index_select(0, idx)

    def get_labels(self, indices) -> torch.Tensor | None:
        if self.labels is None:
            return None
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long, device=self.labels.device)
        return self.labels.index_select(0, idx)

    def to(self, device) -> ImageData:
        self.images = self.images.to(device)
        if self.labels is not None:
            self.labels = self.labels.to(device)
        return self

    def subset(self, indices) -> ImageData:
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ImageData(
            name=self.name,
            source=self.source,
            images=self.images.index_select(0, idx.to(self.images.device)),
            labels=None if self.labels is None else self.labels.index_select(0, idx.to(self.labels.device)),
            class_names=self.class_names,
            paths=None if self.paths is None else [self.paths[i] for i in idx.tolist()],
            skipped=list(self.skipped),  # the files of the source that could not be used
            notes=list(self.notes),
            eval_source=self.eval_source,
            fingerprint=subset_digest(self, idx),
        )

    def reading_order(self, order: torch.Tensor) -> torch.Tensor:
        """The order to read an epoch's random ``order`` in: the same for data in memory (a streamed set
        groups it by the parts it reads from disk)."""
        return order

    def batches(self, batch_size: int, order: torch.Tensor, drop_last: bool = True,
                start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        """Yield ``(images_uint8, labels, indices)`` following ``order``, from batch ``start``."""
        n = len(order)
        stop = n - (n % batch_size) if drop_last else n
        order = order.to(self.images.device)
        for b in range(start * batch_size, stop, batch_size):
            idx = order[b:b + batch_size]
            labels = None if self.labels is None else self.labels.index_select(0, idx.to(self.labels.device))
            yield self.images.index_select(0, idx), labels, idx

    def summary(self) -> dict:
        info = {
            "name": self.name,
            "source": self.source,
            "num_images": len(self),
            "image_size": self.image_size,
            "labelled": self.labelled,
            "class_names": list(self.class_names or []),
            "skipped": len(self.skipped),
            "skipped_files": [list(s) for s in self.skipped],
            "streaming": self.streaming,
        }
        if self.labels is not None and self.class_names:
            counts = torch.bincount(self.labels.cpu(), minlength=len(self.class_names)).tolist()
            info["class_counts"] = dict(zip(self.class_names, counts))
        return info



class StreamedData:
    """What a folder too large for memory shares, streamed from its files or from decoded shards: the parts of
    :class:`ImageData`'s interface that do not depend on where the images come from (a subclass gives
    ``get``, ``image_size``, ``identity``, ``reading_order`` and ``batches``)."""

    streaming = True
    paths: list[str]
    labels: torch.Tensor | None
    class_names: list[str] | None
    device: torch.device

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def labelled(self) -> bool:
        return self.labels is not None and self.class_names is not None and len(self.class_names) > 1

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else 0

    def to(self, device):
        self.device = torch.device(device)
        return self

    def get_labels(self, indices):
        if self.labels is None:
            return None
        return self.labels[torch.as_tensor(np.asarray(indices), dtype=torch.long)].to(self.device)

    def subset(self, indices) -> ImageData:
        """These images in memory (a monitor's or an evaluation's sample)."""
        idx = np.asarray(indices)
        return ImageData(name=self.name, source=self.source, images=self.get(idx).cpu(),
                         labels=None if self.labels is None else self.labels[torch.as_tensor(idx)],
                         class_names=self.class_names, paths=[self.paths[i] for i in idx.tolist()],
                         notes=list(self.notes), eval_source=self.eval_source, skipped=list(self.skipped),
                         fingerprint=subset_digest(self, idx))


def digest(*parts) -> str:
    """A short hex digest of ``parts`` (bytes, or anything with a ``str``)."""
    import hashlib

    h = hashlib.sha1()
    for p in parts:
        h.update(p if isinstance(p, bytes | memoryview) else str(p).encode())
        h.update(b"|")
    return h.hexdigest()[:24]


def content_digest(data) -> str:
    """What names ``data``'s images without a cache key: its source, size, labels and up to 64 of its
    images spread evenly over it (a fraction of a second for any size)."""
    n = len(data)
    pick = np.unique(np.linspace(0, max(0, n - 1), min(n, 64)).round().astype(np.int64)) if n else []
    sample = data.get(pick).cpu().contiguous().numpy().tobytes() if n else b""
    labels = b"" if data.labels is None else data.labels.cpu().numpy().astype(np.int64).tobytes()
    return digest(data.source, data.name, n, data.image_size, labels, sample)


def subset_digest(data, indices) -> str:
    """A subset's identity: its parent's and the indices taken."""
    idx = np.asarray(torch.as_tensor(indices).cpu(), dtype=np.int64)
    return digest(data.identity(), "subset", idx.tobytes())


def stratified_split(labels: torch.Tensor | None, n: int, fraction: float, seed: int,
                     max_holdout: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (train, holdout) keeping class proportions; deterministic from ``seed``."""
    rng = np.random.default_rng(seed)
    if fraction <= 0 or n < 2:
        return np.arange(n), np.arange(0)
    if labels is None:
        perm = rng.permutation(n)
        k = max(1, int(round(n * fraction)))
        if max_holdout:
            k = min(k, max_holdout)
        return np.sort(perm[k:]), np.sort(perm[:k])
    lab = labels.cpu().numpy()
    hold = []
    for c in np.unique(lab):
        members = np.flatnonzero(lab == c)
        k = int(round(len(members) * fraction))
        if max_holdout:
            k = min(k, max(1, max_holdout // max(1, len(np.unique(lab)))))
        if k >= len(members):
            k = len(members) - 1
        hold.extend(rng.choice(members, size=k, replace=False).tolist())
    hold = np.sort(np.array(hold, dtype=np.int64))
    mask = np.ones(n, dtype=bool)
    mask[hold] = False
    return np.flatnonzero(mask), hold


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (shorter side) and centre-crop a uint8 ``(N, C, H, W)`` batch to ``size`` x ``size``."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    n, c, h, w = images.shape
    if h == size and w == size:
        return images.contiguous()
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    out = []
    for chunk in images.split(2048):
        x = torch.nn.functional.interpolate(chunk.float(), size=(nh, nw), mode="bilinear",
                                            antialias=scale < 1, align_corners=False)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[:, :, top:top + size, left:left + size]
        out.append(x.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out).contiguous()
