"""CPC-style patch InfoNCE: predict the features of patches further down the image from a
context of the patches above, against all other patches of the batch as negatives.

van den Oord, Li, Vinyals. "Representation Learning with Contrastive Predictive Coding", 2018;
Henaff et al. "Data-Efficient Image Recognition with Contrastive Predictive Coding" (CPC v2),
ICML 2020. The encoder embeds every patch of an overlapping grid; a causal (masked) convolution
over the feature grid gives each position a context of the rows above it and its own row; a
linear map per offset k predicts the patch k rows below.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.augment import AugmentConfig, augment
from engine.methods.base import Method, StepOutput
from engine.params import param
from engine.pretext.patches import patch_grid


@dataclass
class CPCConfig:
    grid: int = param(4, "Patches per side (the image is resized so that they tile it)", min=3, max=8)
    patch: int = param(16, "Patch size in pixels", min=8, max=64)
    stride: int = param(8, "Step between patches (half the patch size: 50% overlap)", min=2, max=64)
    steps: int = param(2, "Predict the patches 1..steps rows below each context position", min=1, max=6)
    temperature: float = param(0.1, "Softmax temperature of InfoNCE (on normalised features)", min=0.01, max=2.0)
    crop_scale_min: float = param(0.35, "Random crops of the image before cutting patches (smallest area)",
                                  min=0.05, max=1.0)
    patch_gray_p: float = param(0.25, "Probability of turning a patch grey (per patch, against colour shortcuts)",
                                min=0.0, max=1.0)
    patch_jitter_p: float = param(0.8, "Probability of colour jitter per patch", min=0.0, max=1.0)

    def check(self, path: str = "") -> None:
        from engine.params import ConfigError

        if self.steps >= self.grid:
            raise ConfigError(f"{path}.steps" if path else "steps",
                              f"must be smaller than the grid ({self.grid}): nothing is left to predict")


class CausalContext(nn.Module):
    """Two masked convolutions: position (i, j) sees rows i-2..i only."""

    def __init__(self, dim: int):
        super().__init__()
        self.c1 = nn.Conv2d(dim, dim, (2, 3))
        self.c2 = nn.Conv2d(dim, dim, (2, 3))

    def forward(self, z):  # (B, D, G, G)
        h = F.relu(self.c1(F.pad(z, (1, 1, 1, 0))))
        return self.c2(F.pad(h, (1, 1, 1, 0))) + z


class CPC(Method):
    name = "cpc"
    title = "CPC (contrastive predictive coding)"
    summary = "Contrastive prediction: from the patches above, pick the true patch features below among all others."
    description = ("Learns features of image parts that predict their surroundings (what continues below). Every "
                   "other patch of the batch is a negative, so colour and low-level statistics shortcut it unless "
                   "patches are augmented one by one. Features are learned on patches and evaluated on whole "
                   "images (a train-eval gap), and encoding every patch makes each step costly.")
    needs = ("Measured with its defaults on a CPU (seed 0): on cifar10-small kNN 0.426 against 0.387 for its "
             "random-init encoder after 3 minutes (693 steps of batch 64): short of +0.05 there. Longer runs do not "
             "help: in a run planned for 2,000 steps (batch 64, seed 0, one thread) kNN on val was 0.438 after 312 "
             "steps, 0.410 after 624 and 0.366 after 936, so what it learns first from 16-pixel patches wears away "
             "as the patch task is solved. Short runs keep it (their learning rate decays within them): 1, 2 and 3 "
             "epochs gave 0.449, 0.443 and 0.442 (156, 312 and 468 steps). Its recipe on photographs is 2 "
             "epochs, whatever the machine's speed: 0.444 (+0.058, 66 s of training) in bench/methods.py --recipe on an "
             "idle 2-core CPU, a small margin: kNN on 2,000 images moves by about 0.01 from seed to seed. It predicts "
             "patch by patch, so each step is slow on a CPU.")
    photo_recipe = {"epochs": 2}
    photo_recipe_why = ("CPC learns in its first epochs on photographs and then wears it away as its patch task is solved: on "
                        "cifar10-small 3 minutes gave kNN +0.034 over random init, 2 epochs +0.058 (0.444 against 0.387, 312 "
                        "steps of batch 64, about a minute).")
    paper = "van den Oord et al., Representation Learning with Contrastive Predictive Coding, 2018 (v2: Henaff et al., ICML 2020)"
    family = "contrastive"
    backbone_kind = "cnn"
    preview_kind = "patches"
    Config = CPCConfig

    @classmethod
    def run_defaults(cls) -> dict:
        return {"optim": {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-4, "batch_size": 64}}

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        d = backbone.feature_dim
        self.context = CausalContext(d)
        self.predictors = nn.ModuleList([nn.Linear(d, d) for _ in range(cfg.steps)])
        self.pre = AugmentConfig(crop_scale_min=cfg.crop_scale_min, jitter_p=0.0, gray_p=0.0)
        self.patch_aug = AugmentConfig(crop=False, flip_p=0.0, jitter_p=cfg.patch_jitter_p, gray_p=cfg.patch_gray_p)

    def make_batch(self, x, g, preview=False):
        batch = patch_grid(augment(x, self.pre, g), self.cfg.grid, self.cfg.patch, self.cfg.stride)
        p = batch.inputs
        b, n = p.shape[:2]
        flat = augment(p.reshape(b * n, *p.shape[2:]), self.patch_aug, g)
        batch.inputs = flat.view_as(p)
        return batch

    def training_step(self, x, labels, g):
        batch = self.make_batch(x, g)
        p = batch.inputs
        b, n = p.shape[:2]
        gs = self.cfg.grid
        z = self.backbone(p.reshape(b * n, *p.shape[2:]))  # (B*G*G, D)
        d = z.shape[1]
        zmap = z.view(b, gs, gs, d).permute(0, 3, 1, 2)
        c = self.context(zmap)  # (B, D, G, G)
        ids = torch.arange(b * n, device=z.device).view(b, gs, gs)
        preds, targets = [], []
        for k, w in enumerate(self.predictors, start=1):  # predict the patch k rows below
            ctx = c[:, :, :gs - k, :].permute(0, 2, 3, 1).reshape(-1, d)
            preds.append(w(ctx))
            targets.append(ids[:, k:, :].reshape(-1))
        # every patch of the global batch is a negative
        loss, acc = self.losses.predictive_nce(preds, z, targets, self.cfg.temperature)
        return StepOutput(loss, {"pretext_acc": acc})

    @torch.no_grad()
    def preview_rows(self, x, g):
        from engine.pretext.tiles import PreviewRow, PreviewTile, assemble_tiles, to_uint8

        batch = self.make_batch(x, g, preview=True)
        img = to_uint8(batch.meta["image"])
        gs = self.cfg.grid
        tiles = to_uint8(assemble_tiles(F.pad(batch.inputs, (1, 1, 1, 1), value=1.0), gs))
        boxes = batch.meta["boxes"]
        ctx_row, tgt_row = 0, min(gs - 1, self.cfg.steps)
        rows = []
        for i in range(x.shape[0]):
            ctx = [int(v) for v in boxes[ctx_row * gs + 1]]
            tgt = [int(v) for v in boxes[tgt_row * gs + 1]]
            rows.append(PreviewRow(f"image {i + 1}", [
                PreviewTile(img[i], f"{gs}x{gs} overlapping patches ({self.cfg.patch}px, stride {self.cfg.stride})",
                            boxes=[(*ctx, "#40a0ff", "context"), (*tgt, "#ffd040", f"+{tgt_row} rows")]),
                PreviewTile(tiles[i], "patches as the encoder sees them (each augmented on its own)", grid=gs),
            ]))
        return rows
