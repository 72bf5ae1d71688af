"""The built-in dataset: coloured shapes on textured backgrounds, generated from a seed.

Eight classes (the shape). Colour, position, scale and background vary at random, so colour
statistics say nothing about the class and an encoder has to learn shape. Shapes keep a roughly
upright orientation (a small tilt only), so rotation prediction is a meaningful pretext task.
Everything is rasterised in batches with torch (2x supersampled), deterministic from the seed.
"""

from __future__ import annotations

import math

import torch

from engine.data.base import ImageData

SHAPES = ("circle", "ring", "triangle", "square", "star", "cross", "crescent", "heart")
DEFAULT_COUNT = 6000


def _inside(kind: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Soft occupancy (0..1) of shape ``kind`` at local coordinates ``u, v`` (shape spans ~[-1, 1])."""
    r = torch.sqrt(u * u + v * v)
    theta = torch.atan2(v, u)
    if kind == "circle":
        d = r - 0.9
    elif kind == "ring":
        d = torch.maximum(r - 0.95, 0.5 - r)
    elif kind in ("triangle", "square"):
        n = 3 if kind == "triangle" else 4
        # ``phase`` is the direction of an edge's normal: the triangle's lower edge faces down
        # (+v is down in image coordinates), so its apex points up; the square sits upright
        phase = math.pi / 2 if n == 3 else 0.0
        seg = 2 * math.pi / n
        a = torch.remainder(theta - phase + seg / 2, seg) - seg / 2
        apothem = 0.95 * math.cos(math.pi / n)
        d = r * torch.cos(a) - apothem
    elif kind == "star":
        seg = 2 * math.pi / 5
        a = torch.remainder(theta + math.pi / 2 + seg / 2, seg) - seg / 2
        t = torch.abs(a) / (seg / 2)  # 0 at a tip, 1 between tips
        radius = 1.0 - 0.58 * t
        d = r - radius
    elif kind == "cross":
        arm = 0.3
        d1 = torch.maximum(torch.abs(u) - arm, torch.abs(v) - 0.95)
        d2 = torch.maximum(torch.abs(v) - arm, torch.abs(u) - 0.95)
        d = torch.minimum(d1, d2)
    elif kind == "crescent":
        r2 = torch.sqrt((u - 0.45) ** 2 + (v + 0.1) ** 2)
        d = torch.maximum(r - 0.92, 0.72 - r2)
    elif kind == "heart":
        x, y = u * 1.15, -v * 1.15 + 0.15
        f = (x * x + y * y - 1) ** 3 - x * x * y ** 3
        d = torch.clamp(f, -0.2, 0.2)
    else:  # pragma: no cover - guarded by SHAPES
        raise ValueError(kind)
    return (d < 0).float()


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=-1)
    rgb = v.unsqueeze(-1) - v.unsqueeze(-1) * s.unsqueeze(-1) * torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return rgb  # (..., 3)


def generate_shapes(count: int = DEFAULT_COUNT, image_size: int = 32, seed: int = 0,
                    chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` images ``(count, 3, S, S)`` uint8 and their labels, the same for the same seed."""
    g = torch.Generator().manual_seed(int(seed))
    labels = torch.arange(count) % len(SHAPES)
    labels = labels[torch.randperm(count, generator=g)]
    out = torch.empty(count, 3, image_size, image_size, dtype=torch.uint8)
    ss = 2  # supersampling
    big = image_size * ss
    lin = (torch.arange(big, dtype=torch.float32) + 0.5) / big * 2 - 1
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        lab = labels[start:start + n]
        # shape pose
        scale = 0.42 + 0.38 * torch.rand(n, generator=g)
        margin = 1 - scale
        cx = (torch.rand(n, generator=g) * 2 - 1) * margin * 0.9
        cy = (torch.rand(n, generator=g) * 2 - 1) * margin * 0.9
        tilt = (torch.rand(n, generator=g) * 2 - 1) * math.radians(20)
        # colours: foreground and two background colours far enough apart in value/hue
        fh = torch.rand(n, generator=g)
        fs = 0.55 + 0.45 * torch.rand(n, generator=g)
        fv = 0.55 + 0.45 * torch.rand(n, generator=g)
        bh = torch.remainder(fh + 0.25 + 0.5 * torch.rand(n, generator=g), 1.0)
        bs = 0.15 + 0.5 * torch.rand(n, generator=g)
        bv = 0.2 + 0.5 * torch.rand(n, generator=g)
        fg = _hsv_to_rgb(fh, fs, fv)  # (n, 3)
        bg1 = _hsv_to_rgb(bh, bs, bv)
        bg2 = _hsv_to_rgb(torch.remainder(bh + 0.1, 1.0), bs, torch.clamp(bv * 0.6, 0, 1))
        # background: vertical light gradient + oriented stripes + noise
        x = gx.expand(n, -1, -1)
        y = gy.expand(n, -1, -1)
        grad = ((y + 1) / 2).unsqueeze(1)  # light at the top, darker below
        bg = bg1[:, :, None, None] * (1 - grad) + bg2[:, :, None, None] * grad
        freq = 2 + 6 * torch.rand(n, generator=g)
        ang = torch.rand(n, generator=g) * math.pi
        amp = 0.04 + 0.08 * torch.rand(n, generator=g)
        phase = torch.rand(n, generator=g) * 2 * math.pi
        stripes = torch.sin(freq[:, None, None] * math.pi * (x * torch.cos(ang)[:, None, None]
                                                              + y * torch.sin(ang)[:, None, None])
                            + phase[:, None, None])
        bg = bg + (amp[:, None, None] * stripes).unsqueeze(1)
        bg = bg + 0.03 * torch.randn(n, 1, big, big, generator=g)
        # shape occupancy in local coordinates
        cos, sin = torch.cos(tilt)[:, None, None], torch.sin(tilt)[:, None, None]
        dx = (x - cx[:, None, None]) / scale[:, None, None]
        dy = (y - cy[:, None, None]) / scale[:, None, None]
        u = cos * dx + sin * dy
        v = -sin * dx + cos * dy
        occ = torch.zeros(n, big, big)
        for k, kind in enumerate(SHAPES):
            sel = lab == k
            if sel.any():
                occ[sel] = _inside(kind, u[sel], v[sel])
        shade = 1 - 0.25 * ((v + 1) / 2).clamp(0, 1)  # a little shading inside the shape
        fgimg = fg[:, :, None, None] * shade.unsqueeze(1)
        img = bg * (1 - occ.unsqueeze(1)) + fgimg * occ.unsqueeze(1)
        img = torch.nn.functional.avg_pool2d(img, ss)
        out[start:start + n] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return out, labels


def parse_shapes_spec(rest: str) -> int:
    """``builtin:shapes`` or ``builtin:shapes:N`` -> N images."""
    if not rest:
        return DEFAULT_COUNT
    try:
        n = int(rest)
    except ValueError:
        raise ValueError(f"builtin:shapes takes an image count after a colon, got {rest!r}") from None
    if not 16 <= n <= 500_000:
        raise ValueError(f"builtin:shapes count must be between 16 and 500000, got {n}")
    return n


def load_shapes(count: int, image_size: int, split: str = "train", seed: int = 0) -> ImageData:
    # train and test come from different seeds so they never share an image
    split_seed = {"train": 1000 + seed, "test": 2000 + seed}[split]
    images, labels = generate_shapes(count, image_size, split_seed)
    eval_source = f"builtin:shapes-test:{max(200, count // 5)}" if split == "train" else ""
    return ImageData(
        name="shapes" if split == "train" else "shapes (test)",
        source=f"builtin:shapes:{count}" if split == "train" else f"builtin:shapes-test:{count}",
        images=images,
        labels=labels,
        class_names=list(SHAPES),
        eval_source=eval_source,
    )
