"""Image folders: class sub-folders give labels, a flat folder is unlabeled.

Every common format and mode is converted to 8-bit RGB. Files that cannot be read (corrupt,
truncated, not an image) are skipped, counted and reported by name, never fatal. Decoded
datasets are cached on disk (keyed by path, size and modification time of every file), so a
second open of the same folder takes a fraction of a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from engine.data.base import Cancelled, DataError, ImageData, ProgressFn
from engine.data.decode import decode_image

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
SPLIT_NAMES = ("train", "val", "valid", "validation", "test")


def cache_dir() -> Path:
    root = os.environ.get("SSLWB_CACHE_DIR") or os.path.join(Path.home(), ".cache", "ssl-workbench")
    return Path(root)


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in EXTENSIONS and not p.name.startswith(".")


def _images_below(folder: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(root) / f for f in sorted(files) if _is_image(Path(f)))
    return out


def split_layout(folder: Path) -> tuple[Path, Path | None] | None:
    """A folder with ``train/`` and ``val/`` (or ``test/``) sub-folders: (train, eval)."""
    train = folder / "train"
    if not train.is_dir():
        return None
    for name in ("val", "valid", "validation", "test"):
        if (folder / name).is_dir():
            return train, folder / name
    return train, None


def scan_folder(folder: str | Path) -> tuple[list[Path], list[int] | None, list[str] | None, list[str]]:
    """List image files: (paths, labels or None, class names or None, notes)."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise DataError(f"folder {folder} does not exist; choose an existing folder of images")
    if not folder.is_dir():
        raise DataError(f"{folder} is a file, not a folder; choose the folder that holds the images")
    notes: list[str] = []
    try:
        entries = sorted(folder.iterdir())
    except PermissionError:
        raise DataError(f"cannot read folder {folder}: permission denied") from None
    subdirs = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    loose = [p for p in entries if p.is_file() and _is_image(p)]
    classes: list[tuple[str, list[Path]]] = []
    for d in subdirs:
        files = _images_below(d)
        if files:
            classes.append((d.name, files))
    if classes:
        if loose:
            notes.append(f"{len(loose)} image(s) directly in {folder.name}/ are not in a class folder "
                         "and were left out")
        if len(classes) == 1:
            notes.append(f"only one class folder ({classes[0][0]}): treated as unlabeled")
            return classes[0][1], None, None, notes
        paths, labels = [], []
        for k, (_, files) in enumerate(classes):
            paths.extend(files)
            labels.extend([k] * len(files))
        return paths, labels, [c for c, _ in classes], notes
    if loose:
        notes.append("no class sub-folders: the images are unlabeled (label-based evaluation is skipped)")
        return loose, None, None, notes
    raise DataError(f"folder {folder} holds no images ({', '.join(sorted(EXTENSIONS))}); "
                    "put images in it, or in one sub-folder per class")


def _cache_key(paths: list[Path], size: int) -> str:
    h = hashlib.sha1()
    h.update(f"v1|{size}|".encode())
    for p in paths:
        try:
            st = p.stat()
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}|missing\n".encode())
    return h.hexdigest()[:24]


def decode_files(paths: list[Path], size: int, progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None, workers: int = 4
                 ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Decode ``paths``: (images ``(n_ok, size, size, 3)``, indices of the good ones, skipped)."""
    n = len(paths)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    ok = np.zeros(n, dtype=bool)
    skipped: list[tuple[str, str]] = []
    lock = threading.Lock()
    done = [0]

    def work(i: int) -> None:
        if cancel is not None and cancel.is_set():
            return
        try:
            out[i] = decode_image(paths[i], size)
            ok[i] = True
        except Exception as exc:  # any unreadable file is skipped and reported
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            with lock:
                skipped.append((str(paths[i]), reason))
        with lock:
            done[0] += 1
            if progress is not None and (done[0] % 256 == 0 or done[0] == n):
                progress(done[0], n, "decoding images")

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(work, range(n)))
    if cancel is not None and cancel.is_set():
        raise Cancelled("loading was cancelled")
    good = np.flatnonzero(ok)
    skipped.sort()
    return out[good], good.tolist(), skipped


def load_folder(folder: str | Path, image_size: int, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None, use_cache: bool = True,
                max_images: int = 0, memory_limit_mb: int = 0, workers: int = 4) -> ImageData:
    folder = Path(folder).expanduser().resolve()
    layout = split_layout(folder)
    eval_source = ""
    notes: list[str] = []
    if layout is not None:
        train_dir, eval_dir = layout
        notes.append(f"found a train/ split in {folder.name}: training on train/"
                     + (f", evaluating on {eval_dir.name}/" if eval_dir else ""))
        if eval_dir is not None:
            eval_source = str(eval_dir)
        folder = train_dir
    paths, labels, classes, scan_notes = scan_folder(folder)
    notes.extend(scan_notes)
    if max_images and len(paths) > max_images:
        rng = np.random.default_rng(0)
        keep = np.sort(rng.choice(len(paths), size=max_images, replace=False))
        paths = [paths[i] for i in keep]
        labels = None if labels is None else [labels[i] for i in keep]
        notes.append(f"using {max_images} of the folder's images (max_images)")
    if progress is not None:
        progress(0, len(paths), f"found {len(paths)} images")

    est_mb = len(paths) * image_size * image_size * 3 / 2**20
    if memory_limit_mb and est_mb > memory_limit_mb:
        from engine.data.streaming import StreamingFolderData

        return StreamingFolderData(folder, paths, labels, classes, image_size, notes, eval_source)

    key = _cache_key(paths, image_size)
    cache_file = cache_dir() / "folders" / f"{key}.npz"
    arrays = None
    if use_cache and cache_file.exists():
        try:
            with np.load(cache_file, allow_pickle=False) as z:
                arrays = z["images"], z["good"].tolist(), json.loads(str(z["skipped"]))
        except Exception:
            arrays = None  # a broken cache is rebuilt
    if arrays is None:
        arrays = decode_files(paths, image_size, progress, cancel, workers=workers)
        if use_cache:
            try:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_file.with_name(cache_file.name + f".{os.getpid()}.tmp.npz")
                np.savez(tmp, images=arrays[0], good=np.asarray(arrays[1], dtype=np.int64),
                         skipped=json.dumps(arrays[2]))
                os.replace(tmp, cache_file)
            except OSError:
                pass  # the cache is an optimisation only
    elif progress is not None:
        progress(len(paths), len(paths), "read from cache")
    images, good, skipped = arrays
    skipped = [tuple(s) for s in skipped]
    if len(good) == 0:
        names = ", ".join(Path(p).name for p, _ in skipped[:5])
        raise DataError(f"none of the {len(paths)} image files in {folder} could be read "
                        f"(e.g. {names}); check that they are valid images")
    if skipped:
        notes.append(f"skipped {len(skipped)} unreadable file(s): "
                     + "; ".join(f"{Path(p).name} ({r})" for p, r in skipped[:5])
                     + (" ..." if len(skipped) > 5 else ""))
    kept_paths = [str(paths[i]) for i in good]
    label_t = None
    if labels is not None:
        label_t = torch.as_tensor([labels[i] for i in good], dtype=torch.long)
    return ImageData(
        name=folder.name if layout is None else folder.parent.name,
        source=str(folder),
        images=torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous(),
        labels=label_t,
        class_names=classes,
        paths=kept_paths,
        skipped=skipped,
        notes=notes,
        eval_source=eval_source,
    )
