"""Opened encoders in the window, without Qt: what File > Open encoder… asks the analysis process, and the
run config that "Train from this encoder" makes.

An encoder is named as on the command line (docs/encoders.md): ``torchvision:NAME[:WEIGHTS]``, ``timm:NAME``
(``timm:NAME:random``), a weights file with its architecture, or a run folder. The analysis op ``open_encoder``
loads it and writes its folder in the runs folder; from then on the window shows that folder like a run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

HUB_PREFIXES = ("torchvision:", "timm:")
ARCH_SUGGESTIONS = ("torchvision:resnet18", "torchvision:resnet50", "timm:vit_small_patch16_224",
                    "timm:vit_small_patch16_224.dino", "timm:vit_base_patch16_224", "small_cnn", "resnet18",
                    "vit_tiny")
NETWORK_SUGGESTIONS = ("", "teacher", "student", "base_encoder", "momentum_encoder", "backbone", "momentum_backbone")
WEIGHT_SUFFIXES = (".pth", ".pt", ".pth.tar", ".ckpt", ".safetensors", ".bin", ".tar")


def is_name(spec: str) -> bool:
    """A torchvision or timm name (not a file)?"""
    return str(spec or "").strip().startswith(HUB_PREFIXES)


def downloads(spec: str) -> bool:
    """Would this name need pretrained weights that may have to be downloaded (torchvision with WEIGHTS, timm
    without ``:random``)?"""
    text = str(spec or "").strip().split("?", 1)[0]
    if text.startswith("torchvision:"):
        return len(text.split(":")) >= 3 and bool(text.split(":")[2])
    if text.startswith("timm:"):
        return not text.endswith(":random")
    return False


@dataclass(frozen=True)
class EncoderChoice:
    """What the user filled in: the encoder (a name, a file or a run folder), a file's architecture and the
    network of a checkpoint that holds several, the data to look at, the image size (0: the model's own)."""

    spec: str
    arch: str = ""
    select: str = ""
    data: str = ""
    image_size: int = 0

    def problem(self) -> str:
        """"" when it can be sent; else one line: what is wrong and what to do."""
        spec, arch = self.spec.strip(), self.arch.strip()
        if not spec:
            return ("Give an encoder: a weights file with its architecture, a torchvision:NAME or timm:NAME, or a "
                    "run folder")
        if is_name(spec):
            if arch:
                return f"{spec} names its architecture itself; leave the architecture empty"
            return ""
        if os.path.isfile(os.path.expanduser(spec)) and not arch and not spec.endswith(".safetensors"):
            return (f"{os.path.basename(spec)} needs its architecture: torchvision:NAME, timm:NAME or a workbench "
                    "backbone (small_cnn, resnet18, vit_tiny, ...)")
        return ""

    def note(self) -> str:
        """A line shown under the form: where the weights come from."""
        if is_name(self.spec) and downloads(self.spec):
            return ("Pretrained weights are read from the cache; if they are not there they are downloaded, which "
                    "needs the internet (add :random for random weights)")
        if is_name(self.spec):
            return "Random weights: works offline"
        return "A weights file is read without running any code from it"

    def args(self, runs_root: str = "") -> dict:
        """The ``open_encoder`` request's arguments."""
        out = {"spec": self.spec.strip(), "arch": self.arch.strip(), "select": self.select.strip(),
               "data": self.data.strip()}
        if self.image_size:
            out["image_size"] = int(self.image_size)
        if runs_root:
            out["runs_root"] = str(runs_root)
        return out


def opened_text(reply: dict) -> str:
    """The line said once an encoder is open (the engine's load report when it has one)."""
    name = reply.get("name") or os.path.basename(str(reply.get("run_dir", "")))
    report = str(reply.get("report") or "").strip()
    return f"Opened {name}" + (f": {report}" if report else "")


def encoder_init(encoder_config: dict) -> dict:
    """What a new run takes from an opened encoder's folder (its ``config.json``, with ``run_dir``: the folder): the
    initial weights (the spec it was opened with, its architecture and network; for a random-weights name the
    folder itself, whose saved weights are the ones shown), the backbone (the encoder's architecture) and the
    image size (the encoder's own), as ``main.py train --init SPEC`` sets them."""
    init = str(encoder_config.get("init") or "")
    if not init:
        raise ValueError("this folder records no encoder to start from (its config has no init); open the encoder "
                         "again with File > Open encoder…")
    out = {"init": init, "init_arch": str(encoder_config.get("init_arch") or ""),
           "init_select": str(encoder_config.get("init_select") or ""),
           "backbone": str(encoder_config.get("backbone") or "auto")}
    folder = str(encoder_config.get("run_dir") or "")
    if folder and is_name(init) and not downloads(init):
        # a name that means random weights draws new ones on every load: start from the very weights the
        # folder keeps (the ones its map and evaluations show), which the folder itself opens as
        out.update(init=folder, init_arch="", init_select="")
    size = (encoder_config.get("data") or {}).get("image_size")
    if size:
        out["data.image_size"] = int(size)
    return out


def train_from_encoder(set_value, encoder_config: dict) -> str:
    """Start the Run panel's config from the encoder: ``set_value(path, value)`` (``ConfigModel.set``) gets the
    initial weights, the backbone and the image size (:func:`encoder_init`); the method, data and options stay.
    Returns a line that says so."""
    changes = encoder_init(encoder_config)
    for path, value in changes.items():
        set_value(path, value)
    size = changes.get("data.image_size")
    arch = f" ({changes['init_arch']})" if changes["init_arch"] else ""
    return (f"The Run panel now starts from {changes['init']}{arch}: backbone {changes['backbone']}"
            + (f", images at {size} px" if size else "") + "; press Start to train it (main.py train --init)")


__all__ = ["ARCH_SUGGESTIONS", "EncoderChoice", "NETWORK_SUGGESTIONS", "downloads", "encoder_init", "is_name",
           "opened_text", "train_from_encoder"]
