"""Open any encoder from a spec: a torchvision or timm name, a weights file with its architecture, or a
workbench run folder.

Specs (``--encoder SPEC``)::

    torchvision:NAME                 random weights (offline)
    torchvision:NAME:WEIGHTS         torchvision's weights (IMAGENET1K_V2, DEFAULT, ...): from the cache, or
                                     downloaded when online
    timm:NAME[.TAG]                  timm's pretrained weights (cache, or downloaded when online)
    timm:NAME:random                 random weights (offline)
    FILE --arch ARCH                 a .pth/.pt/.pth.tar/.ckpt/.safetensors file in any usual layout
                                     (engine.encoders.match); ARCH is torchvision:NAME, timm:NAME or a
                                     workbench backbone. An encoder.safetensors the workbench wrote needs
                                     no --arch.
    RUN_FOLDER                       a workbench run (its checkpoint, or its encoder.safetensors) or an
                                     opened encoder's folder

The encoder takes [0, 1] images of any size: a torchvision/timm model applies its own preprocessing
(:mod:`engine.models.external`); a workbench backbone normalises itself. ``image_size`` is the size its
data should be loaded at: the model's resize size (224-pixel models: 232 to 256), the run's or the
file's for workbench backbones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from engine.encoders.match import find_fit, fit_report, refusal
from engine.encoders.weights import flatten, read_weights
from engine.errors import EncoderError
from engine.models import BACKBONES, build_backbone
from engine.models.external import ArchSpec, is_external, parse_arch

DEFAULT_IMAGE_SIZE = 32  # a workbench backbone's, when nothing says otherwise


@dataclass
class Source:
    """Where an encoder comes from, resolved without reading its weights."""

    spec: str
    kind: str  # "hub" (a torchvision/timm name), "file" or "run"
    arch: str  # the architecture: what build_backbone takes
    image_size: int  # the size its data loads at
    path: Path | None = None  # the weights file (file, run)
    hub: ArchSpec | None = None
    label: str = ""  # a short name for lists and reports


def _metadata(path: Path) -> dict:
    """The metadata of a .safetensors file (the workbench writes backbone and image_size), or {}."""
    if not path.name.endswith(".safetensors"):
        return {}
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as fh:
            return dict(fh.metadata() or {})
    except Exception:
        return {}


def _check_arch(arch: str) -> str:
    arch = arch.strip()
    if is_external(arch):
        return parse_arch(arch).arch
    if arch not in BACKBONES:
        raise EncoderError(f"unknown architecture {arch!r}; give torchvision:NAME, timm:NAME or a workbench backbone "
                           f"({', '.join(BACKBONES)})")
    return arch


def _external_size(arch: str) -> int:
    with torch.device("meta"):
        return build_backbone(arch).preprocess.image_size


def resolve(spec: str, arch: str = "", image_size: int | None = None) -> Source:
    """The architecture and data size of ``spec`` (with ``arch`` for a weights file); an EncoderError says
    what is wrong. Cheap: no weights are read (a model may be built on the meta device)."""
    text = str(spec or "").strip()
    if not text:
        raise EncoderError("no encoder given; give torchvision:NAME[:WEIGHTS], timm:NAME, a weights file with --arch, "
                           "or a run folder")
    arch = str(arch or "").strip()
    if is_external(text):
        if arch:
            raise EncoderError(f"--arch goes with a weights file; {text} names its architecture itself")
        hub = parse_arch(text)
        name = hub.arch
        label = hub.name + (f" ({hub.weights})" if hub.weights and not hub.random else "") + \
            (" (random weights)" if hub.random else "")
        return Source(text, "hub", name, int(image_size or _external_size(name)), hub=hub, label=label)
    path = Path(text).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return _run_source(text, path, arch, image_size)
    if not path.exists():
        raise EncoderError(f"{text} is neither an encoder name (torchvision:NAME[:WEIGHTS], timm:NAME) nor an existing "
                           "weights file or run folder")
    meta = _metadata(path) if path.is_file() else {}
    if not arch:
        arch = meta.get("backbone", "")
        if not arch:
            raise EncoderError(f"{path.name} needs its architecture: add --arch torchvision:NAME, --arch timm:NAME or "
                               f"--arch BACKBONE (a workbench backbone: {', '.join(BACKBONES)})")
    arch = _check_arch(arch)
    if image_size is None:
        image_size = _external_size(arch) if is_external(arch) else int(meta.get("image_size") or DEFAULT_IMAGE_SIZE)
    return Source(text, "file", arch, int(image_size), path=path, label=path.name)


def _run_source(text: str, path: Path, arch: str, image_size: int | None) -> Source:
    from engine.config import RunConfig
    from engine.eval.protocol import run_backbone_name
    from engine.runs import encoder_path, last_checkpoint

    if arch:
        raise EncoderError(f"--arch goes with a weights file; the run folder {path} knows its own architecture")
    try:
        cfg = RunConfig.load(path / "config.json")
    except Exception as exc:
        raise EncoderError(f"{path} is not a readable run folder ({exc})") from None
    weights = last_checkpoint(path) or (encoder_path(path) if encoder_path(path).is_file() else None)
    if weights is None:
        raise EncoderError(f"{path} has no checkpoint or encoder.safetensors yet; train it first")
    bname = run_backbone_name(path, cfg)
    if bname == "auto":
        raise EncoderError(f"{path} has not started training yet (its backbone is still auto); train it first")
    return Source(text, "run", bname, int(image_size or cfg.data.image_size), path=weights, label=path.name)


# -- loading -----------------------------------------------------------------------------------------------------
def state_target(module: nn.Module) -> nn.Module:
    """The module whose state dict a checkpoint holds: a wrapper's (or the workbench ResNet's) inner ``net``."""
    net = getattr(module, "net", None)
    if isinstance(net, nn.Module) and all(k.startswith("net.") for k in module.state_dict()):
        return net
    return module


def _hint(arch: str) -> str:
    if is_external(arch):
        return " and, for a model made at another size, its options (e.g. ?img_size=...)"
    if arch.startswith(("resnet", "vit")):
        return " and --image-size as trained (it sets the ResNet stem and the ViT patch)"
    return ""


def load_weights(module: nn.Module, src: Source, select: str = "") -> tuple[str, dict]:
    """Load ``src``'s weights into ``module`` (built for ``src.arch``); (the one-line report, counts).
    An EncoderError refuses weights that do not fit, naming what is missing and unexpected."""
    hub = src.hub
    if src.kind == "hub" and hub.random:
        return f"random weights of {src.arch} (no pretrained weights were asked for)", {"matched": 0}
    target = state_target(module)
    heads = getattr(module, "head_names", ())
    if src.kind == "hub":
        from engine.encoders.hub import timm_state, torchvision_state
        from engine.models.external import torchvision_weights

        if hub.source == "torchvision":
            state, where = torchvision_state(hub, torchvision_weights(hub))
        else:
            state, where = timm_state(hub, module.net)
        select = ""
    else:
        state, where = read_weights(src.path), str(src.path)
    own = target.state_dict()
    fit = find_fit(flatten(state), own, select, heads)
    if not fit.ok or not fit.state:
        raise EncoderError(refusal(fit, src.arch, where, _hint(src.arch)))
    merged = dict(own)
    merged.update(fit.state)
    try:
        target.load_state_dict(merged)
    except Exception as exc:  # pragma: no cover - find_fit checked names and shapes
        raise EncoderError(f"the weights in {where} cannot be loaded into {src.arch} ({exc})") from None
    return fit_report(fit, src.arch, where), fit.counts()


@dataclass
class LoadedEncoder:
    """An opened encoder: ``module`` takes [0, 1] images and gives pooled features."""

    module: nn.Module
    source: Source
    report: str
    counts: dict

    spec = property(lambda self: self.source.spec)
    arch = property(lambda self: self.source.arch)
    image_size = property(lambda self: self.source.image_size)
    name = property(lambda self: self.source.label)
    kind = property(lambda self: getattr(self.module, "kind", "cnn"))
    feature_dim = property(lambda self: int(getattr(self.module, "feature_dim", 0)))

    def random_init(self, seed: int = 0) -> nn.Module:
        """The same architecture with random weights (the baseline), on the encoder's device."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            m = build_backbone(self.arch, self.image_size)
        return m.to(next(self.module.parameters()).device).eval()

    def describe(self) -> dict:
        pre = getattr(self.module, "preprocess", None)
        return {"spec": self.spec, "arch": self.arch, "name": self.name, "kind": self.kind,
                "feature_dim": self.feature_dim, "image_size": self.image_size, "report": self.report,
                "counts": self.counts, "preprocess": pre.to_dict() if pre is not None else None}


def load_encoder(spec: str, arch: str = "", *, select: str = "", image_size: int | None = None,
                 device="cpu") -> LoadedEncoder:
    """Open ``spec`` (see the module's docstring) in eval mode on ``device``."""
    src = resolve(spec, arch, image_size)
    module = build_backbone(src.arch, src.image_size)
    report, counts = load_weights(module, src, select)
    return LoadedEncoder(module.to(device).eval(), src, report, counts)


__all__ = ["Source", "LoadedEncoder", "resolve", "load_encoder", "load_weights", "state_target"]
