"""Clips as data: short clips of the built-in shapes moving, and the dataset object of any clips.

A :class:`ClipData` holds every clip as one uint8 tensor ``(N, T, C, H, W)``: ``C`` is 3 (RGB), or 4
when the clips know where their moving object is (the built-in clips: the fourth channel is the
object's occupancy, 255 inside). It is an :class:`ImageData` whose *images* are the clips' middle
frames (RGB): evaluation (kNN, linear probe, the embedding map), thumbnails and splits see one
frame per clip, so a split by item is a split by clip and no clip leaks across train and test.
Training batches (``batches``) are whole clips ``(B, T, C, H, W)``; methods that train on clips
(``Method.input_kind == "clips"``) read them, :meth:`ClipData.frame_data` gives every frame as an
image (with its clip's label) for methods that train on images.

The built-in generator draws the shapes of :mod:`engine.data.shapes` (its drawing functions) moving
over a textured background: a straight trajectory at a constant speed, a constant rotation and a
drifting hue, deterministic from the seed. The backgrounds come from a small pool shared by the
clips of every shape (so a background does not tell one clip from another) and pan slowly (up to
one pixel a frame). ``meta`` records every frame's centre (pixels), angle (radians) and hue, and
every clip's speed (pixels per frame), direction, background and pan.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from engine.data.base import ImageData
from engine.data.shapes import SHAPES, _hsv_to_rgb, _inside
from engine.specs import parse_count

DEFAULT_CLIPS = 1200
DEFAULT_FRAMES = 8
BACKGROUNDS = 12  # background textures shared by all clips of a split
PAN = 2  # largest pan of the background, in half-pixels per frame


@dataclass
class ClipData(ImageData):
    """Clips ``(N, T, C, H, W)`` uint8; ``images`` is the view of their middle frames (RGB)."""

    clips: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)  # per-clip tensors (built-in clips: the motion)

    def __post_init__(self):
        if self.clips is None:
            raise ValueError("ClipData needs clips (N, T, C, H, W)")
        self._refresh()

    def _refresh(self) -> None:
        self.images = self.clips[:, self.frames // 2, :3]

    @property
    def frames(self) -> int:
        return int(self.clips.shape[1])

    @property
    def has_mask(self) -> bool:
        return int(self.clips.shape[2]) == 4

    def get_clips(self, indices) -> torch.Tensor:
        """uint8 clips ``(n, T, C, H, W)`` for ``indices``."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long, device=self.clips.device)
        return self.clips.index_select(0, idx)

    def clips_hwc(self, indices) -> np.ndarray:
        """Clips ``(n, T, H, W, C)`` uint8 numpy: what ``engine.preview.preview`` takes for clip methods."""
        return self.get_clips(indices).permute(0, 1, 3, 4, 2).cpu().numpy()

    def to(self, device) -> ClipData:
        self.clips = self.clips.to(device)
        if self.labels is not None:
            self.labels = self.labels.to(device)
        self._refresh()
        return self

    def subset(self, indices) -> ClipData:
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return ClipData(
            name=self.name, source=self.source, images=self.images,
            labels=None if self.labels is None else self.labels.index_select(0, idx.to(self.labels.device)),
            class_names=self.class_names,
            paths=None if self.paths is None else [self.paths[i] for i in idx.tolist()],
            skipped=[], notes=list(self.notes), eval_source=self.eval_source,
            clips=self.clips.index_select(0, idx.to(self.clips.device)),
            meta={k: v.index_select(0, idx.to(v.device)) for k, v in self.meta.items()},
        )

    def batches(self, batch_size: int, order: torch.Tensor, drop_last: bool = True,
                start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        """Yield ``(clips_uint8 (B, T, C, H, W), labels, indices)`` following ``order``."""
        n = len(order)
        stop = n - (n % batch_size) if drop_last else n
        order = order.to(self.clips.device)
        for b in range(start * batch_size, stop, batch_size):
            idx = order[b:b + batch_size]
            labels = None if self.labels is None else self.labels.index_select(0, idx.to(self.labels.device))
            yield self.clips.index_select(0, idx), labels, idx

    def frame_data(self) -> ImageData:
        """Every frame as an image ``(N*T, 3, H, W)`` with its clip's label (for image methods)."""
        n, t = self.clips.shape[:2]
        return ImageData(
            name=f"{self.name} (frames)", source=self.source, images=self.clips[:, :, :3].reshape(n * t, 3, *self.clips.shape[-2:]),
            labels=None if self.labels is None else self.labels.repeat_interleave(t),
            class_names=self.class_names, notes=list(self.notes))

    def summary(self) -> dict:
        info = super().summary()
        info.update({"num_clips": len(self), "frames_per_clip": self.frames})
        return info


# -- the built-in clips ---------------------------------------------------------------------------
def _motion(n: int, frames: int, g: torch.Generator) -> dict:
    """Per-clip scale, trajectory (normalised coordinates), rotation and hue drift."""
    scale = 0.36 + 0.2 * torch.rand(n, generator=g)
    hi = (1 - scale) * 0.9
    lo = -hi
    span = hi - lo
    direction = torch.rand(n, generator=g) * 2 * math.pi
    speed = 0.05 + 0.09 * torch.rand(n, generator=g)  # normalised units per frame
    c, s = torch.cos(direction), torch.sin(direction)
    # the whole path stays inside the frame: slow down the clips whose path would not fit
    fit = span / ((frames - 1) * torch.maximum(c.abs(), s.abs()).clamp(min=1e-6))
    speed = torch.minimum(speed, fit)
    dx, dy = speed * c * (frames - 1), speed * s * (frames - 1)
    x0 = lo - dx.clamp(max=0) + torch.rand(n, generator=g) * (span - dx.abs()).clamp(min=0)
    y0 = lo - dy.clamp(max=0) + torch.rand(n, generator=g) * (span - dy.abs()).clamp(min=0)
    t = torch.arange(frames, dtype=torch.float32)
    cx = x0[:, None] + speed[:, None] * c[:, None] * t
    cy = y0[:, None] + speed[:, None] * s[:, None] * t
    angle0 = (torch.rand(n, generator=g) * 2 - 1) * math.radians(20)
    spin = (torch.rand(n, generator=g) * 2 - 1) * math.radians(8)  # radians per frame
    hue0 = torch.rand(n, generator=g)
    drift = (torch.rand(n, generator=g) * 2 - 1) * 0.02  # hue turns per frame
    return {"scale": scale, "cx": cx, "cy": cy, "speed": speed, "direction": direction,
            "angle": angle0[:, None] + spin[:, None] * t, "spin": spin,
            "hue": torch.remainder(hue0[:, None] + drift[:, None] * t, 1.0), "hue_drift": drift}


def _background(n: int, big: int, g: torch.Generator, hue_fg: torch.Tensor) -> torch.Tensor:
    """Still textured backgrounds ``(n, 3, big, big)`` in the look of the built-in shapes."""
    lin = (torch.arange(big, dtype=torch.float32) + 0.5) / big * 2 - 1
    y, x = torch.meshgrid(lin, lin, indexing="ij")
    bh = torch.remainder(hue_fg + 0.25 + 0.5 * torch.rand(n, generator=g), 1.0)
    bs = 0.15 + 0.5 * torch.rand(n, generator=g)
    bv = 0.2 + 0.5 * torch.rand(n, generator=g)
    bg1 = _hsv_to_rgb(bh, bs, bv)
    bg2 = _hsv_to_rgb(torch.remainder(bh + 0.1, 1.0), bs, torch.clamp(bv * 0.6, 0, 1))
    grad = ((y + 1) / 2)[None, None]
    bg = bg1[:, :, None, None] * (1 - grad) + bg2[:, :, None, None] * grad
    freq = (2 + 6 * torch.rand(n, generator=g))[:, None, None]
    ang = (torch.rand(n, generator=g) * math.pi)[:, None, None]
    amp = (0.04 + 0.08 * torch.rand(n, generator=g))[:, None, None]
    phase = (torch.rand(n, generator=g) * 2 * math.pi)[:, None, None]
    stripes = torch.sin(freq * math.pi * (x * torch.cos(ang) + y * torch.sin(ang)) + phase)
    return bg + (amp * stripes).unsqueeze(1) + 0.03 * torch.randn(n, 1, big, big, generator=g)


def generate_clips(count: int = DEFAULT_CLIPS, image_size: int = 32, frames: int = DEFAULT_FRAMES, seed: int = 0,
                   chunk: int = 128) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """``count`` clips ``(count, frames, 4, S, S)`` uint8 (RGB + the object's occupancy), their
    labels (the shape) and their motion ``meta``; the same for the same seed."""
    g = torch.Generator().manual_seed(int(seed))
    labels = (torch.arange(count) % len(SHAPES))[torch.randperm(count, generator=g)]
    out = torch.empty(count, frames, 4, image_size, image_size, dtype=torch.uint8)
    ss = 2
    big = image_size * ss
    lin = (torch.arange(big, dtype=torch.float32) + 0.5) / big * 2 - 1
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    margin = PAN * frames
    pool = _background(BACKGROUNDS, big + 2 * margin, g, torch.rand(BACKGROUNDS, generator=g))
    metas = []
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        lab = labels[start:start + n]
        m = _motion(n, frames, g)
        fs = 0.55 + 0.45 * torch.rand(n, generator=g)
        fv = 0.55 + 0.45 * torch.rand(n, generator=g)
        # the background: one of a few textures shared by clips of every shape (it does not say
        # which clip a frame comes from), seen through a window that pans a little every frame
        which = torch.randint(0, len(pool), (n,), generator=g)
        pan = torch.randint(-PAN, PAN + 1, (n, 2), generator=g)
        off = -(pan * (frames - 1)) // 2 + torch.randint(-PAN, PAN + 1, (n, 2), generator=g)  # the pan fits
        m["background"], m["pan_px"] = which, pan.float() / ss
        for t in range(frames):
            ox = (margin + off[:, 0] + pan[:, 0] * t).tolist()
            oy = (margin + off[:, 1] + pan[:, 1] * t).tolist()
            bg = torch.stack([pool[k, :, y:y + big, x:x + big] for k, x, y in zip(which.tolist(), ox, oy)])
            cos, sin = torch.cos(m["angle"][:, t])[:, None, None], torch.sin(m["angle"][:, t])[:, None, None]
            dx = (gx - m["cx"][:, t, None, None]) / m["scale"][:, None, None]
            dy = (gy - m["cy"][:, t, None, None]) / m["scale"][:, None, None]
            u, v = cos * dx + sin * dy, -sin * dx + cos * dy
            occ = torch.zeros(n, big, big)
            for k, kind in enumerate(SHAPES):
                sel = lab == k
                if sel.any():
                    occ[sel] = _inside(kind, u[sel], v[sel])
            shade = 1 - 0.25 * ((v + 1) / 2).clamp(0, 1)
            fg = _hsv_to_rgb(m["hue"][:, t], fs, fv)[:, :, None, None] * shade.unsqueeze(1)
            noise = 0.015 * torch.randn(n, 1, big, big, generator=g)
            img = (bg + noise) * (1 - occ.unsqueeze(1)) + fg * occ.unsqueeze(1)
            img = torch.cat([img, occ.unsqueeze(1)], 1)
            out[start:start + n, t] = (F.avg_pool2d(img, ss).clamp(0, 1) * 255).round().to(torch.uint8)
        metas.append(m)
    meta = {k: torch.cat([m[k] for m in metas]) for k in metas[0]}
    # pixel units: column/row index of the centre (pixel i's centre is at normalised (i + 0.5) / S * 2 - 1)
    meta["center_px"] = torch.stack([(meta["cx"] + 1) / 2 * image_size - 0.5,
                                     (meta["cy"] + 1) / 2 * image_size - 0.5], -1)
    meta["speed_px"] = meta["speed"] / 2 * image_size
    meta["scale_px"] = meta["scale"] / 2 * image_size
    return out, labels, meta


def cached_clips(count: int, image_size: int, frames: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """:func:`generate_clips`, kept in the cache folder like the shapes (drawing 1,200 clips takes about
    40 s on a 2-core CPU; every Start and Resume asked for them again)."""
    from engine.data.shapes import cached_arrays, source_key

    def make():
        clips, labels, meta = generate_clips(count, image_size, frames, seed)
        return {"clips": clips.numpy(), "labels": labels.numpy(), **{f"meta_{k}": v.numpy() for k, v in meta.items()}}

    probe = generate_clips(1, 8, frames, 0)[2]  # the meta arrays' names and trailing shapes (cheap: one tiny clip)
    shapes = {"clips": (count, frames, 4, image_size, image_size), "labels": (count,),
              **{f"meta_{k}": (count, *v.shape[1:]) for k, v in probe.items()}}
    got = cached_arrays("clips", f"{count}-{image_size}-{frames}-{seed}", source_key(__file__), make, shapes)
    meta = {k[len("meta_"):]: torch.from_numpy(v) for k, v in got.items() if k.startswith("meta_")}
    return torch.from_numpy(got["clips"]), torch.from_numpy(got["labels"]), meta


def parse_clips_spec(rest: str) -> int:
    """``builtin:clips`` or ``builtin:clips:N`` -> N clips."""
    return parse_count(rest, "builtin:clips", "a clip count", DEFAULT_CLIPS, 100_000)


def load_builtin_clips(count: int, image_size: int, split: str = "train", seed: int = 0,
                       frames: int = DEFAULT_FRAMES) -> ClipData:
    split_seed = {"train": 3000 + seed, "test": 4000 + seed}[split]
    clips, labels, meta = cached_clips(count, image_size, frames, split_seed)
    train = split == "train"
    return ClipData(
        name="clips" if train else "clips (test)",
        source=f"builtin:clips:{count}" if train else f"builtin:clips-test:{count}",
        images=clips[:, 0, :3], labels=labels, class_names=list(SHAPES),
        eval_source=f"builtin:clips-test:{max(400, count // 3)}" if train else "",
        clips=clips, meta=meta,
        notes=[f"{count} clips of {frames} frames; evaluation embeds each clip's middle frame"])
