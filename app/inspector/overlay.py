"""Where an encoder looks, drawn without Qt: attention maps (``op_attention``'s reply) over their images.

A map is a (gh, gw) grid that sums to 1 (a ViT head's class-token attention, or a CNN's feature-norm map).
:func:`top_mass_mask` keeps the smallest set of cells that holds a share of a map's mass (DINO's threshold);
:func:`attention_tiles` makes the pictures the Attention tab shows for a head choice and a threshold."""

from __future__ import annotations

import numpy as np

MEAN, ALL = "mean", "all"  # the head choices besides a head's number
# a dark-to-bright heat scale (black, purple, red, orange, yellow, white)
_HEAT = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)


def top_mass_mask(maps: np.ndarray, keep: float) -> np.ndarray:
    """Boolean masks of the cells that hold ``keep`` (0..1) of each map's mass, the largest cells first (the
    fewest cells that do); maps of any leading shape (..., gh, gw)."""
    a = np.asarray(maps, np.float64)
    flat = a.reshape(-1, a.shape[-2] * a.shape[-1])
    order = np.argsort(-flat, axis=1, kind="stable")
    s = np.take_along_axis(flat, order, axis=1)
    total = s.sum(axis=1, keepdims=True)
    share = np.cumsum(s, axis=1) / np.where(total > 0, total, 1.0)
    keep = float(np.clip(keep, 0.0, 1.0))
    # a cell is kept while the mass before it is short of ``keep``
    before = np.concatenate([np.zeros((len(s), 1)), share[:, :-1]], axis=1)
    kept_sorted = before < keep - 1e-9
    mask = np.zeros_like(kept_sorted)
    np.put_along_axis(mask, order, kept_sorted, axis=1)
    return mask.reshape(a.shape)


def upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """A (gh, gw) grid stretched to (height, width) cell by cell (each patch a block, as the model saw it)."""
    g = np.asarray(grid)
    rows = np.minimum(np.arange(height) * g.shape[0] // max(1, height), g.shape[0] - 1)
    cols = np.minimum(np.arange(width) * g.shape[1] // max(1, width), g.shape[1] - 1)
    return g[rows][:, cols]


def heat(values: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 on the heat scale."""
    v = np.clip(np.asarray(values, np.float32), 0, 1) * (len(_HEAT) - 1)
    lo = np.floor(v).astype(np.int64).clip(0, len(_HEAT) - 2)
    t = (v - lo)[..., None]
    return (_HEAT[lo] * (1 - t) + _HEAT[lo + 1] * t).round().astype(np.uint8)


def scaled(amap: np.ndarray) -> np.ndarray:
    """A map stretched to 0..1 between its smallest and largest cell, so its pattern shows whatever the grid's
    size and however evenly it spreads (an even map is all 0)."""
    m = np.asarray(amap, np.float32)
    if not m.size:
        return m
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi - lo > 1e-12 else np.zeros_like(m)


def overlay(image: np.ndarray, amap: np.ndarray, alpha: float = 0.65) -> np.ndarray:
    """The image (H, W, 3 uint8) with the map over it on the heat scale (stretched between its smallest and
    largest cell: dark where the encoder looks least, bright where it looks most)."""
    img = np.asarray(image, np.float32)
    h = heat(upsample(scaled(amap), img.shape[0], img.shape[1])).astype(np.float32)
    return (img * (1 - alpha) + h * alpha).round().clip(0, 255).astype(np.uint8)


def keep_only(image: np.ndarray, mask: np.ndarray, dim: float = 0.15) -> np.ndarray:
    """The image with only the kept cells (``mask``: (gh, gw) bool) shown, the rest darkened."""
    img = np.asarray(image, np.float32)
    m = upsample(mask, img.shape[0], img.shape[1])[..., None]
    return np.where(m, img, img * dim).round().astype(np.uint8)


def head_choices(heads: int, kind: str) -> list[tuple[str, object]]:
    """The head box's entries (text, value): the mean and all heads, then each head; one map for a CNN."""
    if heads <= 1:
        return [("the feature-norm map" if kind == "feature norm" else "the map", MEAN)]
    return [("mean of heads", MEAN), ("all heads", ALL)] + [(f"head {h + 1}", h) for h in range(heads)]


def chosen_maps(attention: np.ndarray, head) -> np.ndarray:
    """(n, gh, gw): the mean over heads, or one head's maps (``attention``: (n, heads, gh, gw))."""
    a = np.asarray(attention, np.float32)
    if head in (MEAN, ALL) or a.shape[1] == 1:
        return a.mean(axis=1)
    return a[:, int(head)]


def attention_tiles(reply: dict, head=MEAN, keep: float = 0.6) -> tuple[list, list[str], list[str], int]:
    """The pictures of an ``attention`` reply for one head choice and threshold: (images, captions, tooltips,
    tiles per image). Per image: the image, the chosen map over it and the image with only the cells that hold
    ``keep`` of that map's mass; with ``ALL``: the image, the mean, then every head."""
    images, att = reply["images"], np.asarray(reply["attention"], np.float32)
    idx = [int(i) for i in reply.get("indices", range(len(images)))]
    names, labels = list(reply.get("class_names") or []), reply.get("labels")
    heads = att.shape[1]
    pct = f"{round(100 * keep)}%"
    out, caps, tips = [], [], []
    for j, image in enumerate(images):
        label = ""
        if labels is not None and names and 0 <= int(labels[j]) < len(names):
            label = names[int(labels[j])]
        what = f"image #{idx[j]}" + (f" · {label}" if label else "")
        if head == ALL and heads > 1:
            maps = [("mean", att[j].mean(axis=0))] + [(f"head {h + 1}", att[j, h]) for h in range(heads)]
            out.append(image)
            caps.append(f"#{idx[j]}" + (f" {label}" if label else ""))
            tips.append(what)
            for name, m in maps:
                out.append(overlay(image, m))
                caps.append(name)
                tips.append(f"{what} · {name}")
            continue
        m = chosen_maps(att[j:j + 1], head)[0]
        name = "mean of heads" if head == MEAN and heads > 1 else ("map" if heads == 1 else f"head {int(head) + 1}")
        mask = top_mass_mask(m, keep)
        out += [image, overlay(image, m), keep_only(image, mask)]
        caps += [f"#{idx[j]}" + (f" {label}" if label else ""), name, f"top {pct}"]
        tips += [what, f"{what} · {name}", f"{what} · the {int(mask.sum())} of {mask.size} patches that hold {pct} "
                                            f"of the {name}'s mass"]
    per = (2 + heads) if head == ALL and heads > 1 else 3
    return out, caps, tips, per


def parse_indices(text: str) -> list[int]:
    """"0, 5, 17" or "3-7" -> image indices; a ValueError says what is wrong."""
    out: list[int] = []
    for part in str(text or "").replace(";", ",").replace(" ", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo, hi = int(a), int(b)
                if hi < lo or hi - lo > 256:
                    raise ValueError
                out += list(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(f"{part!r} is not an image number; give numbers such as 0, 5, 17 or a range 3-7") \
                from None
    if any(i < 0 for i in out):
        raise ValueError("image numbers start at 0")
    if not out:
        raise ValueError("give the images to look at, e.g. 0, 5, 17 or 0-7")
    return list(dict.fromkeys(out))[:64]
