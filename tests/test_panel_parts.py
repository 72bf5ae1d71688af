"""The plain functions the Data and Run panels are built on, without a window: the dataset spec both
ways, the dataset summary line."""

from __future__ import annotations

import numpy as np
import pytest

from app.dataset import ViewDataset
from app.widgets.data_info import dataset_summary
from app.widgets.data_source import build_spec, parse_spec


@pytest.mark.parametrize("spec", ["builtin:shapes:300", "builtin:shapes:2000?shortcut=colour", "/data/my images",
                                  "torchvision:cifar10@train", "torchvision:stl10@test:/data/tv"])
def test_spec_round_trip(spec):
    p = parse_spec(spec)
    fields = {"builtin": dict(count=p.get("count", 0), shortcut=p.get("shortcut", False)),
              "folder": dict(folder=p.get("folder", "")),
              "tv": dict(tv_name=p.get("tv_name", ""), tv_split=p.get("tv_split", ""), tv_root=p.get("tv_root", ""))}
    assert build_spec(p["kind"], **fields[("builtin", "folder", "tv")[p["kind"]]]) == spec


def test_build_spec_details():
    assert build_spec(1, folder="  ") == ""  # no folder chosen: the panel asks for one
    assert build_spec(1, folder=" /x/y ") == "/x/y"
    assert build_spec(2, tv_name="mnist", tv_split="train", tv_root="   ") == "torchvision:mnist@train"
    assert build_spec(0, count=64, shortcut=False) == "builtin:shapes:64"


def test_dataset_summary():
    imgs = np.zeros((4, 8, 8, 3), np.uint8)
    ds = ViewDataset(spec="/data/pets", image_size=8, images=imgs, labels=np.array([0, 1, 1, 0]),
                     class_names=["cat", "dog"], total=1200, source="folder /data/pets")
    text = dataset_summary(ds)
    assert "<b>/data/pets</b>" in text and "1,200 (the grid shows 4) images, 8×8 px, labelled, 2 classes" in text
    assert "folder /data/pets" in text
    flat = ViewDataset(spec="/data/flat", image_size=8, images=imgs, name="flat", total=4)
    assert "4 images, 8×8 px, unlabeled" in dataset_summary(flat) and "<b>flat</b>" in dataset_summary(flat)
