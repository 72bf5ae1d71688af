"""User clips: folders with one sub-folder of frames per clip, and video files.

Layouts (class folders above the clips give labels, as with image folders)::

    root/<class>/<clip>/<frames>      root/<clip>/<frames>       (frame files in name order)
    root/<class>/<video file>         root/<video file>

Every clip becomes ``frames`` frames sampled evenly over its length (``frames`` is at most the
shortest clip's length). A clip folder with a missing frame (its numbering jumps), an unreadable
frame or fewer than 3 frames is skipped and reported by name, never fatal. Video files are read
with PyAV, the backend of torchvision's video reader (torchvision's own reader is used where it
still exists); it is the optional extra ``video`` (``pip install 'ssl-workbench[video]'``) and a
video file without it gives a message that names the extra.
"""

from __future__ import annotations

import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from engine.data.base import Cancelled, DataError, ProgressFn, resize_uint8
from engine.data.clips import DEFAULT_FRAMES, ClipData
from engine.data.folder import EXTENSIONS

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
VIDEO_EXTRA = "video"
MIN_FRAMES = 3


def _is_frame(p: Path) -> bool:
    return p.suffix.lower() in EXTENSIONS and not p.name.startswith(".") and p.is_file()


def is_video(p: Path) -> bool:  # the name first: a folder of 48,000 images costs no stat per file
    return p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith(".") and p.is_file()


def _frame_number(p: Path) -> int | None:
    m = re.search(r"(\d+)$", p.stem)
    return int(m.group(1)) if m else None


def _natural(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def frame_files(clip: Path) -> list[Path]:
    return sorted((p for p in clip.iterdir() if _is_frame(p)), key=_natural)


def _is_clip_dir(d: Path) -> bool:
    return d.is_dir() and not d.name.startswith(".") and any(_is_frame(p) for p in d.iterdir())


def _clips_in(d: Path) -> list[Path]:
    """The clips directly in ``d``: sub-folders holding frames, and video files."""
    out = []
    for p in sorted(d.iterdir(), key=_natural):
        if p.name.startswith("."):
            continue
        if is_video(p) or _is_clip_dir(p):
            out.append(p)
    return out


def holds_clips(folder: Path) -> bool:
    """Whether ``folder`` holds video files (directly or in class folders) and no loose images:
    then it is read as clips even without the ``clips:`` prefix."""
    try:
        entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    except OSError:
        return False
    if any(_is_frame(p) for p in entries):
        return False
    if any(is_video(p) for p in entries):
        return True
    return any(p.is_dir() and _has_video(p) for p in entries)


def _has_video(folder: Path) -> bool:
    """Whether ``folder`` directly holds a video file (names read with ``os.scandir``: no path objects)."""
    try:
        with os.scandir(folder) as it:
            return any(os.path.splitext(e.name)[1].lower() in VIDEO_EXTENSIONS and not e.name.startswith(".")
                       and e.is_file() for e in it)
    except OSError:
        return False


def scan_clips(folder: Path) -> tuple[list[Path], list[int] | None, list[str] | None, list[str]]:
    """(clips, labels or None, class names or None, notes)."""
    if not folder.exists():
        raise DataError(f"folder {folder} does not exist; choose a folder of clips (one sub-folder of frames "
                        "per clip, or video files)")
    if not folder.is_dir():
        raise DataError(f"{folder} is a file, not a folder; choose the folder that holds the clips")
    notes: list[str] = []
    top = _clips_in(folder)
    classes = []
    for d in sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=_natural):
        if d in top:
            continue
        inner = _clips_in(d)
        if inner:
            classes.append((d.name, inner))
    if classes:
        if top:
            notes.append(f"{len(top)} clip(s) directly in {folder.name}/ are not in a class folder and were left out")
        if len(classes) == 1:
            notes.append(f"only one class folder ({classes[0][0]}): treated as unlabeled")
            return classes[0][1], None, None, notes
        clips, labels = [], []
        for k, (_, inner) in enumerate(classes):
            clips.extend(inner)
            labels.extend([k] * len(inner))
        return clips, labels, [c for c, _ in classes], notes
    if top:
        notes.append("no class folders above the clips: they are unlabeled (label-based evaluation is skipped)")
        return top, None, None, notes
    raise DataError(f"folder {folder} holds no clips; put one sub-folder of frames per clip in it (or video "
                    "files), optionally inside one folder per class")


def _check_frames(files: list[Path]) -> str | None:
    """Why a clip folder cannot be used (missing frames, too short), or None."""
    if len(files) < MIN_FRAMES:
        return f"only {len(files)} frame(s); a clip needs at least {MIN_FRAMES}"
    nums = [_frame_number(p) for p in files]
    if all(n is not None for n in nums):
        for a, b in zip(nums, nums[1:]):
            if b != a + 1:
                gap = f"frame {a + 1}" if b == a + 2 else f"frames {a + 1}-{b - 1}"
                return f"{gap} missing (the numbering jumps from {a} to {b})" if b > a else \
                    f"frame number {b} repeats"
    return None


def video_backend():
    """The PyAV module, or a :class:`DataError` naming the optional extra."""
    try:
        import av
    except ImportError:
        raise DataError(f"reading video files needs the optional extra {VIDEO_EXTRA!r} (PyAV, torchvision's "
                        f"video backend): pip install 'ssl-workbench[{VIDEO_EXTRA}]'; or extract the frames "
                        "into one folder per clip") from None
    return av


def read_video_frames(path: Path) -> np.ndarray:
    """All frames of a video file ``(L, H, W, 3)`` uint8."""
    video_backend()
    import torchvision.io as tvio

    if hasattr(tvio, "read_video"):  # torchvision before its video API moved to torchcodec
        frames, _, _ = tvio.read_video(str(path), pts_unit="sec", output_format="THWC")
        return frames.numpy()
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if not frames:
        raise ValueError("no video frames")
    return np.stack(frames)


def _sample(length: int, frames: int) -> np.ndarray:
    return np.linspace(0, length - 1, frames).round().astype(np.int64)


def load_clip_folder(folder: str | Path, image_size: int, frames: int = DEFAULT_FRAMES,
                     progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                     max_clips: int = 0, workers: int = 4) -> ClipData:
    from engine.data.decode import decode_image

    folder = Path(folder).expanduser().resolve()
    clips, labels, classes, notes = scan_clips(folder)
    if max_clips and len(clips) > max_clips:
        keep = np.sort(np.random.default_rng(0).choice(len(clips), size=max_clips, replace=False))
        clips = [clips[i] for i in keep]
        labels = None if labels is None else [labels[i] for i in keep]
        notes.append(f"using {max_clips} of the folder's clips (max_images)")
    videos = [c for c in clips if is_video(c)]
    if videos:
        video_backend()
    skipped: list[tuple[str, str]] = []
    files: dict[int, list[Path]] = {}
    for i, c in enumerate(clips):
        if c.is_dir():
            f = frame_files(c)
            why = _check_frames(f)
            if why:
                skipped.append((str(c), why))
            else:
                files[i] = f
    lengths = [len(f) for f in files.values()]
    t = min([frames] + lengths) if lengths else frames
    out: dict[int, np.ndarray] = {}
    lock = threading.Lock()
    done = [0]

    def work(i: int) -> None:
        if cancel is not None and cancel.is_set():
            return
        c = clips[i]
        try:
            if is_video(c):
                arr = read_video_frames(c)
                if len(arr) < MIN_FRAMES:
                    raise ValueError(f"only {len(arr)} frame(s); a clip needs at least {MIN_FRAMES}")
                x = torch.from_numpy(arr[_sample(len(arr), t)]).permute(0, 3, 1, 2)
                clip = resize_uint8(x, image_size).permute(0, 2, 3, 1).numpy()
            elif i in files:
                f = files[i]
                clip = np.empty((t, image_size, image_size, 3), np.uint8)
                for k, j in enumerate(_sample(len(f), t)):
                    try:
                        clip[k] = decode_image(f[j], image_size)
                    except Exception as exc:
                        raise ValueError(f"frame {f[j].name} unreadable: {_reason(exc)}") from None
            else:
                return
            with lock:
                out[i] = clip
        except Exception as exc:  # any unreadable clip is skipped and reported
            with lock:
                skipped.append((str(c), _reason(exc)))
        finally:
            with lock:
                done[0] += 1
                if progress is not None:
                    progress(done[0], len(clips), "decoding clips")

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(work, range(len(clips))))
    if cancel is not None and cancel.is_set():
        raise Cancelled("loading was cancelled")
    good = sorted(out)
    skipped.sort()
    if not good:
        names = "; ".join(f"{Path(p).name} ({r})" for p, r in skipped[:3])
        raise DataError(f"none of the {len(clips)} clips in {folder} could be read ({names}); check the frames")
    if skipped:
        notes.append(f"skipped {len(skipped)} clip(s): " + "; ".join(f"{Path(p).name} ({r})" for p, r in skipped[:5])
                     + (" ..." if len(skipped) > 5 else ""))
    arr = np.stack([out[i] for i in good])  # (N, T, H, W, 3)
    clip_t = torch.from_numpy(arr).permute(0, 1, 4, 2, 3).contiguous()
    return ClipData(
        name=folder.name, source=f"clips:{folder}", images=clip_t[:, 0],
        labels=None if labels is None else torch.as_tensor([labels[i] for i in good], dtype=torch.long),
        class_names=classes, paths=[str(clips[i]) for i in good], skipped=skipped,
        notes=notes + [f"{len(good)} clips of {t} frames; evaluation embeds each clip's middle frame"],
        clips=clip_t)


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
