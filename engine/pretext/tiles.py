"""Drawing pretext batches as captioned tiles (plain numpy images) for any front end."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class PreviewTile:
    image: np.ndarray  # (H, W, 3) uint8
    caption: str = ""
    grid: int = 0  # draw an n x n grid over the tile
    boxes: list = field(default_factory=list)  # [(x0, y0, x1, y1, "#rrggbb", label)] in pixels
    highlight: bool = False


@dataclass
class PreviewRow:
    title: str
    tiles: list[PreviewTile]


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float in [0, 1] -> (B, H, W, 3) uint8."""
    return (x.detach().float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1]."""
    arr = np.ascontiguousarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(255)


# -- shared drawings ------------------------------------------------------------------------------
def describe_view(params: dict, i: int) -> str:
    box = params["box"][i]
    area = float((box[2] - box[0]) * (box[3] - box[1]) / 4)
    parts = [f"crop {area:.0%}"]
    if bool(params["flip"][i]):
        parts.append("flip")
    if bool(params["jitter"][i]):
        parts.append("jitter")
    if bool(params["gray"][i]):
        parts.append("gray")
    if float(params["blur_sigma"][i]) > 0:
        parts.append(f"blur {float(params['blur_sigma'][i]):.1f}")
    if bool(params["solarize"][i]):
        parts.append("solarize")
    return " ".join(parts)


def crop_box_pixels(box, size: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = ((float(v) + 1) / 2 * size for v in box)
    return max(0.0, x0), max(0.0, y0), min(float(size), x1), min(float(size), y1)


def views_rows(x: torch.Tensor, batch, titles=("view 1", "view 2")) -> list[PreviewRow]:
    """Original (with the crop boxes drawn) next to each view, one row per image."""
    orig = to_uint8(x)
    views = [to_uint8(v) for v in batch.inputs]
    params = batch.meta.get("params")
    colors = ("#ff4040", "#40a0ff", "#40ff80", "#ffd040")
    rows = []
    size = x.shape[-1]
    for i in range(x.shape[0]):
        boxes = []
        tiles_v = []
        for v, view in enumerate(views):
            cap = titles[v] if v < len(titles) else f"view {v + 1}"
            if params is not None:
                cap = f"{cap}: {describe_view(params[v], i)}"
                boxes.append((*crop_box_pixels(params[v]['box'][i], size), colors[v % 4], str(v + 1)))
            tiles_v.append(PreviewTile(view[i], cap))
        rows.append(PreviewRow(f"image {i + 1}", [PreviewTile(orig[i], "original", boxes=boxes)] + tiles_v))
    return rows


def assemble_tiles(tiles: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, grid*grid, C, t, t) tiles -> (B, C, grid*t, grid*t) images, row by row."""
    b, n, c, t, _ = tiles.shape
    x = tiles.view(b, grid, grid, c, t, t).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, grid * t, grid * t)
