"""The live map's motion without Qt: the glide between two layouts, the headline (kNN against random
init and chance) and the run's maps as an animated GIF (Pillow), drawn from the stored layouts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

GIF_SIZE = 560
GIF_FRAME_MS = 700


def glide(start: np.ndarray, end: np.ndarray, t: float) -> np.ndarray:
    """Positions ``t`` (0..1) of the way from ``start`` to ``end``, eased (smoothstep)."""
    t = min(1.0, max(0.0, float(t)))
    e = t * t * (3 - 2 * t)
    return (start + (end - start) * e).astype(np.float32)


@dataclass
class KnnTrack:
    """The run's online kNN top-1 by step (from its ``knn_monitor`` eval records) and its random-init value
    (the step-0 record's ``random_init_knn``)."""

    by_step: dict = field(default_factory=dict)
    random_init: float | None = None
    snapshot_steps: set = field(default_factory=set)  # steps whose kNN is a snapshot's (leave-one-out)

    def add(self, step: int, values: dict) -> bool:
        """An eval record; returns whether it carried a kNN."""
        if values.get("random_init_knn") is not None:
            self.random_init = float(values["random_init_knn"])
        if values.get("knn_top1") is None:
            return False
        self.by_step[int(step)] = float(values["knn_top1"])
        if "effective_rank" in values:  # only the snapshots' monitor measures the effective rank
            self.snapshot_steps.add(int(step))
        return True

    def step_of(self, step: int | None) -> int | None:
        """The step of the record :meth:`at` reads for ``step``."""
        steps = sorted(self.by_step)
        if not steps:
            return None
        if step is None:
            return steps[-1]
        before = [s for s in steps if s <= step]
        return before[-1] if before else None

    def at(self, step: int | None) -> float | None:
        """The kNN of the snapshot at ``step`` (or the latest one before it; None: the latest)."""
        if not self.by_step:
            return None
        steps = sorted(self.by_step)
        if step is None:
            return self.by_step[steps[-1]]
        before = [s for s in steps if s <= step]
        return self.by_step[before[-1]] if before else None

    def headline(self, step: int | None, num_classes: int, final: float | None = None) -> str:
        """"kNN 0.87 · random init 0.27 · chance 0.13": what the audience reads on the map (``final``: the run's
        final evaluation instead of the monitor's value)."""
        knn = self.at(step) if final is None else float(final)
        if knn is None:
            return ""
        if step == 0 and self.random_init is not None and final is None:  # the random-init map itself
            parts = [f"kNN top-1 {knn:.2f} (random init)"]
        else:
            parts = [f"kNN top-1 {knn:.2f}"]
            if self.random_init is not None:
                parts.append(f"random init {self.random_init:.2f}")
        if num_classes > 1:
            parts.append(f"chance {1 / num_classes:.2f}")
        return "  ·  ".join(parts)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one small bitmap font
        return ImageFont.load_default()


def render_frame(coords: np.ndarray, colors: np.ndarray, lo: np.ndarray, hi: np.ndarray, caption: str,
                 headline: str = "", size: int = GIF_SIZE, legend: list | None = None):
    """One frame: the points (``colors``: (N, 3) uint8) in the frame ``lo``..``hi``, a caption, a
    headline and a legend row (``legend``: (name, (r, g, b)) pairs). Returns a PIL image (RGB)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    top, margin = 64, 16
    bottom = 30 if legend else margin
    span = np.maximum(hi - lo, 1e-6)
    scale = min((size - 2 * margin) / span[0], (size - top - bottom) / span[1])
    c = np.asarray(coords, np.float64)
    x = margin + (c[:, 0] - lo[0]) * scale
    y = size - bottom - (c[:, 1] - lo[1]) * scale  # y up, as on the screen map
    if legend:
        font, lx = _font(13), margin
        for name, rgb in legend:
            d.rectangle((lx, size - 21, lx + 10, size - 11), fill=tuple(int(v) for v in rgb))
            d.text((lx + 14, size - 24), name, fill=(60, 60, 60), font=font)
            lx += 14 + int(d.textlength(name, font=font)) + 12
    r = 3 if len(c) > 1500 else 4
    for (px, py), col in zip(np.stack([x, y], 1), np.asarray(colors, np.uint8)):
        d.ellipse((px - r, py - r, px + r, py + r), fill=tuple(int(v) for v in col))
    d.text((margin, 8), headline, fill=(20, 20, 20), font=_font(22))
    d.text((margin, 38), caption, fill=(90, 90, 90), font=_font(16))
    return img


def write_gif(path: str, frames: list[tuple[np.ndarray, str, str]], colors: np.ndarray,
              frame_ms: int = GIF_FRAME_MS, size: int = GIF_SIZE, legend: list | None = None) -> int:
    """The maps ``frames`` ((coords, caption, headline) each, the same points) as an animated GIF that
    loops, each filling the picture (the layouts are aligned, so only the zoom changes); the last frame
    holds longer. Returns the number of frames."""
    if not frames:
        raise ValueError("no maps to export yet: wait for the first snapshot")
    images = []
    for c, cap, head in frames:
        c = np.asarray(c, np.float64)
        lo, hi = np.percentile(c, 0.5, axis=0), np.percentile(c, 99.5, axis=0)
        pad = 0.04 * (hi - lo)
        images.append(render_frame(c, colors, lo - pad, hi + pad, cap, head, size, legend))
    durations = [frame_ms] * (len(images) - 1) + [frame_ms * 4]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0, disposal=1,
                   optimize=False)
    return len(images)
