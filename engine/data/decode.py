"""Decoding one image file of any common format and mode to 8-bit RGB at a fixed size."""

from __future__ import annotations

import os
import stat
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from engine.data.base import Cancelled


def _quiet_bomb_warning() -> None:
    """PIL warns (on stderr) about very large images; :func:`decode_image` reports them as a
    skipped file's reason instead, so that warning is ignored (re-added if a caller such as
    ``warnings.catch_warnings`` reset the filters)."""
    from PIL import Image

    category = Image.DecompressionBombWarning
    if not any(f[0] == "ignore" and f[2] is category for f in warnings.filters):
        warnings.filterwarnings("ignore", category=category)


def open_regular(path: str | Path):
    """Open ``path`` for reading without ever blocking: a named pipe, socket or device is refused
    (``O_NONBLOCK`` makes even the open of a pipe return at once)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a named pipe" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) \
                else "a special file"
            raise ValueError(f"not a regular file ({kind}); not read")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def decode_image(path: str | Path, size: int) -> np.ndarray:
    """Read any supported image as ``(size, size, 3)`` uint8: turned upright by its EXIF orientation,
    shorter side resized, centre-cropped. Raises (with a one-line reason) for a file that cannot be
    used, including an image over PIL's pixel limit (a possible decompression bomb)."""
    from PIL import Image, ImageOps

    _quiet_bomb_warning()
    with open_regular(path) as fh:
        try:
            img = Image.open(fh)
        except Image.DecompressionBombError:  # PIL refuses past twice its limit: the limit is what counts
            raise ValueError(f"too large to decode safely (over {Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; "
                             "a possible decompression bomb)") from None
        except Image.UnidentifiedImageError:  # its text names the open file object, not the file
            raise ValueError("not an image that can be read (an unknown format, or the file is damaged)") from None
        with img:
            w, h = img.size
            limit = Image.MAX_IMAGE_PIXELS
            if limit and w * h > limit:
                raise ValueError(f"too large to decode safely ({w} x {h} pixels, over {limit / 1e6:.0f} "
                                 "megapixels; a possible decompression bomb)")
            if img.format == "JPEG":
                img.draft("RGB", (size, size))  # decode JPEG at a reduced scale when it is large
            img.load()
            img = ImageOps.exif_transpose(img) or img  # a phone's portrait photo stands upright
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
            arr = np.array(img, dtype=np.uint8)  # writable: torch.from_numpy warns on a read-only view
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


def skipped_text(skipped: list[tuple[str, str]], limit: int) -> str:
    shown = "; ".join(f"{Path(p).name} ({r})" for p, r in skipped[:limit])
    more = len(skipped) - limit
    return shown + (f"; and {more} more" if more > 0 else "")


def skip_reason(exc: BaseException) -> str:
    """Why a file was skipped, in one line that names no Python object (a library's text can hold the
    repr of an open file, ``<_io.BufferedReader name=3>``: the row already names the file)."""
    import re

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"<[\w.]+ (?:name|object)[^>]*>", "the file", text).strip()


def skipped_note(skipped: list[tuple[str, str]], where: str = "") -> str:
    """One line about skipped files: the first few with their reasons, where the rest are listed."""
    text = f"skipped {len(skipped)} file(s){where}: {skipped_text(skipped, 3)}"
    return text + (" (all listed in the run's data.json)" if len(skipped) > 3 else "")


def decode_into(paths: list, out: np.ndarray, progress: Callable[[int], None] | None = None,
                cancel: threading.Event | None = None, workers: int = 4
                ) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Decode ``paths`` into the rows of ``out`` (uint8 ``(n, 3, size, size)``) on ``workers`` threads:
    (a mask of the rows decoded, the files skipped with their reasons). ``progress(k)`` hears every
    ``k`` more files done. Ctrl-C (or ``cancel``) ends it within one image per worker: the pending files
    are dropped."""
    n, size = len(paths), out.shape[-1]
    ok = np.zeros(n, dtype=bool)
    skipped: list[tuple[str, str]] = []
    lock = threading.Lock()
    pending = [0]
    stop = threading.Event()

    def work(i: int) -> None:
        if stop.is_set() or cancel is not None and cancel.is_set():
            return
        try:
            out[i] = decode_image(paths[i], size).transpose(2, 0, 1)
            ok[i] = True
        except Exception as exc:  # any unreadable file is skipped and reported
            reason = skip_reason(exc)
            with lock:
                skipped.append((str(paths[i]), reason))
        with lock:
            pending[0] += 1
            if progress is not None and pending[0] >= 256:
                progress(pending[0])
                pending[0] = 0

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        for fut in [pool.submit(work, i) for i in range(n)]:
            fut.result()
    except BaseException:  # Ctrl-C: drop what is queued, do not wait for it
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    if cancel is not None and cancel.is_set():
        raise Cancelled("loading was cancelled")
    if progress is not None and pending[0]:
        progress(pending[0])
    skipped.sort()
    return ok, skipped
