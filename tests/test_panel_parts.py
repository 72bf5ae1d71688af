"""The plain functions the Data and Run panels are built on, without a window: the dataset spec both
ways, the dataset summary line, a method's description, which run buttons a state allows, the base of
"copy as command"."""

from __future__ import annotations

import numpy as np
import pytest

from app.data.model import build_spec, dataset_summary, parse_spec
from app.models.dataset import ViewDataset
from app.run.model import ACTIVE, button_states, command_base, method_description


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


def test_method_description():
    assert "Loading the method catalogue" in method_description(None, "simclr")
    info = {"title": "MAE", "family": "reconstruction", "needs_labels": False, "backbone_kind": "vit",
            "description": "Masked patches.", "paper": "He et al. 2022"}
    text = method_description(info, "mae")
    assert text.startswith("<b>MAE</b>") and "(reconstruction; ViT backbones)" in text
    assert "<p>Masked patches.</p>" in text and "He et al. 2022" in text
    # an entry that has what it learns apart from what it needs: that first, the measurements after the paper
    text = method_description({**info, "about": "Masked patches.", "needs": "Measured: 0.38 after 2 minutes.",
                               "description": "Masked patches. Measured: 0.38 after 2 minutes."}, "mae")
    assert "<p>Masked patches.</p>" in text
    assert text.index("He et al. 2022") < text.index("What it needs, measured.") < text.index("Measured: 0.38")
    assert "(supervised; needs labelled data, any backbone)" in method_description(
        {"title": "Sup", "family": "supervised", "needs_labels": True}, "sup")


def test_button_states():
    idle = button_states("idle", ok=True, checking=False, can_resume=True)
    assert idle == {"start": True, "pause": False, "pause_text": "Pause", "stop": False, "resume_last": True,
                    "edit": True}
    assert not button_states("idle", ok=False, checking=False, can_resume=False)["start"]  # the config has errors
    assert not button_states("idle", ok=True, checking=True, can_resume=False)["start"]  # a Start is being checked
    for state in ACTIVE:
        b = button_states(state, ok=True, checking=False, can_resume=True)
        assert not b["start"] and not b["resume_last"] and not b["edit"] and b["stop"] == (state != "stopping")
    paused = button_states("paused", ok=True, checking=False, can_resume=False)
    assert paused["pause"] and paused["pause_text"] == "Resume"
    assert button_states("running", ok=True, checking=False, can_resume=False)["pause_text"] == "Pause"


class _Model:
    def __init__(self, catalogue: bool):
        self.catalogue = catalogue

    def config(self):
        return {"method": "simclr", "method_options": {"temperature": 0.3}}

    def method_defaults_dict(self, method):
        return {"method": method, "method_options": {"temperature": 0.2}}

    def method_info(self, method):
        return {"name": method} if self.catalogue else None


def test_command_base_spells_every_option_out_without_a_catalogue():
    cfg, base = command_base(_Model(catalogue=True))
    assert cfg["method_options"] == {"temperature": 0.3} and base["method_options"] == {"temperature": 0.2}
    assert command_base(_Model(catalogue=False))[1]["method_options"] == {}
