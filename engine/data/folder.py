"""Image folders: class sub-folders give labels, a flat folder is unlabeled.

Every common format and mode is converted to 8-bit RGB. Files that cannot be read (corrupt,
truncated, not an image) are skipped, counted and reported by name, never fatal. Decoded
datasets are cached on disk (keyed by path, size and modification time of every file, read once
by the scan), so a second open of the same folder reads one file: a ``(N, 3, H, W)`` uint8
``.npy`` (and a small ``.json`` beside it) for a set that fits ``memory_limit_mb``, shards for one
that does not (:mod:`engine.data.shards`). ``SSLWB_CACHE_DIR`` moves the cache; a changed, added
or removed file gives another key, so a stale cache is never read.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.data.base import Cancelled, DataError, ImageData, ProgressFn
from engine.data.cache import cache_dir, cache_key, write_atomic  # noqa: F401  (named here too)
from engine.data.decode import decode_image, decode_into, skip_reason, skipped_note, skipped_text  # noqa: F401

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"}
SPLIT_NAMES = ("train", "val", "valid", "validation", "test")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@dataclass
class FolderScan:
    """What a folder scan found: the image files, their labels, and everything it left out."""

    paths: list[str]  # the image files' paths
    labels: list[int] | None
    classes: list[str] | None
    notes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) never opened
    stamps: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (size, mtime ns), from the scan


class _Walker:
    """Walks image folders once each: directory links are followed only to folders outside the
    dataset (``fence``) that were not seen yet (no loops, no image counted twice, no held-out
    split leaking in); files that are not regular files (named pipes, sockets, devices) are
    listed as skipped without being opened, so a scan can never block."""

    def __init__(self, fence: Path, progress: ProgressFn | None = None, cancel: threading.Event | None = None):
        self.fence = fence
        self.seen_dirs: set[tuple[int, int]] = set()
        self.seen_files: dict[tuple[int, int], str] = {}
        self.stamps: dict[str, tuple[int, int]] = {}  # path -> (size, modification time in ns) of every image listed
        self.skipped: list[tuple[str, str]] = []
        self.unfollowed: list[tuple[Path, str]] = []
        self.progress, self.cancel = progress, cancel
        self.told = 0

    def found(self) -> None:
        """Every few thousand files: the count so far (a scan of a large folder on a slow disk takes a
        while), and a cancel check."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("loading was cancelled")
        n = len(self.stamps)
        if self.progress is not None and n - self.told >= 4096:
            self.told = n
            self.progress(0, 0, f"scanning the folder: {n:,} images found")

    def entries(self, folder: Path) -> tuple[list[Path], list[str]]:
        """(sub-folders to enter, image files) directly in ``folder``, sorted by name. The files are
        strings: a folder of 100,000 images costs no path object per file."""
        try:
            items = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            self.skipped.append((str(folder), f"cannot read this folder ({exc.strerror or exc})"))
            return [], []
        dirs: list[Path] = []
        files: list[str] = []
        for e in items:
            name = e.name
            if name.startswith("."):
                continue
            image = os.path.splitext(name)[1].lower() in EXTENSIONS
            if image and not e.is_symlink():  # most entries: a plain file, one stat (kept for the key)
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    st = None
                if st is not None and stat.S_ISREG(st.st_mode):
                    self.add(e.path, st, files)
                    continue
            p = folder / name
            try:
                is_link = e.is_symlink()
                is_dir = e.is_dir(follow_symlinks=True)
            except OSError:
                is_link, is_dir = True, False
            if is_dir:
                if is_link:
                    real = Path(os.path.realpath(p))
                    if _inside(real, self.fence) or _inside(self.fence, real):
                        self.unfollowed.append((p, "it points into the dataset itself"))
                        continue
                dirs.append(p)
            elif image:
                self.file(str(p), files)
        self.found()
        return dirs, files

    def file(self, p: str, out: list[str]) -> None:
        try:
            st = os.stat(p)
        except OSError as exc:
            reason = "a broken link" if os.path.islink(p) else f"cannot be read ({exc.strerror or exc})"
            self.skipped.append((p, reason))
            return
        if not stat.S_ISREG(st.st_mode):
            kind = "a named pipe" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) \
                else "a device or other special file"
            self.skipped.append((p, f"not a regular file ({kind}); not opened"))
            return
        self.add(p, st, out)

    def add(self, p: str, st: os.stat_result, out: list[str]) -> None:
        key = (st.st_dev, st.st_ino)
        first = self.seen_files.get(key)
        if first is not None:
            self.skipped.append((p, f"the same file as {first} (a link); used once"))
            return
        self.seen_files[key] = p
        self.stamps[p] = (st.st_size, st.st_mtime_ns)
        out.append(p)

    def enter(self, folder: Path) -> bool:
        try:
            st = os.stat(folder)
        except OSError as exc:
            self.skipped.append((str(folder), f"cannot read this folder ({exc.strerror or exc})"))
            return False
        key = (st.st_dev, st.st_ino)
        if key in self.seen_dirs:
            self.unfollowed.append((folder, "its folder was already scanned (a loop)"))
            return False
        self.seen_dirs.add(key)
        return True

    def images_below(self, folder: Path) -> list[str]:
        if not self.enter(folder):
            return []
        dirs, out = self.entries(folder)
        for d in dirs:
            out.extend(self.images_below(d))
        return out

    def notes(self) -> list[str]:
        if not self.unfollowed:
            return []
        shown = "; ".join(f"{p} ({why})" for p, why in self.unfollowed[:3])
        more = f" and {len(self.unfollowed) - 3} more" if len(self.unfollowed) > 3 else ""
        return [f"{len(self.unfollowed)} folder link(s) not followed: {shown}{more}"]


def split_layout(folder: Path) -> tuple[Path, Path | None] | None:
    """A folder with ``train/`` and ``val/`` (or ``test/``) sub-folders: (train, eval)."""
    train = folder / "train"
    if not train.is_dir():
        return None
    for name in ("val", "valid", "validation", "test"):
        if (folder / name).is_dir():
            return train, folder / name
    return train, None


def dataset_fence(folder: Path) -> Path:
    """The folder a scan of ``folder`` must not re-enter through links: the whole dataset, so that
    a split (``train/``, ``val/``) never takes in the other split's images."""
    folder = Path(folder)
    if folder.name.lower() in SPLIT_NAMES and (folder.parent / "train").is_dir():
        return folder.parent
    return folder


def scan_folder(folder: str | Path, fence: Path | None = None, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None) -> FolderScan:
    """List image files: paths, labels or None, class names or None, notes, skipped files (and each
    file's size and time, for the cache key). ``progress`` hears the count found every few thousand
    files; ``cancel`` ends the scan with :class:`Cancelled`."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise DataError(f"folder {folder} does not exist; choose an existing folder of images")
    if not folder.is_dir():
        raise DataError(f"{folder} is a file, not a folder; choose the folder that holds the images")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise DataError(f"cannot read folder {folder}: permission denied")
    folder = folder.resolve()
    walker = _Walker(Path(os.path.realpath(fence)) if fence is not None else dataset_fence(folder), progress, cancel)
    walker.enter(folder)
    subdirs, loose = walker.entries(folder)
    notes: list[str] = []
    classes: list[tuple[str, list[str]]] = []
    for d in subdirs:
        files = walker.images_below(d)
        if files:
            classes.append((d.name, files))
    notes.extend(walker.notes())

    def result(paths, labels, names) -> FolderScan:
        return FolderScan(paths, labels, names, notes, walker.skipped, walker.stamps)

    if classes:
        if loose:
            notes.append(f"{len(loose)} image(s) directly in {folder.name}/ are not in a class folder "
                         "and were left out")
        if len(classes) == 1:
            notes.append(f"only one class folder ({classes[0][0]}): treated as unlabeled")  # engine.data.ONE_CLASS
            return result(classes[0][1], None, None)
        paths, labels = [], []
        for k, (_, files) in enumerate(classes):
            paths.extend(files)
            labels.extend([k] * len(files))
        return result(paths, labels, [c for c, _ in classes])
    if loose:
        notes.append("no class sub-folders: the images are unlabeled (label-based evaluation is skipped)")
        return result(loose, None, None)
    found = f" (and {len(walker.skipped)} file(s) that cannot be read: " \
            f"{skipped_text(walker.skipped, 3)})" if walker.skipped else ""
    raise DataError(f"folder {folder} holds no images ({', '.join(sorted(EXTENSIONS))}){found}; "
                    "put images in it, or in one sub-folder per class")


def decode_files(paths: list, size: int, progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None, workers: int = 4
                 ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Decode ``paths``: (images ``(n_ok, 3, size, size)``, indices of the good ones, skipped)."""
    n = len(paths)
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    done = [0]

    def tick(k: int) -> None:
        done[0] += k
        if progress is not None:
            progress(done[0], n, "decoding images")

    ok, skipped = decode_into(paths, out, tick, cancel, workers)
    good = np.flatnonzero(ok)
    return (out if len(good) == n else out[good]), good.tolist(), skipped


def check_folder(folder: Path, image_size: int) -> bool:
    """Raise :class:`DataError` unless ``folder`` (and its eval split, if it has one) holds at least
    one image that decodes; cheap for a good folder (a scan and one decode). True if labelled."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        scan_folder(folder)  # raises: missing, or a file
    folder = folder.resolve()
    layout = split_layout(folder)
    parts = [(folder, None)] if layout is None else [(d, folder) for d in layout if d is not None]
    labelled = False
    for k, (part, fence) in enumerate(parts):
        scan = scan_folder(part, fence=fence)
        labelled = labelled or (k == 0 and scan.labels is not None)
        bad: list[tuple[str, str]] = []
        for p in scan.paths:
            try:
                decode_image(p, image_size)
                break
            except Exception as exc:
                bad.append((str(p), str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__))
        else:
            bad = sorted(scan.skipped + bad)
            raise DataError(f"none of the {len(scan.paths)} image files in {part} could be read "
                            f"(e.g. {skipped_text(bad, 3)}); check that they are valid images")
    return labelled


def load_folder(folder: str | Path, image_size: int, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None, use_cache: bool = True,
                max_images: int = 0, memory_limit_mb: int = 0, workers: int = 4):
    """An image folder as :class:`ImageData` (decoded once, then read from the cache), or, when its decoded
    images would take more than ``memory_limit_mb``, as a streamed set read from decoded shards
    (:class:`engine.data.shards.ShardedFolderData`). ``progress`` hears the scan and the decoding;
    ``cancel`` ends either with :class:`Cancelled`."""
    folder = Path(folder).expanduser().resolve()
    layout = split_layout(folder)
    eval_source = ""
    notes: list[str] = []
    fence = dataset_fence(folder)
    if layout is not None:
        train_dir, eval_dir = layout
        notes.append(f"found a train/ split in {folder.name}: training on train/"
                     + (f", evaluating on {eval_dir.name}/" if eval_dir else ""))
        if eval_dir is not None:
            eval_source = str(eval_dir)
        fence = folder
        folder = train_dir
    if progress is not None:
        progress(0, 0, f"scanning {folder}")
    scan = scan_folder(folder, fence=fence, progress=progress, cancel=cancel)
    paths, labels, classes = scan.paths, scan.labels, scan.classes
    notes.extend(scan.notes)
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
        from engine.data.shards import open_streamed

        return open_streamed(folder, scan, paths, labels, image_size, notes, eval_source, progress=progress,
                             cancel=cancel, use_cache=use_cache, workers=workers, memory_limit_mb=memory_limit_mb)

    key = cache_key(paths, image_size, scan.stamps)
    images, good, skipped = _decoded(paths, image_size, key, progress, cancel, use_cache, workers)
    skipped = sorted(scan.skipped + skipped)
    if len(good) == 0:
        raise DataError(f"none of the {len(paths)} image files in {folder} could be read "
                        f"(e.g. {skipped_text(skipped, 3)}); check that they are valid images")
    if skipped:
        notes.append(skipped_note(skipped))
    kept_paths = [str(paths[i]) for i in good]
    label_t = None
    if labels is not None:
        label_t = torch.as_tensor(np.asarray(labels, dtype=np.int64)[np.asarray(good, dtype=np.int64)])
    return ImageData(
        name=folder.name if layout is None else folder.parent.name,
        source=str(folder),
        images=torch.from_numpy(images),
        labels=label_t,
        class_names=classes,
        paths=kept_paths,
        skipped=skipped,
        notes=notes,
        eval_source=eval_source,
        fingerprint=key,
    )


def _decoded(paths: list, size: int, key: str, progress: ProgressFn | None,
             cancel: threading.Event | None, use_cache: bool, workers: int
             ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """(images ``(n_ok, 3, size, size)``, indices of the good files, skipped files): from the cache when it
    holds exactly these files at this size, else decoded (and cached)."""
    base = cache_dir() / "folders" / key
    npy, meta = base.with_suffix(".npy"), base.with_suffix(".json")
    if use_cache:
        got = _read_cached(npy, meta, size)
        if got is not None:
            if progress is not None:
                progress(len(paths), len(paths), "read from the cache")
            return got
    images, good, skipped = decode_files(paths, size, progress, cancel, workers=workers)
    if use_cache:
        try:
            npy.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(meta, json.dumps({"good": good, "skipped": skipped}).encode())
            tmp = npy.with_name(f".{npy.stem}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, images, allow_pickle=False)
            os.replace(tmp, npy)  # readers see the whole file or none
        except OSError:
            pass  # the cache is an optimisation only
    return images, good, skipped


def _read_cached(npy: Path, meta: Path, size: int):
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
        good, skipped = [int(i) for i in info["good"]], [tuple(s) for s in info["skipped"]]
        images = np.load(npy, allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None  # missing or broken: decoded again
    if images.dtype != np.uint8 or images.shape[1:] != (3, size, size) or len(images) != len(good):
        return None
    return images, good, skipped


