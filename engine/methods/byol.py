"""BYOL: predict the target network's projection of the other view; the target is an EMA.

Grill et al. "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning",
NeurIPS 2020. No negatives: the predictor and the slowly moving target prevent collapse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.methods.base import StepOutput
from engine.methods.losses import byol_loss, pair_cosines
from engine.methods.momentum import MomentumMethod
from engine.methods.views import ContrastiveViews, TwoViewMethod
from engine.models.heads import projection_head
from engine.params import param


@dataclass
class BYOLConfig(ContrastiveViews):
    views: str = param("simclr", "Augmentation recipe of the two views (the paper uses BYOL's; SimCLR's stronger "
                                  "colour jitter learns faster in short CPU runs)", choices=("simclr", "byol", "light"))
    # a target that follows quickly learns in a few hundred CPU steps: on builtin:shapes, 552 steps,
    # kNN 0.70 with 0.98, 0.75 with 0.95, 0.80 with 0.9 (random init 0.58)
    momentum: float = param(0.9, "Base momentum of the target network (the paper: 0.996 for long runs; short runs "
                                 "learn faster with a target that follows quickly), raised to 1 along a cosine when "
                                 "the schedule is on", min=0.0, max=1.0)
    momentum_schedule: bool = param(True, "Raise the momentum to 1 along a cosine over the run (the paper)")
    proj_hidden: int = param(1024, "Hidden width of the projector and predictor (the paper: 4096)", min=8,
                             max=16384)
    proj_dim: int = param(256, "Output width of the projector", min=2, max=16384)


class BYOL(MomentumMethod, TwoViewMethod):
    name = "byol"
    title = "BYOL (bootstrap your own latent)"
    summary = "Distillation: an online network predicts an EMA target network's view of another crop."
    description = ("Learns augmentation-invariant features without negatives, so it works with small batches "
                   "and is less sensitive to the colour recipe than SimCLR. It can collapse to a constant: the "
                   "predictor, BatchNorm in the heads and a slow target are what keep it alive; watch the "
                   "collapse indicator. Learns slowly in short runs.")
    needs = ("Measured with its defaults on a CPU (seed 0): on the built-in shapes kNN 0.834 against 0.561 for its "
             "random-init encoder after 2 minutes (710 steps); on cifar10-small 0.438 against 0.387 after 3 "
             "minutes (669 steps): the momentum teacher needs more steps than contrastive methods to pull ahead. "
             "Early on it trails random init (on 1024 shapes, batch 64: 0.25 against 0.35 after 128 steps, 0.37 "
             "after 256): give it at least a minute.")
    paper = "Grill et al., Bootstrap Your Own Latent, NeurIPS 2020"
    family = "distillation"
    backbone_kind = "any"
    preview_kind = "views"
    Config = BYOLConfig

    @classmethod
    def run_defaults(cls) -> dict:
        # measured on cifar10-small, 2 CPU cores, 1.5 minutes: lr 1e-3 with SimCLR's views beat lr 2e-3 with BYOL's
        return {"optim": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 128}}

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        self.projector = projection_head(backbone.feature_dim, cfg.proj_hidden, cfg.proj_dim)
        self.predictor = projection_head(cfg.proj_dim, cfg.proj_hidden, cfg.proj_dim)
        self.add_momentum_targets(target_backbone="backbone", target_projector="projector")

    def training_step(self, x, labels, g):
        v1, v2 = self.make_batch(x, g).inputs
        both = torch.cat([v1, v2])
        p1, p2 = self.predictor(self.projector(self.backbone(both))).chunk(2)
        with torch.no_grad():
            z1, z2 = self.target_projector(self.target_backbone(both)).chunk(2)
        loss = (byol_loss(p1, z2) + byol_loss(p2, z1)) / 2
        return StepOutput(loss, pair_cosines(p1, p2))
