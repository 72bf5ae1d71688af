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
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@dataclass
class FolderScan:
    """What a folder scan found: the image files, their labels, and everything it left out."""

    paths: list[Path]
    labels: list[int] | None
    classes: list[str] | None
    notes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) never opened


class _Walker:
    """Walks image folders once each: directory links are followed only to folders outside the
    dataset (``fence``) that were not seen yet (no loops, no image counted twice, no held-out
    split leaking in); files that are not regular files (named pipes, sockets, devices) are
    listed as skipped without being opened, so a scan can never block."""

    def __init__(self, fence: Path):
        self.fence = fence
        self.seen_dirs: set[tuple[int, int]] = set()
        self.seen_files: dict[tuple[int, int], Path] = {}
        self.skipped: list[tuple[str, str]] = []
        self.unfollowed: list[tuple[Path, str]] = []

    def entries(self, folder: Path) -> tuple[list[Path], list[Path]]:
        """(sub-folders to enter, image files) directly in ``folder``, sorted by name."""
        try:
            items = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            self.skipped.append((str(folder), f"cannot read this folder ({exc.strerror or exc})"))
            return [], []
        dirs, files = [], []
        for e in items:
            if e.name.startswith("."):
                continue
            p = folder / e.name
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
            elif _is_image(p):
                self.file(p, files)
        return dirs, files

    def file(self, p: Path, out: list[Path]) -> None:
        try:
            st = os.stat(p)
        except OSError as exc:
            reason = "a broken link" if os.path.islink(p) else f"cannot be read ({exc.strerror or exc})"
            self.skipped.append((str(p), reason))
            return
        if not stat.S_ISREG(st.st_mode):
            kind = "a named pipe" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) \
                else "a device or other special file"
            self.skipped.append((str(p), f"not a regular file ({kind}); not opened"))
            return
        key = (st.st_dev, st.st_ino)
        first = self.seen_files.get(key)
        if first is not None:
            self.skipped.append((str(p), f"the same file as {first} (a link); used once"))
            return
        self.seen_files[key] = p
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

    def images_below(self, folder: Path) -> list[Path]:
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


def scan_folder(folder: str | Path, fence: Path | None = None) -> FolderScan:
    """List image files: paths, labels or None, class names or None, notes, skipped files."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise DataError(f"folder {folder} does not exist; choose an existing folder of images")
    if not folder.is_dir():
        raise DataError(f"{folder} is a file, not a folder; choose the folder that holds the images")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise DataError(f"cannot read folder {folder}: permission denied")
    folder = folder.resolve()
    walker = _Walker(Path(os.path.realpath(fence)) if fence is not None else dataset_fence(folder))
    walker.enter(folder)
    subdirs, loose = walker.entries(folder)
    notes: list[str] = []
    classes: list[tuple[str, list[Path]]] = []
    for d in subdirs:
        files = walker.images_below(d)
        if files:
            classes.append((d.name, files))
    notes.extend(walker.notes())

    def result(paths, labels, names) -> FolderScan:
        return FolderScan(paths, labels, names, notes, walker.skipped)

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
            f"{_skipped_text(walker.skipped, 3)})" if walker.skipped else ""
    raise DataError(f"folder {folder} holds no images ({', '.join(sorted(EXTENSIONS))}){found}; "
                    "put images in it, or in one sub-folder per class")


def _skipped_text(skipped: list[tuple[str, str]], limit: int) -> str:
    shown = "; ".join(f"{Path(p).name} ({r})" for p, r in skipped[:limit])
    more = len(skipped) - limit
    return shown + (f"; and {more} more" if more > 0 else "")


def _cache_key(paths: list[Path], size: int) -> str:
    h = hashlib.sha1()
    h.update(f"v2|{size}|".encode())  # v2: EXIF orientation applied
    for p in paths:
        try:
            st = p.stat()
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}|missing\n".encode())
    return h.hexdigest()[:24]


def skip_reason(exc: BaseException) -> str:
    """Why a file was skipped, in one line that names no Python object (a library's text can hold the
    repr of an open file, ``<_io.BufferedReader name=3>``: the row already names the file)."""
    import re

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"<[\w.]+ (?:name|object)[^>]*>", "the file", text).strip()


def decode_files(paths: list[Path], size: int, progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None, workers: int = 4
                 ) -> tuple[np.ndarray, list[int], list[tuple[str, str]]]:
    """Decode ``paths``: (images ``(n_ok, size, size, 3)``, indices of the good ones, skipped).

    Ctrl-C (or ``cancel``) ends it within one image per worker: the pending files are dropped.
    """
    n = len(paths)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    ok = np.zeros(n, dtype=bool)
    skipped: list[tuple[str, str]] = []
    lock = threading.Lock()
    done = [0]
    stop = threading.Event()

    def work(i: int) -> None:
        if stop.is_set() or cancel is not None and cancel.is_set():
            return
        try:
            out[i] = decode_image(paths[i], size)
            ok[i] = True
        except Exception as exc:  # any unreadable file is skipped and reported
            reason = skip_reason(exc)
            with lock:
                skipped.append((str(paths[i]), reason))
        with lock:
            done[0] += 1
            if progress is not None and (done[0] % 256 == 0 or done[0] == n):
                progress(done[0], n, "decoding images")

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
    good = np.flatnonzero(ok)
    skipped.sort()
    return out[good], good.tolist(), skipped


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
                            f"(e.g. {_skipped_text(bad, 3)}); check that they are valid images")
    return labelled


def skipped_note(skipped: list[tuple[str, str]], where: str = "") -> str:
    """One line about skipped files: the first few with their reasons, where the rest are listed."""
    text = f"skipped {len(skipped)} file(s){where}: {_skipped_text(skipped, 3)}"
    return text + (" (all listed in the run's data.json)" if len(skipped) > 3 else "")


def load_folder(folder: str | Path, image_size: int, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None, use_cache: bool = True,
                max_images: int = 0, memory_limit_mb: int = 0, workers: int = 4) -> ImageData:
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
    scan = scan_folder(folder, fence=fence)
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
        from engine.data.streaming import StreamingFolderData

        if scan.skipped:
            notes.append(skipped_note(scan.skipped))
        return StreamingFolderData(folder, paths, labels, classes, image_size, notes, eval_source,
                                   skipped=scan.skipped)

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
    skipped = sorted(scan.skipped + [tuple(s) for s in skipped])
    if len(good) == 0:
        raise DataError(f"none of the {len(paths)} image files in {folder} could be read "
                        f"(e.g. {_skipped_text(skipped, 3)}); check that they are valid images")
    if skipped:
        notes.append(skipped_note(skipped))
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
