"""Decoding one image file of any common format and mode to 8-bit RGB at a fixed size."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def decode_image(path: str | Path, size: int) -> np.ndarray:
    """Read any supported image as ``(size, size, 3)`` uint8: shorter side resized, centre-cropped."""
    from PIL import Image

    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("RGB", (size, size))  # decode JPEG at a reduced scale when it is large
        img.load()
        img = to_rgb(img)
        w, h = img.size
        if w < 1 or h < 1:
            raise ValueError("empty image")
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), Image.BICUBIC if scale > 1 else Image.LANCZOS, reducing_gap=3.0
                             if scale < 0.5 else None)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
        arr = np.asarray(img, dtype=np.uint8)
    if arr.shape != (size, size, 3):
        raise ValueError(f"unexpected decoded shape {arr.shape}")
    return arr


def to_rgb(img):
    """Convert every PIL mode to RGB: 16-bit and float scaled to 8 bit, alpha composited on black."""
    from PIL import Image

    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if mode.startswith("I;16") and hi <= 65535 and lo >= 0:
            lo, hi = 0.0, 65535.0 if hi > 255 else 255.0
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        return Image.fromarray(scaled.round().astype(np.uint8), mode="L").convert("RGB")
    if mode in ("P", "PA"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")
