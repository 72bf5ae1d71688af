"""DINO: self-distillation with no labels. A student matches the centred, sharpened output of an
EMA teacher across views (optionally with extra small local crops: multi-crop).

Caron, Touvron, Misra, Jegou, Mairal, Bojanowski, Joulin. "Emerging Properties in
Self-Supervised Vision Transformers", ICCV 2021. Works with ViT and CNN backbones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.methods.base import StepOutput
from engine.methods.losses import dino_loss
from engine.methods.momentum import MomentumMethod
from engine.methods.views import ContrastiveViews, TwoViewMethod
from engine.params import param
from engine.pretext.views import MultiCrop


@dataclass
class DINOConfig(ContrastiveViews):
    views: str = param("byol", "Augmentation recipe of the two global views (the paper uses BYOL's)",
                       choices=("simclr", "byol", "light"))
    out_dim: int = param(1024, "Number of prototypes: the output width of the head (the paper: 65536)",
                         min=16, max=262144)
    head_hidden: int = param(512, "Hidden width of the head's MLP (the paper: 2048)", min=8, max=16384)
    bottleneck: int = param(128, "Bottleneck before the prototypes (the paper: 256)", min=8, max=4096)
    head_bn: bool = param(True, "BatchNorm in the head's MLP (the paper uses it with ResNets, not with ViTs; "
                                "it keeps a small CNN's teacher from flattening to a uniform output early on)")
    student_temp: float = param(0.1, "Student softmax temperature", min=0.01, max=1.0)
    teacher_temp: float = param(0.04, "Teacher softmax temperature (sharpening; lower is sharper)", min=0.001,
                                max=1.0)
    center_momentum: float = param(0.9, "EMA rate of the centre subtracted from the teacher's outputs",
                                   min=0.0, max=1.0)
    # on builtin:shapes, 414 steps: kNN 0.70 with 0.98, 0.73 with 0.95, 0.40 with 0.9 (the teacher then
    # chases a student that has not settled: a near collapse); random init 0.58
    momentum: float = param(0.95, "Base momentum of the teacher (the paper: 0.996 for long runs; short CPU runs: lower), "
                                  "raised to 1 along a cosine", min=0.0, max=1.0)
    momentum_schedule: bool = param(True, "Raise the teacher momentum to 1 along a cosine over the run")
    global_crop_min: float = param(0.3, "Smallest global crop (fraction of the area; the paper: 0.4)", min=0.05,
                                   max=1.0)
    local_crops: int = param(2, "Small local crops seen only by the student (multi-crop; 0: off; the paper: "
                                "6-10)", min=0, max=16)
    local_size: float = param(0.5, "Side of a local crop relative to the image", min=0.25, max=1.0)
    local_crop_max: float = param(0.3, "Largest local crop (fraction of the area)", min=0.02, max=1.0)


class DINOHead(nn.Module):
    """MLP -> L2-normalised bottleneck -> weight-normalised prototypes (norm fixed to 1)."""

    def __init__(self, in_dim: int, hidden: int, bottleneck: int, out_dim: int, bn: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(2):
            layers.append(nn.Linear(d, hidden))
            if bn:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(nn.GELU())
            d = hidden
        layers.append(nn.Linear(d, bottleneck))
        self.mlp = nn.Sequential(*layers)
        self.prototypes = nn.Parameter(torch.empty(out_dim, bottleneck))
        nn.init.trunc_normal_(self.prototypes, std=0.02)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        z = F.normalize(self.mlp(x), dim=-1)
        return F.linear(z, F.normalize(self.prototypes, dim=-1))


class DINO(MomentumMethod, TwoViewMethod):
    name = "dino"
    title = "DINO (self-distillation)"
    summary = "Distillation: a student matches an EMA teacher's sharpened, centred prototypes across crops."
    description = ("Learns augmentation- and scale-invariant features (local crops must agree with global "
                   "views); with ViTs its attention maps segment objects. Collapse is held off only by the "
                   "balance of centering (against one dominant prototype) and sharpening (against a uniform "
                   "output): temperatures and momentum matter, and it needs long runs and many crops.")
    needs = ("Measured with its defaults on a CPU (seed 0): on the built-in shapes kNN 0.806 against 0.561 for its "
             "random-init encoder after 2 minutes (635 steps); on cifar10-small 0.461 against 0.387 after 3 "
             "minutes (573 steps).")
    paper = "Caron et al., Emerging Properties in Self-Supervised Vision Transformers, ICCV 2021"
    family = "distillation"
    backbone_kind = "any"
    preview_kind = "views"
    Config = DINOConfig

    @classmethod
    def run_defaults(cls) -> dict:
        return {"optim": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.04, "batch_size": 128}}

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        self.views = tuple(replace(v, crop_scale_min=cfg.global_crop_min) for v in self.views)
        self.crops = MultiCrop(self.views, cfg.local_crops, cfg.local_size, cfg.local_crop_max, info.image_size,
                               getattr(backbone, "patch", 0))
        self.head = DINOHead(backbone.feature_dim, cfg.head_hidden, cfg.bottleneck, cfg.out_dim, cfg.head_bn)
        self.add_momentum_targets(teacher_backbone="backbone", teacher_head="head")
        self.register_buffer("center", torch.zeros(1, cfg.out_dim))

    def make_batch(self, x, g, preview=False):
        return self.crops(x, self.views, g, with_params=preview)

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        """center <- m * center + (1 - m) * batch mean of the teacher's outputs (over every process)."""
        m = self.cfg.center_momentum
        self.center.mul_(m).add_(self.group.mean(teacher_out.float().mean(0, keepdim=True)), alpha=1 - m)

    def training_step(self, x, labels, g):
        views = self.make_batch(x, g).inputs
        b = x.shape[0]
        glob = torch.cat(views[:2])
        with torch.no_grad():
            t = self.teacher_head(self.teacher_backbone(glob))
        s_out = list(self.head(self.backbone(glob)).split(b))
        if len(views) > 2:
            s_out += list(self.head(self.backbone(torch.cat(views[2:]))).split(b))
        t_out = list(t.split(b))
        loss = dino_loss(s_out, t_out, self.center, self.cfg.student_temp, self.cfg.teacher_temp)
        with torch.no_grad():
            probs = F.softmax((t.float() - self.center) / self.cfg.teacher_temp, dim=-1)
            entropy = -(probs * probs.clamp(min=1e-12).log()).sum(-1).mean()
        self.update_center(t)
        return StepOutput(loss, {"teacher_entropy": entropy})

    @torch.no_grad()
    def preview_rows(self, x, g):
        from engine.pretext.tiles import views_rows

        titles = self.crops.titles(global_note=" (teacher + student)", local_note=" (student only)")
        return views_rows(x, self.make_batch(x, g, preview=True), titles=titles)
