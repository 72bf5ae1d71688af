"""Exemplar CNN: every image is its own surrogate class, seen under heavy augmentation.

Dosovitskiy, Springenberg, Riedmiller, Brox. "Discriminative Unsupervised Feature Learning with
Convolutional Neural Networks", NIPS 2014. The paper samples N patches (the surrogate classes),
makes many transformed copies of each (crops, scaling, rotation, colour and contrast changes) and
trains an N-way classifier.

Here the sampled set of surrogate classes is the batch: the B images of a step are B classes, each
seen in ``views`` transformed copies. The classifier's weight vector of a class is the mean
(L2-normalised) embedding of its copies (for a copy's own class, of the other copies), so the
classifier needs no per-image parameters and works on datasets of any size; every copy is
classified among the B classes by a cosine softmax. With two copies this is close to SimCLR; more
copies make each class a cluster rather than a pair. Wu et al. 2018's memory bank (one stored
embedding per dataset image) needs the image's index, which a training step is not given.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.dist import LOCAL
from engine.methods.base import StepOutput
from engine.methods.losses import surrogate_logits as batch_surrogate_logits
from engine.methods.views import ContrastiveViews, TwoViewMethod
from engine.models.heads import projection_head
from engine.params import param
from engine.pretext.affine import random_similarity, similarity_matrix, warp
from engine.pretext.base import PretextBatch


@dataclass
class ExemplarConfig(ContrastiveViews):
    copies: int = param(4, "Transformed copies of every image per step (the members of its surrogate class)",
                        min=2, max=16)
    max_angle: float = param(20.0, "Largest rotation of a copy in degrees (the paper: 20), on top of the "
                                   "recipe's crops, flips and colour changes", min=0.0, max=180.0)
    temperature: float = param(0.1, "Temperature of the cosine softmax over the surrogate classes", min=0.01,
                               max=2.0)
    proj_hidden: int = param(512, "Hidden width of the embedding head", min=8, max=16384)
    proj_dim: int = param(128, "Width of the embedding the surrogate classes are told apart in", min=2, max=16384)


def surrogate_logits(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cosine logits ``(K, B, B)`` of every copy ``z[k, i]`` against the B class prototypes of these images
    alone: the mean normalised embedding of each class's copies, leaving the copy itself out of its own
    class. (Training classifies among the classes of the global batch: ``losses.surrogate_loss``.)"""
    return batch_surrogate_logits(z, temperature, LOCAL)


class Exemplar(TwoViewMethod):
    name = "exemplar"
    title = "Exemplar CNN (surrogate classes)"
    summary = "Instance discrimination: each image is a class of its own, recognised under heavy augmentation."
    description = ("Learns features that stay the same under the transformations (crop, scale, rotation, colour) "
                   "and differ between images: what an object looks like, not where or how lit it is. "
                   "Fails where the transformations are too weak (colour statistics tell the images apart) or "
                   "remove what matters (rotation invariance hurts upright categories); near-duplicate images "
                   "are pushed apart as different classes, and each step sees only a batch of classes.")
    needs = ("Measured with its defaults on a CPU (seed 0): on cifar10-small kNN 0.440 against 0.387 for its "
             "random-init encoder after 29 steps (1 minute on a busy machine).")
    paper = ("Dosovitskiy et al., Discriminative Unsupervised Feature Learning with Convolutional Neural "
             "Networks (Exemplar CNN), NIPS 2014")
    family = "contrastive"
    backbone_kind = "any"
    preview_kind = "exemplar"
    Config = ExemplarConfig

    @classmethod
    def run_defaults(cls) -> dict:
        return {"optim": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64}}

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)  # self.views: the recipes of the copies (the preview's sliders change them)
        self.projector = projection_head(backbone.feature_dim, cfg.proj_hidden, cfg.proj_dim)

    def make_batch(self, x, g, preview=False):
        """``copies`` transformed copies of every image; targets: each copy's surrogate class (its
        image's index in the batch). Copy k uses the recipe ``views[k % 2]``, then a random rotation."""
        from engine.augment import augment

        b = x.shape[0]
        outs, params, angles = [], [], []
        for k in range(self.cfg.copies):
            y, p = augment(x, self.views[k % 2], g, return_params=True)
            sim = random_similarity(b, g, x.device, self.cfg.max_angle, (1.0, 1.0), 0.0)
            if self.cfg.max_angle > 0:
                y = warp(y, similarity_matrix(**sim).to(x.device)).clamp(0, 1)
            outs.append(y)
            params.append(p)
            angles.append(sim["angle"])  # stays on the device (a copy to the host would stall the step)
        targets = torch.arange(b, device=x.device)
        meta = {"num_views": self.cfg.copies, "angles": angles}
        if preview:
            meta["params"] = params
        return PretextBatch(tuple(outs), targets, meta)

    def training_step(self, x, labels, g):
        batch = self.make_batch(x, g)
        k, b = len(batch.inputs), x.shape[0]
        z = self.projector(self.backbone(torch.cat(batch.inputs))).view(k, b, -1)
        loss, acc = self.losses.surrogate_loss(z, self.cfg.temperature)  # among the classes of the global batch
        return StepOutput(loss, {"pretext_acc": acc})

    @torch.no_grad()
    def preview_rows(self, x, g):
        from engine.pretext.tiles import PreviewRow, PreviewTile, crop_box_pixels, describe_view, to_uint8

        batch = self.make_batch(x, g, preview=True)
        orig = to_uint8(x)
        copies = [to_uint8(v) for v in batch.inputs]
        size = x.shape[-1]
        rows = []
        for i in range(x.shape[0]):
            tiles = []
            boxes = []
            for k, view in enumerate(copies):
                p = batch.meta["params"][k]
                boxes.append((*crop_box_pixels(p["box"][i], size), "#ff4040" if k % 2 == 0 else "#40a0ff", str(k + 1)))
                tiles.append(PreviewTile(view[i], f"copy {k + 1}: {describe_view(p, i)}, rotate "
                                                  f"{float(batch.meta['angles'][k][i]):+.0f}°"))
            rows.append(PreviewRow(f"surrogate class {i + 1} (of {x.shape[0]} in this batch)",
                                   [PreviewTile(orig[i], "the exemplar (crop boxes of its copies)", boxes=boxes)]
                                   + tiles))
        return rows
