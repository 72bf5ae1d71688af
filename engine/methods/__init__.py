"""The method registry: one explicit dict, name -> class (the solo-learn way)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.methods.barlow_twins import BarlowTwins
from engine.methods.base import DataInfo, Method, StepOutput
from engine.methods.bow import BoW
from engine.methods.byol import BYOL
from engine.methods.colorization import Colorization
from engine.methods.context import ContextPrediction
from engine.methods.counting import Counting
from engine.methods.cpc import CPC
from engine.methods.denoising import Denoising
from engine.methods.dino import DINO
from engine.methods.exemplar import Exemplar
from engine.methods.inpainting import Inpainting
from engine.methods.jigsaw import Jigsaw
from engine.methods.mae import MAE
from engine.methods.moco import MoCo
from engine.methods.multitask import MultiTask
from engine.methods.random_init import RandomInit
from engine.methods.relative_transform import RelativeTransform
from engine.methods.rotnet import RotNet
from engine.methods.shuffle_learn import ShuffleLearn
from engine.methods.simclr import SimCLR
from engine.methods.simsiam import SimSiam
from engine.methods.split_brain import SplitBrain
from engine.methods.ssgan import SSGAN
from engine.methods.superres import SuperRes
from engine.methods.supervised import Supervised
from engine.methods.tracking import Tracking
from engine.methods.vicreg import VICReg
from engine.methods.video_colorization import VideoColorization
from engine.params import ConfigError

METHODS: dict[str, type[Method]] = {
    "rotnet": RotNet,
    "jigsaw": Jigsaw,
    "context": ContextPrediction,
    "relative_transform": RelativeTransform,
    "counting": Counting,
    "colorization": Colorization,
    "split_brain": SplitBrain,
    "inpainting": Inpainting,
    "denoising": Denoising,
    "superres": SuperRes,
    "mae": MAE,
    "ssgan": SSGAN,
    "simclr": SimCLR,
    "moco": MoCo,
    "cpc": CPC,
    "exemplar": Exemplar,
    "byol": BYOL,
    "simsiam": SimSiam,
    "dino": DINO,
    "bow": BoW,
    "barlow_twins": BarlowTwins,
    "vicreg": VICReg,
    "multitask": MultiTask,
    "shuffle_learn": ShuffleLearn,
    "tracking": Tracking,
    "video_colorization": VideoColorization,
    "supervised": Supervised,
    "random_init": RandomInit,
}


def get_method_class(name: str) -> type[Method]:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError("method", f"unknown method {name!r}; choose one of: {', '.join(METHODS)}") from None


def bound_method(kind: str) -> str:
    """The method that trains the evaluation protocol's ``"upper"`` (or ``"lower"``) bound encoder."""
    return next(name for name, cls in METHODS.items() if cls.bound == kind)


def method_names() -> list[str]:
    return list(METHODS)


def method_catalogue() -> list[dict]:
    """Plain-data description of every method, for the GUI's picker and the CLI."""
    from engine.params import field_specs

    measured = measured_rows()
    out = []
    for name, cls in METHODS.items():
        out.append({
            "name": name, "title": cls.title, "summary": cls.summary,
            "description": f"{cls.description} {cls.needs}".strip(), "about": cls.description, "needs": cls.needs,
            "paper": cls.paper, "family": cls.family, "needs_labels": cls.needs_labels, "trains": cls.trains,
            "backbone_kind": cls.backbone_kind, "preview_kind": cls.preview_kind,
            "reconstruct_captions": list(cls.reconstruct_captions),
            "input_kind": cls.input_kind,
            "options": field_specs(cls.Config), "run_defaults": cls.run_defaults(),
            **cls.recipes(), "measured": measured.get(name, {}),
        })
    return out


MEASURED_FILE = Path(__file__).with_name("measured.json")


def measured_rows(path: Path = MEASURED_FILE) -> dict[str, dict[str, dict]]:
    """method -> data kind ("shapes", "photos", "clips") -> how its defaults did there (``bench/methods.py
    --record`` writes the file): the set's minutes, words, target, table and date with the method's row. {} where
    the file is missing or unreadable (an installed copy without it still runs)."""
    try:
        sets = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, dict[str, dict]] = {}
    for kind, s in sets.items():
        head = {k: v for k, v in s.items() if k != "methods"}
        for method, row in (s.get("methods") or {}).items():
            out.setdefault(method, {})[kind] = {**head, **row}
    return out


__all__ = ["METHODS", "Method", "DataInfo", "StepOutput", "get_method_class", "bound_method", "method_names",
           "method_catalogue", "measured_rows", "MEASURED_FILE"]
