"""Encoders from torchvision and timm, wrapped so that the engine uses them like its own backbones.

A wrapper takes a float batch in [0, 1] of any size, applies the model's own preprocessing (the centre
crop and resolution of its weights' or timm's data config, then its normalisation) and returns pooled
features ``(B, feature_dim)``. CNNs also give their last spatial map (``forward_map``), ViTs the last
block's attention of the class token to every patch (``cls_attention``).

Architecture names (the ``backbone`` of a run config; they never download anything)::

    torchvision:NAME[:WEIGHTS][?key=value&...]   a torchvision model; WEIGHTS (an enum name such as
                                                 IMAGENET1K_V2, or DEFAULT) sets the preprocessing
    timm:NAME[.TAG][?key=value&...]              a timm model; the tag's data config sets the preprocessing

``?key=value`` options go to the model builder (``timm:vit_tiny_patch16_224?img_size=32&patch_size=8``),
except ``input_size``, ``crop_pct``, ``mean``, ``std`` (three numbers, ``imagenet`` or ``inception``) and
``interpolation``, which override the preprocessing. The weights themselves are loaded by
:mod:`engine.encoders`. timm is imported only when a timm model is asked for.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.errors import EncoderError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NAMED_STATS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "inception": ((0.5,) * 3, (0.5,) * 3)}
PREPROCESS_KEYS = ("input_size", "crop_pct", "mean", "std", "interpolation")
SOURCES = {"torchvision": "torchvision", "tv": "torchvision", "timm": "timm"}
RANDOM_WORDS = ("random", "none")
MAX_IMAGE_SIZE = 512  # the largest size a dataset loads at


def is_external(name: str) -> bool:
    return str(name).split(":", 1)[0].strip().lower() in SOURCES and ":" in str(name)


@dataclass(frozen=True)
class ArchSpec:
    """A parsed ``torchvision:NAME[:WEIGHTS][?opts]`` or ``timm:NAME[:random|pretrained][?opts]``."""

    source: str
    name: str
    weights: str = ""  # torchvision: an enum name or DEFAULT; timm: "" or "pretrained"; "random": none
    options: dict = field(default_factory=dict)

    @property
    def random(self) -> bool:
        return self.weights.lower() in RANDOM_WORDS or (self.source == "torchvision" and not self.weights)

    def text(self, weights: bool = True) -> str:
        out = f"{self.source}:{self.name}"
        if weights and self.weights:
            out += f":{self.weights}"
        if self.options:
            out += "?" + "&".join(f"{k}={_option_text(v)}" for k, v in sorted(self.options.items()))
        return out

    @property
    def arch(self) -> str:
        """The architecture name (what ``build_backbone`` takes): torchvision keeps its weights' name (it sets
        the preprocessing), timm drops ``:random``/``:pretrained`` (the tag is in the name)."""
        if self.source == "torchvision":
            return self.text(weights=not self.random)
        return self.text(weights=False)

    def model_options(self) -> dict:
        return {k: v for k, v in self.options.items() if k not in PREPROCESS_KEYS}


def _option_text(v) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(_option_text(x) for x in v)
    return v if isinstance(v, str) else json.dumps(v)


def _option_value(text: str):
    text = text.strip()
    if "," in text:
        return tuple(_option_value(t) for t in text.split(","))
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_arch(text: str) -> ArchSpec:
    """``torchvision:resnet50:IMAGENET1K_V2`` -> ArchSpec; an EncoderError says what is wrong."""
    raw = str(text).strip()
    head, _, rest = raw.partition(":")
    source = SOURCES.get(head.strip().lower())
    if source is None or not rest.strip():
        raise EncoderError(f"{raw!r} is not a model name; write torchvision:NAME[:WEIGHTS] (e.g. "
                           "torchvision:resnet50:IMAGENET1K_V2) or timm:NAME (e.g. timm:vit_small_patch16_224.dino)")
    rest, _, query = rest.partition("?")
    name, _, weights = rest.partition(":")
    options = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise EncoderError(f"{raw!r}: the option {part!r} is not KEY=VALUE (e.g. ?img_size=32&patch_size=8)")
        options[key.strip()] = _option_value(value)
    weights = weights.strip()
    if source == "timm" and weights.lower() not in ("", "pretrained", *RANDOM_WORDS):
        raise EncoderError(f"{raw!r}: timm names take :random (random weights) or nothing (its pretrained weights); "
                           "a timm weights tag goes after a dot, e.g. timm:vit_small_patch16_224.dino")
    return ArchSpec(source, name.strip(), weights, options)


# -- preprocessing ----------------------------------------------------------------------------------------------
@dataclass
class Preprocess:
    """What the model sees: ``input_size`` pixels, the centre ``input_size / resize_size`` of the image (the
    usual Resize(resize_size) + CenterCrop(input_size)), normalised by ``mean`` and ``std``."""

    input_size: int = 224
    resize_size: int = 256
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    interpolation: str = "bilinear"

    @property
    def image_size(self) -> int:
        """The size to load a dataset at: the model's resize size (its crop is then exact)."""
        return int(min(self.resize_size, MAX_IMAGE_SIZE))

    def to_dict(self) -> dict:
        return {"input_size": self.input_size, "resize_size": self.resize_size, "mean": list(self.mean),
                "std": list(self.std), "interpolation": self.interpolation}

    def overridden(self, options: dict, what: str) -> Preprocess:
        p = Preprocess(**{k: getattr(self, k) for k in self.__dataclass_fields__})
        crop = self.input_size / max(1, self.resize_size)
        if "input_size" in options:
            p.input_size = _positive_int(options["input_size"], "input_size", what)
        if "crop_pct" in options:
            crop = float(options["crop_pct"])
            if not 0.05 <= crop <= 1.0:
                raise EncoderError(f"{what}: crop_pct must be between 0.05 and 1, got {crop}")
        p.resize_size = int(math.floor(p.input_size / crop + 1e-6))
        for key in ("mean", "std"):
            if key in options:
                setattr(p, key, _stats(options[key], key, what))
        if "interpolation" in options:
            if options["interpolation"] not in ("bilinear", "bicubic", "nearest"):
                raise EncoderError(f"{what}: interpolation is bilinear, bicubic or nearest, "
                                   f"not {options['interpolation']!r}")
            p.interpolation = options["interpolation"]
        return p


def _positive_int(v, key: str, what: str) -> int:
    if not isinstance(v, int) or v < 8:
        raise EncoderError(f"{what}: {key} must be a whole number of pixels (8 or more), got {v!r}")
    return v


def _stats(v, key: str, what: str) -> tuple:
    if isinstance(v, str) and v.lower() in NAMED_STATS:
        return NAMED_STATS[v.lower()][0 if key == "mean" else 1]
    if isinstance(v, tuple) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v):
        return tuple(float(x) for x in v)
    raise EncoderError(f"{what}: {key} is three numbers (e.g. {key}=0.5,0.5,0.5), imagenet or inception; got {v!r}")


class Preprocessor(nn.Module):
    """[0, 1] images of any size -> the model's input: in eval mode the centre crop of the model's own
    preprocessing, exact when the images come at ``resize_size``; in training mode only the resize (the
    method's augmentations crop). Always computed in float32."""

    def __init__(self, p: Preprocess):
        super().__init__()
        self.p = p
        self.register_buffer("mean", torch.tensor(p.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(p.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size, resize = self.p.input_size, self.p.resize_size
        h, w = x.shape[-2:]
        s = min(h, w)
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            if self.training:
                c = s
            elif s == resize:
                c = size
            else:
                c = max(1, min(s, int(round(s * size / resize))))
            if c < h or c < w:
                top, left = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))
                x = x[..., top:top + c, left:left + c]
            if c != size or x.shape[-1] != x.shape[-2]:
                mode = self.p.interpolation
                x = F.interpolate(x, size=(size, size), mode=mode, align_corners=None if mode == "nearest" else False,
                                  antialias=mode != "nearest")
            return (x - self.mean) / self.std


# -- the wrappers ---------------------------------------------------------------------------------------------
class ExternalEncoder(nn.Module):
    """A torchvision or timm model without its classifier: ``forward`` gives pooled features. Its
    state dict is the model's under ``net.``."""

    kind = "cnn"

    def __init__(self, arch: ArchSpec, net: nn.Module, preprocess: Preprocess, feature_dim: int,
                 head_names: tuple = ()):
        super().__init__()
        self.arch = arch.arch
        self.pre = Preprocessor(preprocess)
        self.net = net
        self.feature_dim = int(feature_dim)
        self.head_names = tuple(head_names)  # the classifier's names in the original model's state dict

    @property
    def preprocess(self) -> Preprocess:
        return self.pre.p

    def forward(self, x):
        return self.net(self.pre(x))

    def _capture(self, module: nn.Module, x: torch.Tensor, output: bool = False) -> torch.Tensor:
        """What ``module`` gets (or gives) while the model encodes ``x`` (already preprocessed)."""
        got: list = []
        if output:
            handle = module.register_forward_hook(lambda m, a, out: got.append(out))
        else:
            handle = module.register_forward_pre_hook(lambda m, a: got.append(a[0]))
        try:
            self._run(x)
        finally:
            handle.remove()
        return got[-1]

    def _run(self, x):
        return self.net(x)


def _attention_rows(q: torch.Tensor, k: torch.Tensor, scale: float, prefix: int, grid: tuple) -> torch.Tensor:
    """The class token's attention to the patches, (B, heads, gh, gw), from queries and keys (B, H, N, d)."""
    a = ((q[:, :, :1] * scale) @ k.transpose(-2, -1)).softmax(dim=-1)[:, :, 0, prefix:]
    b, h, n = a.shape
    gh, gw = grid
    if gh * gw != n:
        gh = gw = int(round(math.sqrt(n)))
    return a.reshape(b, h, gh, gw)


class TorchvisionEncoder(ExternalEncoder):
    """A torchvision CNN: its spatial map is what its last adaptive pooling (or ``features``) sees."""

    def __init__(self, arch: ArchSpec, net, preprocess, feature_dim, head_names):
        super().__init__(arch, net, preprocess, feature_dim, head_names)
        pools = [m for m in net.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
        self._map_at = (pools[-1], False) if pools else \
            ((net.features, True) if isinstance(getattr(net, "features", None), nn.Module) else None)

    def forward_map(self, x):
        """The last spatial feature map ``(B, C, h, w)``."""
        if self._map_at is None:
            raise EncoderError(f"{self.arch} has no spatial feature map the workbench can find")
        return self._capture(self._map_at[0], self.pre(x), output=self._map_at[1])


class TorchvisionViT(ExternalEncoder):
    """torchvision's VisionTransformer."""

    kind = "vit"

    def forward_map(self, x):
        """The patch tokens laid on their grid ``(B, D, gh, gw)``."""
        x = self.pre(x)
        t = self._capture(self.net.encoder.ln, x, output=True)[:, 1:]
        side = x.shape[-1] // self.net.patch_size
        return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], side, -1)

    def cls_attention(self, x):
        """The last block's class-token attention to the patches, per head: ``(B, heads, gh, gw)``."""
        x = self.pre(x)
        last = self.net.encoder.layers[-1]
        t = last.ln_1(self._capture(last, x))
        attn = last.self_attention
        d = attn.embed_dim
        qkv = F.linear(t, attn.in_proj_weight, attn.in_proj_bias)
        b, n, _ = qkv.shape
        h = attn.num_heads
        q, k = (qkv[..., i * d:(i + 1) * d].reshape(b, n, h, d // h).transpose(1, 2) for i in range(2))
        side = x.shape[-1] // self.net.patch_size
        return _attention_rows(q, k, (d // h) ** -0.5, 1, (side, side))


def timm_is_vit(net: nn.Module) -> bool:
    """A timm model with patch embedding and blocks whose attention has a ``qkv`` projection."""
    blocks = getattr(net, "blocks", None)
    if getattr(net, "patch_embed", None) is None or not isinstance(blocks, (nn.Sequential, nn.ModuleList)) \
            or not len(blocks):
        return False
    return hasattr(getattr(blocks[-1], "attn", None), "qkv")


class TimmEncoder(ExternalEncoder):
    """A timm CNN: its spatial map is ``forward_features``."""

    def _run(self, x):
        return self.net.forward_features(x)

    def forward_map(self, x):
        f = self.net.forward_features(self.pre(x))
        if f.ndim != 4:
            raise EncoderError(f"{self.arch} has no spatial feature map the workbench can find")
        return f


def _attention_rows_from(weights: torch.Tensor, prefix: int, grid: tuple) -> torch.Tensor:
    a = weights[:, :, 0, prefix:]
    b, h, n = a.shape
    gh, gw = grid
    if gh * gw != n:
        gh = gw = int(round(math.sqrt(n)))
    return a.reshape(b, h, gh, gw)


class TimmViT(TimmEncoder):
    """A timm ViT (DeiT, DINO, DINOv2, ...): prefix tokens (class, registers) then patches."""

    kind = "vit"

    def __init__(self, arch: ArchSpec, net, preprocess, feature_dim, head_names):
        super().__init__(arch, net, preprocess, feature_dim, head_names)
        self.prefix_tokens = int(getattr(net, "num_prefix_tokens", 1))

    def forward_map(self, x):
        x = self.pre(x)
        t = self.net.forward_features(x)[:, self.prefix_tokens:]
        gh, gw = self._grid(x, t.shape[1])
        return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], gh, gw)

    def _own_weights(self, attn, x) -> torch.Tensor | None:
        """The softmaxed attention ``(B, H, N, N)`` timm computes in ``attn`` (what its attention dropout gets,
        on its unfused path), or None when the module has no such step."""
        import threading

        drop = getattr(attn, "attn_drop", None)
        if not isinstance(drop, nn.Module) or not hasattr(attn, "fused_attn"):
            return None
        me, got = threading.get_ident(), []
        handle = drop.register_forward_hook(
            lambda m, a, out: got.append(a[0]) if threading.get_ident() == me else None)
        fused, attn.fused_attn = attn.fused_attn, False
        try:
            self.net.forward_features(x)
        finally:
            attn.fused_attn = fused
            handle.remove()
        w = got[-1] if got else None
        return w if w is not None and w.ndim == 4 and w.shape[0] == x.shape[0] else None

    def _grid(self, x, n: int) -> tuple:
        ps = getattr(self.net.patch_embed, "patch_size", (16, 16))
        ps = (ps, ps) if isinstance(ps, int) else tuple(ps)
        gh, gw = x.shape[-2] // ps[0], x.shape[-1] // ps[1]
        if gh * gw != n:
            gh = gw = int(round(math.sqrt(n)))
        return gh, gw

    def cls_attention(self, x):
        """The last block's class-token attention to the patches, per head: ``(B, heads, gh, gw)``: timm's own
        attention weights (its unfused path, so relative position biases and the like are in), else computed
        from the block's ``qkv`` projection."""
        x = self.pre(x)
        attn = self.net.blocks[-1].attn
        weights = self._own_weights(attn, x)
        if weights is not None:
            n = weights.shape[-1] - self.prefix_tokens
            return _attention_rows_from(weights, self.prefix_tokens, self._grid(x, n))
        t = self._capture(attn, x)
        b, n, _ = t.shape
        h = attn.num_heads
        qkv = attn.qkv(t).reshape(b, n, 3, h, -1).permute(2, 0, 3, 1, 4)
        q, k = qkv[0], qkv[1]
        if hasattr(attn, "q_norm"):
            q, k = attn.q_norm(q), attn.k_norm(k)
        scale = float(getattr(attn, "scale", q.shape[-1] ** -0.5))
        return _attention_rows(q, k, scale, self.prefix_tokens, self._grid(x, n - self.prefix_tokens))


# -- building ---------------------------------------------------------------------------------------------------
def import_timm():
    """timm, or an EncoderError saying how to install it (the engine runs without it)."""
    try:
        import timm
    except ImportError:
        raise EncoderError("timm is not installed, so timm: models cannot be opened; install it "
                           "(pip install timm) or use a torchvision: model or a workbench backbone") from None
    return timm


def _drop_last_linear(net: nn.Module) -> tuple[str, int]:
    """Replace the model's last nn.Linear (its classifier) by nn.Identity; (its name, its in_features)."""
    name, lin = next(((n, m) for n, m in reversed(list(net.named_modules())) if isinstance(m, nn.Linear)),
                     (None, None))
    if lin is None:
        raise EncoderError("this torchvision model has no classifier layer to take off; choose a classification model")
    parent = net.get_submodule(name.rsplit(".", 1)[0]) if "." in name else net
    setattr(parent, name.rsplit(".", 1)[-1], nn.Identity())
    return name, lin.in_features


def torchvision_weights(spec: ArchSpec):
    """The weights enum member a torchvision spec names (None for random weights)."""
    import torchvision.models as tvm

    if spec.random:
        return None
    try:
        enum = tvm.get_model_weights(spec.name)
    except (ValueError, KeyError):
        return None
    names = [n for n in enum.__members__]
    key = spec.weights.upper() if spec.weights.upper() == "DEFAULT" else spec.weights
    if key not in enum.__members__:
        raise EncoderError(f"torchvision's {spec.name} has no weights {spec.weights!r}; choose one of: "
                           f"{', '.join(names)} (or leave them out for random weights)")
    return enum[key]


def build_torchvision(spec: ArchSpec) -> TorchvisionEncoder:
    import torchvision.models as tvm

    try:
        builder = tvm.get_model_builder(spec.name)
    except ValueError:
        close = [n for n in tvm.list_models(module=tvm) if spec.name.lower()[:4] in n][:6]
        raise EncoderError(f"torchvision has no model {spec.name!r}" + (f"; did you mean {', '.join(close)}?"
                           if close else "; see torchvision.models.list_models()")) from None
    weights = torchvision_weights(spec)
    pre = Preprocess()
    if weights is not None:
        t = weights.transforms()
        crop, resize = getattr(t, "crop_size", [224]), getattr(t, "resize_size", [256])
        interp = getattr(getattr(t, "interpolation", None), "value", "bilinear")
        pre = Preprocess(int(crop[0]), int(resize[0]), tuple(t.mean), tuple(t.std),
                         interp if interp in ("bilinear", "bicubic", "nearest") else "bilinear")
    opts = spec.model_options()
    if "image_size" in opts:  # torchvision ViTs take their resolution as image_size
        pre = Preprocess(int(opts["image_size"]), int(opts["image_size"] / 0.875), pre.mean, pre.std,
                         pre.interpolation)
    pre = pre.overridden(spec.options, spec.text())
    try:
        net = builder(weights=None, **opts)
    except TypeError as exc:
        raise EncoderError(f"{spec.text()}: torchvision's {spec.name} does not take these options ({exc})") from None
    head, dim = _drop_last_linear(net)
    from torchvision.models.vision_transformer import VisionTransformer

    cls = TorchvisionViT if isinstance(net, VisionTransformer) else TorchvisionEncoder
    return cls(spec, net, pre, dim, (head,))


def build_timm(spec: ArchSpec, net: nn.Module | None = None) -> TimmEncoder:
    """A timm model with random weights (``net``: one already made, e.g. with pretrained weights)."""
    timm = import_timm()
    if net is None:
        try:
            net = timm.create_model(spec.name, pretrained=False, num_classes=0, **spec.model_options())
        except RuntimeError as exc:
            if "nknown model" not in str(exc):
                raise EncoderError(f"{spec.text()}: timm cannot build it ({str(exc).splitlines()[0][:200]})") from None
            base = spec.name.split(".")[0]
            close = timm.list_models(f"*{base[:8]}*")[:6]
            raise EncoderError(f"timm has no model {spec.name!r}" + (f"; did you mean {', '.join(close)}?" if close
                               else "; see timm.list_models()")) from None
        except TypeError as exc:
            raise EncoderError(f"{spec.text()}: timm's {spec.name} does not take these options ({exc})") from None
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=net)
    size = int(cfg["input_size"][-1])
    pe = getattr(net, "patch_embed", None)
    fixed = getattr(pe, "img_size", None)
    if fixed and not getattr(net, "dynamic_img_size", False):
        size = int(fixed[-1] if isinstance(fixed, (tuple, list)) else fixed)
    crop = float(cfg.get("crop_pct") or 0.875)
    pre = Preprocess(size, int(math.floor(size / crop + 1e-6)), tuple(cfg["mean"]), tuple(cfg["std"]),
                     cfg.get("interpolation") if cfg.get("interpolation") in ("bilinear", "bicubic") else "bilinear")
    pre = pre.overridden(spec.options, spec.text())
    classifier = (getattr(net, "pretrained_cfg", None) or {}).get("classifier") or "head"
    heads = tuple(classifier) if isinstance(classifier, (tuple, list)) else (classifier,)
    dim = getattr(net, "head_hidden_size", None) or getattr(net, "num_features", 0)
    return (TimmViT if timm_is_vit(net) else TimmEncoder)(spec, net, pre, dim, heads)


def build_external(name: str | ArchSpec) -> ExternalEncoder:
    """A wrapped torchvision/timm model with random weights (its own preprocessing)."""
    spec = name if isinstance(name, ArchSpec) else parse_arch(name)
    return build_torchvision(spec) if spec.source == "torchvision" else build_timm(spec)


__all__ = ["ArchSpec", "parse_arch", "is_external", "Preprocess", "Preprocessor", "ExternalEncoder",
           "TorchvisionEncoder", "TorchvisionViT", "TimmEncoder", "TimmViT", "build_external", "build_torchvision", "build_timm",
           "torchvision_weights", "import_timm", "IMAGENET_MEAN", "IMAGENET_STD"]
