"""Batched augmentations with per-sample random parameters, on whatever device the batch is on.

torchvision's v2 transforms applied to a batch tensor draw ONE set of parameters for the whole
batch; SSL needs different views for every image. Here every op draws its parameters per sample
from a ``torch.Generator`` and runs as a handful of batched tensor ops (one ``grid_sample`` for
crop + flip, 3x3 colour matrices, a grouped convolution for blur), so a batch of views costs a
few milliseconds and runs on the GPU when training does.

Inputs and outputs are float tensors ``(B, 3, H, W)`` in [0, 1].
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from engine.params import param

_GRAY = (0.299, 0.587, 0.114)


@dataclass
class AugmentConfig:
    crop: bool = param(True, "Random resized crop")
    crop_scale_min: float = param(0.2, "Smallest crop, as a fraction of the image area", min=0.01, max=1.0)
    crop_scale_max: float = param(1.0, "Largest crop, as a fraction of the image area", min=0.01, max=1.0)
    crop_ratio: float = param(4 / 3, "Largest aspect-ratio change of a crop (and its inverse)", min=1.0,
                              max=4.0, advanced=True)
    flip_p: float = param(0.5, "Probability of a horizontal flip", min=0.0, max=1.0)
    jitter_p: float = param(0.8, "Probability of colour jitter", min=0.0, max=1.0)
    brightness: float = param(0.4, "Brightness jitter strength", min=0.0, max=1.0)
    contrast: float = param(0.4, "Contrast jitter strength", min=0.0, max=1.0)
    saturation: float = param(0.4, "Saturation jitter strength", min=0.0, max=1.0)
    hue: float = param(0.1, "Hue jitter strength (fraction of the colour circle)", min=0.0, max=0.5)
    gray_p: float = param(0.2, "Probability of turning the view grey", min=0.0, max=1.0)
    blur_p: float = param(0.0, "Probability of a Gaussian blur", min=0.0, max=1.0)
    blur_sigma_min: float = param(0.1, "Smallest blur sigma (in 1/10 of the image size)", min=0.01, max=5.0,
                                  advanced=True)
    blur_sigma_max: float = param(2.0, "Largest blur sigma (in 1/10 of the image size)", min=0.01, max=5.0,
                                  advanced=True)
    solarize_p: float = param(0.0, "Probability of solarizing (inverting pixels above the threshold)",
                              min=0.0, max=1.0)
    solarize_threshold: float = param(0.5, "Solarize threshold", min=0.0, max=1.0, advanced=True)

    def check(self, path: str = "") -> None:
        from engine.params import ConfigError

        if self.crop_scale_min > self.crop_scale_max:
            raise ConfigError(f"{path}.crop_scale_min" if path else "crop_scale_min",
                              "must not exceed crop_scale_max")
        if self.blur_sigma_min > self.blur_sigma_max:
            raise ConfigError(f"{path}.blur_sigma_min" if path else "blur_sigma_min",
                              "must not exceed blur_sigma_max")


def preset(name: str, image_size: int = 32) -> tuple[AugmentConfig, AugmentConfig]:
    """The two view recipes of a named preset: ``simclr``, ``byol``, ``light`` or ``none``."""
    small = image_size <= 48
    if name == "simclr":
        # SimCLR (Chen et al. 2020); on CIFAR-sized images the paper drops the blur
        view = AugmentConfig(crop_scale_min=0.2 if small else 0.08, blur_p=0.0 if small else 0.5)
        return view, view
    if name == "byol":
        # BYOL (Grill et al. 2020): asymmetric blur and solarization
        v1 = AugmentConfig(crop_scale_min=0.2 if small else 0.08, saturation=0.2, blur_p=0.0 if small else 1.0)
        v2 = replace(v1, blur_p=0.0 if small else 0.1, solarize_p=0.2)
        return v1, v2
    if name == "light":
        view = AugmentConfig(crop_scale_min=0.5, jitter_p=0.0, gray_p=0.0)
        return view, view
    if name == "none":
        view = AugmentConfig(crop=False, flip_p=0.0, jitter_p=0.0, gray_p=0.0)
        return view, view
    raise ValueError(f"unknown augmentation preset {name!r}; choose simclr, byol, light or none")


PRESETS = ("simclr", "byol", "light", "none")


def _rand(n: int, g: torch.Generator | None, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device)


def _uniform(n, lo, hi, g, device) -> torch.Tensor:
    return lo + (hi - lo) * _rand(n, g, device)


@functools.lru_cache(maxsize=32)
def _constants(device: torch.device, dtype: torch.dtype) -> dict:
    """The fixed tensors of the ops on ``device``, made once: a tensor built from Python numbers is a
    blocking copy to a GPU, which waits for every queued kernel (a host sync in each training step)."""
    with torch.inference_mode(False):  # usable later outside inference mode too
        return _make_constants(device, dtype)


def _make_constants(device: torch.device, dtype: torch.dtype) -> dict:
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=dtype)
    return {"gray": torch.tensor(_GRAY, dtype=dtype).view(1, 3, 1, 1).to(device),
            # inverted on the CPU: linalg.inv on a GPU checks for errors with a host sync
            "to_yiq": to_yiq.to(device), "to_rgb": torch.linalg.inv(to_yiq).to(device)}


def gray(x: torch.Tensor) -> torch.Tensor:
    return (x * _constants(x.device, x.dtype)["gray"]).sum(1, keepdim=True)


def crop_flip(x: torch.Tensor, cfg: AugmentConfig, g, out_size: int | None = None):
    """Random resized crop and horizontal flip in one ``grid_sample``. Returns (views, boxes, flips)."""
    b, _, h, w = x.shape
    dev = x.device
    out = out_size or h
    area = _uniform(b, cfg.crop_scale_min, cfg.crop_scale_max, g, dev)
    logr = _uniform(b, -math.log(cfg.crop_ratio), math.log(cfg.crop_ratio), g, dev)
    ux, uy = _rand(b, g, dev), _rand(b, g, dev)
    if cfg.crop:
        ratio = torch.exp(logr)
        cw = torch.sqrt(area * ratio).clamp(max=1.0)
        ch = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (ux * 2 - 1) * (1 - cw)
        cy = (uy * 2 - 1) * (1 - ch)
    else:
        cw = ch = torch.ones(b, device=dev)
        cx = cy = torch.zeros(b, device=dev)
    flip = _rand(b, g, dev) < cfg.flip_p
    sx = torch.where(flip, -cw, cw)
    theta = torch.zeros(b, 2, 3, device=dev, dtype=x.dtype)
    theta[:, 0, 0] = sx
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = ch
    theta[:, 1, 2] = cy
    # nothing to resample: skipped without a host sync when no flip can be drawn, and on the CPU only
    # when none was (on a GPU asking would stall the step; resampling is nearly free there)
    if not cfg.crop and out == h and (cfg.flip_p <= 0 or (dev.type == "cpu" and not bool(flip.any()))):
        boxes = torch.stack([cx - cw, cy - ch, cx + cw, cy + ch], 1)
        return x, boxes, flip
    grid = F.affine_grid(theta, [b, x.shape[1], out, out], align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    boxes = torch.stack([cx - cw, cy - ch, cx + cw, cy + ch], 1)  # in [-1, 1] image coordinates
    return y, boxes, flip


def _hue_matrices(angle: torch.Tensor) -> torch.Tensor:
    """Per-sample 3x3 RGB matrices rotating hue by ``angle`` (radians) in YIQ space."""
    dev, dt = angle.device, angle.dtype
    const = _constants(dev, dt)
    to_yiq, to_rgb = const["to_yiq"], const["to_rgb"]
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(angle.shape[0], 3, 3, device=dev, dtype=dt)
    rot[:, 0, 0] = 1
    rot[:, 1, 1] = c
    rot[:, 1, 2] = -s
    rot[:, 2, 1] = s
    rot[:, 2, 2] = c
    return to_rgb @ rot @ to_yiq


def color_jitter(x: torch.Tensor, cfg: AugmentConfig, g):
    b = x.shape[0]
    dev = x.device
    apply = (_rand(b, g, dev) < cfg.jitter_p).to(x.dtype)

    def factor(strength):
        f = _uniform(b, max(0.0, 1 - strength), 1 + strength, g, dev)
        return 1 + (f - 1) * apply

    bf, cf, sf = factor(cfg.brightness), factor(cfg.contrast), factor(cfg.saturation)
    hf = _uniform(b, -cfg.hue, cfg.hue, g, dev) * apply
    params = {"brightness": bf, "contrast": cf, "saturation": sf, "hue": hf, "jitter": apply > 0}
    if cfg.jitter_p <= 0 or (dev.type == "cpu" and not bool((apply > 0).any())):  # no host sync on a GPU
        return x, params
    y = (x * bf.view(b, 1, 1, 1)).clamp(0, 1)
    mean = gray(y).mean(dim=(2, 3), keepdim=True)
    y = ((y - mean) * cf.view(b, 1, 1, 1) + mean).clamp(0, 1)
    gy = gray(y)
    y = ((y - gy) * sf.view(b, 1, 1, 1) + gy).clamp(0, 1)
    if cfg.hue > 0:
        m = _hue_matrices(hf * 2 * math.pi)
        y = torch.einsum("bij,bjhw->bihw", m, y).clamp(0, 1)
    # images that drew "no jitter" pass through untouched (bit for bit)
    return torch.where(apply.view(b, 1, 1, 1) > 0, y, x), params


def grayscale(x: torch.Tensor, p: float, g):
    b = x.shape[0]
    sel = _rand(b, g, x.device) < p
    if p <= 0:
        return x, sel
    y = torch.where(sel.view(b, 1, 1, 1), gray(x).expand_as(x), x)
    return y, sel


def gaussian_blur(x: torch.Tensor, cfg: AugmentConfig, g):
    b, c, h, w = x.shape
    dev = x.device
    sel = _rand(b, g, dev) < cfg.blur_p
    # sigma is given in tenths of the image size (as SimCLR's 10%-of-image kernel)
    sigma = _uniform(b, cfg.blur_sigma_min, cfg.blur_sigma_max, g, dev) * (h / 32.0)
    if cfg.blur_p <= 0 or (dev.type == "cpu" and not bool(sel.any())):  # no host sync on a GPU
        return x, torch.where(sel, sigma, torch.zeros_like(sigma))
    radius = max(1, int(math.ceil(3 * cfg.blur_sigma_max * h / 32.0)))
    radius = min(radius, (h - 1) // 2)
    k = torch.arange(-radius, radius + 1, device=dev, dtype=x.dtype)
    kern = torch.exp(-(k.view(1, -1) ** 2) / (2 * sigma.view(-1, 1).clamp(min=1e-3) ** 2))
    kern = kern / kern.sum(1, keepdim=True)
    delta = torch.zeros_like(kern)
    delta[:, radius] = 1
    kern = torch.where(sel.view(-1, 1), kern, delta)
    kern = kern.repeat_interleave(c, 0)  # (b*c, K)
    y = x.reshape(1, b * c, h, w)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, kern.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(y, kern.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, h, w), torch.where(sel, sigma, torch.zeros_like(sigma))


def solarize(x: torch.Tensor, cfg: AugmentConfig, g):
    b = x.shape[0]
    sel = _rand(b, g, x.device) < cfg.solarize_p
    if cfg.solarize_p <= 0:
        return x, sel
    y = torch.where(sel.view(b, 1, 1, 1) & (x >= cfg.solarize_threshold), 1 - x, x)
    return y, sel


def augment(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator | None = None,
            out_size: int | None = None, return_params: bool = False):
    """One view per image of ``x`` (float in [0, 1]), each with its own random parameters.

    The random draws are made in a fixed order whatever the probabilities, so a seed gives the
    same crop whether or not jitter is switched on (previews stay stable while the user toggles).
    """
    y, boxes, flips = crop_flip(x, cfg, g, out_size)
    y, jit = color_jitter(y, cfg, g)
    y, grays = grayscale(y, cfg.gray_p, g)
    y, sigma = gaussian_blur(y, cfg, g)
    y, sol = solarize(y, cfg, g)
    y = y.clamp(0, 1)
    if not return_params:
        return y
    params = {"box": boxes, "flip": flips, "gray": grays, "blur_sigma": sigma, "solarize": sol, **jit}
    return y, {k: v.detach().cpu() for k, v in params.items()}


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float().div_(255.0)


__all__ = ["AugmentConfig", "augment", "preset", "PRESETS", "to_float", "gray"]
