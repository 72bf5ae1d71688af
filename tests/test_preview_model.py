"""app/preview/model.py without a window: the images the Pretext preview keeps, and its request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.preview.model import ImagePicker, preview_request, views_base


class _DS:
    """A dataset as the panel sees it: images, optional clips, spec, size."""

    def __init__(self, images, clips):
        self.images, self.spec, self.image_size = images, "builtin:test", images.shape[1]
        self.clips = np.repeat(images[:, None], 3, axis=1) if clips else None

    def __len__(self):
        return len(self.images)


def _dataset(n=40, clips=False):
    images = np.random.default_rng(3).integers(0, 255, size=(n, 8, 8, 3), dtype=np.uint8)
    return _DS(images, clips)


def test_qt_free_app_modules_import_no_qt():
    """The preview's model, the Run history's details and the map's geometry (app/map/model.py: its own test)."""
    code = "import sys, app.preview.model, app.history.details, app.map.geometry; bad = [m for m in sys.modules if m.startswith(('PySide6.Qt', " \
           "'pyqtgraph', 'torch'))]; print(bad); sys.exit(1 if bad else 0)"
    r = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_picker_keeps_its_images_across_counts_and_choices():
    p = ImagePicker()
    assert not p.resize(3) and not p.shuffle(3) and p.indices == []  # no dataset: nothing to do
    ds = _dataset()
    p.set_dataset(ds, 4)
    first = list(p.indices)
    assert len(first) == 4 and len(set(first)) == 4 and first == [int(i) for i in p.order[:4]]
    again = ImagePicker()
    again.set_dataset(ds, 4)
    assert again.indices == first  # the order is seeded by the dataset
    assert p.resize(2) and p.indices == first[:2]
    assert p.resize(4) and p.indices == first  # growing back takes the same images
    p.choose(first[2], 4)
    assert p.indices == [first[2]] + [i for i in first if i != first[2]]
    p.pick(2, keep_first=True)
    assert p.indices[0] == first[2] and len(p.indices) == 2
    p.pick(50, keep_first=False)
    assert len(p.indices) == len(ds)  # never more than the dataset holds
    assert p.shuffle(3) and len(p.indices) == 3


def test_views_base_takes_the_size_class_and_falls_back_to_simclr():
    cat = {"augment_presets": {"small": {"simclr": [{"crop": 1}, {}], "byol": [{"blur_p": 1.0}, {}]},
                               "large": {"simclr": [{"crop": 2}, {}]}}}
    assert views_base(cat, "byol", 32) == {"blur_p": 1.0}
    assert views_base(cat, "nope", 32) == {"crop": 1}
    assert views_base(cat, "byol", 96) == {"crop": 2}
    assert views_base(None, "simclr", 32) == {}


def test_preview_request_sends_images_or_clips_and_keeps_no_pixels():
    ds = _dataset()
    args, shown = preview_request("simclr", {"input_kind": "images"}, {"t": 1}, 7, "auto", ds, [3, 1])
    assert np.array_equal(args["images"], ds.images[[3, 1]]) and args["images"].flags.c_contiguous
    assert shown == {"method": "simclr", "options": {"t": 1}, "seed": 7, "backbone": "auto", "indices": [3, 1]}
    with pytest.raises(ValueError, match="trains on clips, and builtin:test holds single images"):
        preview_request("tracking", {"input_kind": "clips"}, {}, 0, "auto", ds, [0])
    clips = _dataset(clips=True)
    args, shown = preview_request("tracking", {"input_kind": "clips"}, {}, 0, "auto", clips, [2])
    assert "images" not in args and args["clips"].shape == (1, 3, 8, 8, 3) and "clips" not in shown
