"""Shared parts of the reconstruction methods (inpainting, denoising, super-resolution,
colorization): a bottleneck and a small upsampling decoder.

By default the decoder paints from the pooled feature vector, the same features kNN and the
linear probe read (like the channel-wise fully connected layer of Pathak et al.'s context
encoder, but narrower): the image has to be summarised in that vector. With
``bottleneck="spatial"`` it paints from the encoder's spatial map instead (CNN backbones expose
``forward_map``; a ViT's patch tokens are laid back on their grid): sharper reconstructions,
features that describe where things are more than what they are. Inpainting and
colorization default to the spatial map (their features scored better by kNN after short CPU
runs); denoising and super-resolution to the pooled vector. The decoder has no skip
connections on purpose: everything it paints must pass through the encoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.augment import AugmentConfig, augment
from engine.methods.base import Method, StepOutput
from engine.params import param


def feature_map(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The encoder's spatial features ``(B, C, h, w)``."""
    if hasattr(backbone, "forward_map"):
        return backbone.forward_map(x)
    if getattr(backbone, "kind", "") == "vit":
        t = backbone.forward_tokens(x)[:, 1:]
        b, n, d = t.shape
        side = int(round(math.sqrt(n)))
        return t.transpose(1, 2).reshape(b, d, side, side)
    raise TypeError(f"{type(backbone).__name__} exposes no spatial feature map (forward_map or forward_tokens)")


@torch.no_grad()
def map_shape(backbone: nn.Module, image_size: int) -> tuple[int, int]:
    """(channels, side) of the feature map for an ``image_size`` input."""
    if getattr(backbone, "kind", "") == "vit" and not hasattr(backbone, "forward_map"):
        return backbone.embed_dim, image_size // backbone.patch
    was = backbone.training
    backbone.eval()
    try:
        p = next(backbone.parameters())
        f = backbone.forward_map(torch.zeros(1, 3, image_size, image_size, device=p.device, dtype=p.dtype))
    finally:
        backbone.train(was)
    return f.shape[1], f.shape[-1]


class UpDecoder(nn.Module):
    """1x1 conv to ``width``, then (2x bilinear upsampling, 3x3 conv, BN, ReLU) until the map
    reaches ``out_size``, halving the width each time (not below 32, or ``width`` if smaller), then a 3x3 conv to
    ``out_channels``."""

    def __init__(self, in_channels: int, in_size: int, out_size: int, out_channels: int, width: int = 128):
        super().__init__()
        self.out_size = out_size
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width),
                                   nn.ReLU(inplace=True)]
        size, w = in_size, width
        floor = min(32, width)
        while size < out_size:
            nw = max(floor, w // 2)
            layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       nn.Conv2d(w, nw, 3, padding=1, bias=False), nn.BatchNorm2d(nw), nn.ReLU(inplace=True)]
            size, w = size * 2, nw
        layers.append(nn.Conv2d(w, out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        y = self.net(f)
        if y.shape[-1] != self.out_size:
            y = F.interpolate(y, size=(self.out_size, self.out_size), mode="bilinear", align_corners=False)
        return y


@dataclass
class ReconstructionOptions:
    bottleneck: str = param("pooled", "What the decoder paints from: the pooled feature vector (the very "
                                      "features that are evaluated; a strong bottleneck) or the encoder's spatial "
                                      "map (sharper pictures, less global features)", choices=("pooled", "spatial"))
    decoder_width: int = param(128, "Channels of the decoder's first layer (halved at each upsampling)",
                               min=8, max=2048)
    crop_scale_min: float = param(0.35, "Light random crops and flips before the corruption (smallest area; "
                                        "1: no crops)", min=0.05, max=1.0)


class ReconstructionMethod(Method):
    """Encoder -> spatial map -> :class:`UpDecoder` -> pixels. Subclasses define ``corrupt``
    (a pretext generator: corrupted input, clean target) and may change the output channels, the
    prediction and the loss. Training crops and flips before corrupting; the inspector's
    ``reconstruct`` corrupts the image as it is, so original, input and output line up."""

    family = "reconstruction"
    backbone_kind = "any"
    out_channels = 3

    @classmethod
    def run_defaults(cls) -> dict:
        return {"optim": {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-4, "batch_size": 128}}

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        ch, side = map_shape(backbone, info.image_size)
        if cfg.bottleneck == "pooled":
            # a fully connected layer spreads the pooled vector back over a small map
            self.expand = nn.Linear(backbone.feature_dim, cfg.decoder_width * side * side)
            self.expand_shape = (cfg.decoder_width, side, side)
            ch = cfg.decoder_width
        self.decoder = UpDecoder(ch, side, self.decoder_size(info.image_size), self.out_channels, cfg.decoder_width)
        self.aug = AugmentConfig(crop=cfg.crop_scale_min < 1.0, crop_scale_min=cfg.crop_scale_min, jitter_p=0.0,
                                 gray_p=0.0)

    def decoder_size(self, image_size: int) -> int:
        return image_size

    def corrupt(self, x: torch.Tensor, g):
        raise NotImplementedError

    def make_batch(self, x, g, preview=False):
        return self.corrupt(augment(x, self.aug, g), g)

    def decode(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.cfg.bottleneck == "pooled":
            f = self.expand(self.backbone(inputs))
            return self.decoder(F.relu(f).view(f.shape[0], *self.expand_shape))
        return self.decoder(feature_map(self.backbone, inputs))

    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] (before clamping) from the corrupted input."""
        return torch.sigmoid(self.decode(inputs))

    def loss(self, pred: torch.Tensor, batch) -> torch.Tensor:
        return F.mse_loss(pred.float(), batch.targets.float())

    def training_step(self, x, labels, g):
        batch = self.make_batch(x, g)
        pred = self.predict(batch.inputs)
        return StepOutput(self.loss(pred, batch), {})

    @torch.no_grad()
    def reconstruct(self, x, g):
        batch = self.corrupt(x, g)
        return batch.inputs, self.predict(batch.inputs).float().clamp(0, 1)
