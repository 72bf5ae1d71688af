"""Supervised training with labels: the upper bound of the evaluation protocol."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn
import torch.nn.functional as F

from engine.augment import AugmentConfig, augment
from engine.methods.base import Method, StepOutput
from engine.params import param
from engine.pretext.base import PretextBatch


@dataclass
class SupervisedConfig:
    crop_scale_min: float = param(0.35, "Random crops (smallest area) as light augmentation", min=0.05,
                                  max=1.0)
    label_smoothing: float = param(0.0, "Label smoothing", min=0.0, max=0.5)


class Supervised(Method):
    name = "supervised"
    title = "Supervised (upper bound)"
    summary = "Reference: train the same encoder with the labels; the upper bound for SSL methods."
    description = ("Uses the labels self-supervised methods do without, so it shows how far a method is "
                   "from the best this encoder can do on this data. Needs a labelled dataset.")
    paper = "The evaluation protocol's upper bound (e.g. Kolesnikov et al., Revisiting SSL, CVPR 2019)"
    family = "reference"
    bound = "upper"
    needs_labels = True
    backbone_kind = "any"
    preview_kind = "views"
    Config = SupervisedConfig

    @classmethod
    def run_defaults(cls) -> dict:
        return {"optim": {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 5e-4, "batch_size": 128}}

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        if info.num_classes < 2:
            from engine.params import ConfigError

            raise ConfigError("method", "supervised training needs a labelled dataset (class folders); "
                                        "this one is unlabeled")
        self.classifier = nn.Linear(backbone.feature_dim, info.num_classes)
        self.aug = AugmentConfig(crop_scale_min=cfg.crop_scale_min, jitter_p=0.0, gray_p=0.0)

    def make_batch(self, x, g, preview=False):
        if preview:
            y, params = augment(x, self.aug, g, return_params=True)
            return PretextBatch((y,), None, {"num_views": 1, "params": [params]})
        return PretextBatch((augment(x, self.aug, g),), None, {"num_views": 1})

    def training_step(self, x, labels, g):
        (v,) = self.make_batch(x, g).inputs
        logits = self.classifier(self.backbone(v))
        loss = F.cross_entropy(logits, labels, label_smoothing=self.cfg.label_smoothing)
        return StepOutput(loss, {"train_acc": (logits.argmax(1) == labels).float().mean()})
