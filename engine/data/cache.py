"""The cache folder (``SSLWB_CACHE_DIR``) and what every cache in it uses: the key of a set of files and an
atomic write."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("SSLWB_CACHE_DIR") or os.path.join(Path.home(), ".cache", "ssl-workbench")
    return Path(root)


def cache_key(paths: list, size: int, stamps: dict | None = None, kind: str = "") -> str:
    """The decoded cache's name: every file's path, size and modification time (``stamps`` from the
    scan, else one stat each), the image size and the decoder's version."""
    h = hashlib.sha1()
    h.update(f"v2|{size}|{kind}".encode())  # v2: EXIF orientation applied
    stamps = stamps or {}
    for p in paths:
        got = stamps.get(str(p))
        if got is None:
            try:
                st = os.stat(p)
                got = (st.st_size, st.st_mtime_ns)
            except OSError:
                got = None
        h.update((f"{p}|{got[0]}|{got[1]}\n" if got else f"{p}|missing\n").encode())
    return h.hexdigest()[:24]


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file: a reader sees the old file, or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


__all__ = ["cache_dir", "cache_key", "write_atomic"]
