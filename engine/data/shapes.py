"""The built-in dataset: coloured shapes on textured backgrounds, generated from a seed.

Eight classes (the shape). Colour, position, scale and background vary at random, so colour
statistics say nothing about the class and an encoder has to learn shape. Shapes keep a roughly
upright orientation (a small tilt only) and nothing else says where "up" is (flat backgrounds, no
shading), so rotation prediction has to look at the shape.
Everything is rasterised in batches with torch (2x supersampled), deterministic from the seed.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import torch

from engine.data.base import ImageData
from engine.specs import COLOURS, DEFAULT_COUNT, SHORTCUTS

SHAPES = ("circle", "ring", "triangle", "square", "star", "cross", "crescent", "heart")
SCALE = (0.42, 0.8)  # shape size, as a fraction of the image half-width


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


# Colours of the default set: a few vivid foreground hues and a few dark background tones, drawn
# independently of each other and of the class. Many images share every combination, so colour can
# neither name the class nor tell two images apart: the shape is what makes an image itself.
FG_HUES = (0.0, 0.08, 0.15, 0.33, 0.55, 0.8)  # red, orange, yellow, green, blue, purple
BG_TONES = ((0.6, 0.35, 0.3), (0.1, 0.3, 0.3), (0.0, 0.0, 0.3), (0.35, 0.3, 0.25))  # (hue, sat, value)


# Colours that follow the object (``colours="typical"``): each shape has two typical hues (indices into
# FG_HUES), which it takes with probability TYPICAL_P, any hue of FG_HUES otherwise. Every hue is typical of
# two or three shapes, so colour alone cannot name the shape; it only makes some shapes likelier, as grass is
# usually green. The foreground's lightness is drawn on its own (TYPICAL_LUMA), whatever the hue, so the grey
# image does not give the colour away: only the shape tells it.
TYPICAL_HUES = ((0, 1), (2, 3), (4, 5), (0, 3), (1, 4), (2, 5), (0, 4), (1, 5))  # one pair per class of SHAPES
TYPICAL_P = 0.75
TYPICAL_SAT = 0.65
TYPICAL_LUMA = (0.4, 0.54)  # Rec. 601 luma of the foreground: every hue of FG_HUES reaches it at TYPICAL_SAT


def _typical_foreground(lab: torch.Tensor, g: torch.Generator, knobs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The foreground colours ``(n, 3)`` of shapes of classes ``lab`` under ``colours="typical"``, and the
    index into FG_HUES each took."""
    n = len(lab)
    hues = torch.tensor(knobs.get("fg_hues", FG_HUES))
    pairs = torch.tensor(knobs.get("typical_hues", TYPICAL_HUES))
    typical = torch.rand(n, generator=g) < knobs.get("typical_p", TYPICAL_P)
    which = pairs[lab, torch.randint(pairs.shape[1], (n,), generator=g)]
    anyhue = torch.randint(len(hues), (n,), generator=g)
    idx = torch.where(typical, which, anyhue)
    rgb = _hsv_to_rgb(hues[idx], torch.full((n,), TYPICAL_SAT), torch.ones(n))
    lo, hi = TYPICAL_LUMA
    luma = lo + (hi - lo) * torch.rand(n, generator=g)
    rgb = rgb * (luma / (rgb @ torch.tensor([0.299, 0.587, 0.114]))).unsqueeze(1)  # same hue, that lightness
    return rgb.clamp(0, 1), idx


def _colours(n: int, g: torch.Generator, shortcut: str, knobs: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Foreground, top and bottom background colours ``(n, 3)`` each."""
    if shortcut == "colour":
        # every image its own colours: a foreground hue, and a background of another hue
        fh = torch.rand(n, generator=g)
        fs = 0.55 + 0.45 * torch.rand(n, generator=g)
        fv = 0.55 + 0.45 * torch.rand(n, generator=g)
        bh = torch.remainder(fh + 0.25 + 0.5 * torch.rand(n, generator=g), 1.0)
        bs = 0.25 + 0.5 * torch.rand(n, generator=g)
        bv = 0.25 + 0.45 * torch.rand(n, generator=g)
        top = _hsv_to_rgb(bh, bs, bv)
        bottom = _hsv_to_rgb(torch.remainder(bh + 0.1, 1.0), bs, bv * 0.6)
        return _hsv_to_rgb(fh, fs, fv), top, bottom
    hues = torch.tensor(knobs.get("fg_hues", FG_HUES))
    fh = hues[torch.randint(len(hues), (n,), generator=g)]
    fg = _hsv_to_rgb(fh, torch.full((n,), 0.8), torch.full((n,), 0.95))
    tones = torch.tensor(knobs.get("bg_tones", BG_TONES))
    t = tones[torch.randint(len(tones), (n,), generator=g)]
    top = _hsv_to_rgb(t[:, 0], t[:, 1], t[:, 2])
    return fg, top, top * 0.7 if shortcut == "light" else top


def generate_shapes(count: int = DEFAULT_COUNT, image_size: int = 32, seed: int = 0,
                    chunk: int = 512, shortcut: str = "none", colours: str = "any",
                    **knobs) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` images ``(count, 3, S, S)`` uint8 and their labels, the same for the same seed.

    ``shortcut="colour"`` gives every image its own foreground and background colours (drawn from
    the whole colour circle), so colour alone tells any two images apart: the lesson set on which
    SimCLR without strong colour jitter learns colour instead of shape.

    ``shortcut="light"`` lights every image from above (a background that darkens downwards and shapes
    shaded at their bottom), so the light alone says where "up" is: the lesson set on which RotNet
    predicts rotations from the light and learns nothing about shape.

    ``colours="typical"`` gives each shape typical colours (TYPICAL_HUES, taken with probability TYPICAL_P)
    at a lightness drawn on its own: the lesson set on which colour depends on the object, so predicting
    colour from lightness (colorization, split-brain) has to recognise the shape. Not with the colour
    shortcut. The default (``"any"``) draws exactly the images it always drew.
    """
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {', '.join(SHORTCUTS)}, got {shortcut!r}")
    if colours not in COLOURS or (colours == "typical" and shortcut == "colour"):
        raise ValueError(f"colours must be one of {', '.join(COLOURS)} (typical not with the colour shortcut), "
                         f"got {colours!r}")
    g = torch.Generator().manual_seed(int(seed))
    labels = torch.arange(count) % len(SHAPES)
    labels = labels[torch.randperm(count, generator=g)]
    out = torch.empty(count, 3, image_size, image_size, dtype=torch.uint8)
    ss = 2  # supersampling
    big = image_size * ss
    lin = (torch.arange(big, dtype=torch.float32) + 0.5) / big * 2 - 1
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    lo, hi = knobs.get("scale", SCALE)
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        lab = labels[start:start + n]
        # shape pose
        scale = lo + (hi - lo) * torch.rand(n, generator=g)
        margin = 1 - scale
        cx = (torch.rand(n, generator=g) * 2 - 1) * margin * 0.9
        cy = (torch.rand(n, generator=g) * 2 - 1) * margin * 0.9
        tilt = (torch.rand(n, generator=g) * 2 - 1) * math.radians(20)
        fg, top, bottom = _colours(n, g, shortcut, knobs)
        if colours == "typical":
            fg = _typical_foreground(lab, g, knobs)[0]
        # background: a flat tone (or, lit from above, a gradient darker at the bottom) and fine pixel
        # noise; neither says which image it is
        x = gx.expand(n, -1, -1)
        y = gy.expand(n, -1, -1)
        grad = ((y + 1) / 2).unsqueeze(1)
        bg = top[:, :, None, None] * (1 - grad) + bottom[:, :, None, None] * grad
        bg = bg + knobs.get("noise", 0.03) * torch.randn(n, 1, big, big, generator=g)
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
        # lit from above (both lesson sets): a little shading inside the shape, darker at its bottom
        shade = 1 - (0.0 if shortcut == "none" else 0.25) * ((v + 1) / 2).clamp(0, 1)
        fgimg = fg[:, :, None, None] * shade.unsqueeze(1)
        img = bg * (1 - occ.unsqueeze(1)) + fgimg * occ.unsqueeze(1)
        img = torch.nn.functional.avg_pool2d(img, ss)
        out[start:start + n] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return out, labels


@functools.lru_cache(maxsize=8)
def source_key(*files: str) -> str:
    """A fingerprint of the drawing code (this file and ``files``): a change to how images are drawn
    never reads an old cache."""
    import hashlib

    h = hashlib.sha1(Path(__file__).read_bytes())
    for f in files:
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:12]


def cached_arrays(kind: str, params: str, key: str, make, shapes: dict) -> dict:
    """The arrays ``make()`` returns (a dict of numpy arrays), kept in the cache folder as
    ``<kind>/<kind>-<params>-<key>.npz``: the same data comes back in milliseconds instead of seconds
    (the service, the training process and the next run all ask for it). ``shapes``: the expected shape of
    each array (a cache that does not match is drawn again). A missing, stale, unreadable or unwritable
    cache only costs the generation; files of an earlier drawing code (another ``key``) are removed."""
    import numpy as np

    from engine.data.folder import cache_dir

    name = f"{kind}-{params}-{key}.npz"
    try:
        path = cache_dir() / kind / name
    except (OSError, RuntimeError):  # no home folder
        return make()
    try:
        with np.load(path) as z:
            got = {k: z[k].copy() for k in shapes}
        if all(got[k].shape == tuple(v) for k, v in shapes.items()):
            return got
    except (OSError, ValueError, KeyError, EOFError):
        pass
    arrays = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)  # readers see the whole file or none
        for old in path.parent.glob(f"{kind}-*.npz"):  # drawn by an earlier version of the code
            if not old.name.endswith(f"-{key}.npz"):
                old.unlink(missing_ok=True)
    except OSError:
        pass
    return arrays


def cached_shapes(count: int, image_size: int, seed: int, shortcut: str = "none",
                  colours: str = "any") -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`generate_shapes`, kept in the cache folder (:func:`cached_arrays`)."""

    def make():
        images, labels = generate_shapes(count, image_size, seed, shortcut=shortcut, colours=colours)
        return {"images": images.numpy(), "labels": labels.numpy()}

    params = f"{count}-{image_size}-{seed}-{shortcut}" + ("" if colours == "any" else f"-{colours}")
    got = cached_arrays("shapes", params, source_key(), make,
                        {"images": (count, 3, image_size, image_size), "labels": (count,)})
    return torch.from_numpy(got["images"]), torch.from_numpy(got["labels"])


def load_shapes(count: int, image_size: int, split: str = "train", seed: int = 0,
                shortcut: str = "none", colours: str = "any") -> ImageData:
    # train and test come from different seeds so they never share an image
    split_seed = {"train": 1000 + seed, "test": 2000 + seed}[split]
    images, labels = cached_shapes(count, image_size, split_seed, shortcut, colours)
    options = ([f"shortcut={shortcut}"] if shortcut != "none" else []) + \
        ([f"colours={colours}"] if colours != "any" else [])
    query = ("?" + "&".join(options)) if options else ""
    notes = ([f"{shortcut} shortcut"] if shortcut != "none" else []) + \
        (["typical colours"] if colours != "any" else [])
    eval_source = f"builtin:shapes-test:{max(200, count // 5)}{query}" if split == "train" else ""
    return ImageData(
        name=("shapes" if split == "train" else "shapes (test)") + "".join(f", {n}" for n in notes),
        source=(f"builtin:shapes:{count}" if split == "train" else f"builtin:shapes-test:{count}") + query,
        images=images,
        labels=labels,
        class_names=list(SHAPES),
        eval_source=eval_source,
        fingerprint=f"shapes|{count}|{image_size}|{split_seed}|{shortcut}|"
                    + ("" if colours == "any" else f"{colours}|") + source_key(),
    )
