"""The Pretext preview's state, without Qt: which images it shows, and the request it sends.

The panel (app/preview/panel.py) draws the answer and holds the controls; the rules here (the
images kept across method switches, the first image a rotation shows well, the arguments of a
``preview`` request) are plain numpy and tested without a window (tests/test_preview_model.py).
"""

from __future__ import annotations

import numpy as np

ASYMMETRY_CANDIDATES = 16  # images scored for the first preview image
ASYMMETRIC = 0.25  # a subject this rotation-asymmetric (a heart scores ~0.3, a ring ~0.1) may go first


def rotation_asymmetry(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 -> how much each image's subject changes under its least-changing quarter turn
    (90, 180 or 270 degrees about the subject's own box), as the mismatched fraction of its area: about
    0 for a circle, ring, square or cross, large for a heart, crescent or triangle. The subject is what
    differs from the image's border colour (the whole image when nothing stands out)."""
    x = np.asarray(images, dtype=np.float32)
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)  # (N, P, C)
    diff = np.abs(x - np.median(border, axis=1)[:, None, None, :]).max(-1)  # (N, H, W)
    out = np.zeros(len(x), dtype=np.float32)
    for i, d in enumerate(diff):
        m = (d > 40).astype(np.float32)
        if m.sum() < 4 or m.mean() > 0.9:
            m = d / max(float(d.max()), 1.0)  # nothing stands out: compare the whole image
        ys, xs = np.nonzero(m > 0)
        c = m[ys.min():ys.max() + 1, xs.min():xs.max() + 1] if len(ys) else m
        h, w = c.shape
        side = max(h, w)
        sq = np.zeros((side, side), np.float32)
        sq[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = c
        out[i] = min(np.abs(sq - np.rot90(sq, k)).sum() for k in (1, 2, 3)) / max(float(sq.sum()), 1.0)
    return out


class ImagePicker:
    """The dataset rows the preview shows. The order images are taken in is fixed until :meth:`shuffle`:
    switching methods or the image count keeps the images, so the same seed shows the same batch."""

    def __init__(self):
        self.dataset = None
        self.indices: list[int] = []
        self.order = np.zeros(0, dtype=np.int64)
        self._rng = np.random.default_rng(0)

    def set_dataset(self, ds, count: int) -> None:
        self.dataset = ds
        self._rng = np.random.default_rng(len(ds))
        self.order = self._image_order()
        self.indices = []
        self.pick(count, keep_first=False)

    def _image_order(self) -> np.ndarray:
        """A random order whose first image is the least rotation-symmetric of the first few (a rotation
        preview of a circle shows four equal tiles)."""
        n = len(self.dataset)
        order = self._rng.permutation(n)
        head = order[:min(n, ASYMMETRY_CANDIDATES)]
        if len(head) > 1:
            rows = np.sort(head)
            score = dict(zip(rows.tolist(), rotation_asymmetry(np.asarray(self.dataset.images[rows])).tolist()))
            clear = [int(i) for i in head if score[int(i)] >= ASYMMETRIC]
            best = clear[0] if clear else max(score, key=score.get)
            order = np.concatenate([[best], order[order != best]])
        return order

    def pick(self, count: int, keep_first: bool) -> None:
        """``count`` images from the order (the first one kept if ``keep_first``)."""
        if self.dataset is None or len(self.dataset) == 0:
            return
        n = min(count, len(self.dataset))
        first = self.indices[:1] if keep_first and self.indices else []
        others = [int(i) for i in self.order[:n + 1] if int(i) not in first]
        self.indices = (first + others)[:n]

    def choose(self, i: int, count: int) -> None:
        """Image ``i`` (clicked in the Data panel's grid) goes first."""
        rest = [j for j in self.indices if j != i]
        self.indices = ([i] + rest)[:max(1, count)]

    def shuffle(self, count: int) -> bool:
        """Other images of the dataset ("Random images"); False without a dataset."""
        if self.dataset is None:
            return False
        self.order = self._image_order()
        self.indices = []
        self.pick(count, keep_first=False)
        return True

    def resize(self, n: int) -> bool:
        """Show ``n`` images, keeping those shown; False without a dataset."""
        if self.dataset is None:
            return False
        if n < len(self.indices):
            self.indices = self.indices[:n]
        else:
            extra = [int(i) for i in self.order[:n + len(self.indices)] if int(i) not in self.indices]
            self.indices = self.indices + extra[:n - len(self.indices)]
        return True


def wrap_words(text: str, width: float, measure, max_lines: int) -> list[str]:
    """``text`` in lines of at most ``width`` (``measure(s)``: the width of a string), broken between words only
    (never inside one, nor at a hyphen); at most ``max_lines``, the last one ending with "…" when words are left
    over. A single word wider than a line is shortened with "…" (the tile's tooltip says it whole)."""
    words = str(text or "").split()
    lines: list[str] = []
    cur = ""
    for w in words:
        trial = f"{cur} {w}" if cur else w
        if measure(trial) <= width or not cur:
            cur = trial
        else:
            lines.append(cur)
            cur = w
    if cur:
        lines.append(cur)
    lines = [ln if measure(ln) <= width else _elide(ln, width, measure) for ln in lines]
    if len(lines) > max_lines:
        kept = lines[:max_lines]
        last = kept[-1]
        while last and measure(last + " …") > width and " " in last:
            last = last.rsplit(" ", 1)[0]  # drop whole words until the ellipsis fits
        kept[-1] = (last + " …") if measure(last + " …") <= width else _elide(last, width, measure)
        return kept
    return lines


def _elide(word: str, width: float, measure) -> str:
    while len(word) > 1 and measure(word + "…") > width:
        word = word[:-1]
    return word + "…"


def views_base(catalogue: dict | None, views: str, image_size: int) -> dict:
    """The augmentation recipe of a contrastive method's first view (``views`` names the preset; small
    images use the small presets) before the user's overrides."""
    size_key = "small" if image_size <= 48 else "large"
    presets = ((catalogue or {}).get("augment_presets") or {}).get(size_key, {})
    pair = presets.get(views) or presets.get("simclr") or [{}]
    return dict(pair[0])


def preview_request(method: str, info: dict | None, options: dict, seed: int, backbone: str, dataset,
                    indices: list[int]) -> tuple[dict, dict]:
    """The ``preview`` request's arguments for ``indices`` of ``dataset``, and what the panel keeps of
    it (the same without the pixels, with the indices). ValueError with a message when the method trains
    on clips and the dataset holds single images."""
    idx = np.asarray(indices, dtype=np.int64)
    args = {"method": method, "options": options, "seed": int(seed), "backbone": backbone}
    clips = getattr(dataset, "clips", None)
    if (info or {}).get("input_kind") == "clips":
        if clips is None:
            raise ValueError(f"{method} trains on clips, and {dataset.spec} holds single images; "
                             "choose builtin:clips, clips:FOLDER or a folder of videos")
        args["clips"] = np.ascontiguousarray(clips[idx])
    else:
        args["images"] = np.ascontiguousarray(dataset.images[idx])
    shown = {k: v for k, v in args.items() if k not in ("images", "clips")} | {"indices": idx.tolist()}
    return args, shown
