"""Self-supervised GAN: a GAN whose discriminator also predicts the rotation of real and
generated images; the discriminator is the encoder.

Chen, Zhai, Ritter, Lucic, Houlsby. "Self-Supervised GANs via Auxiliary Rotation Loss", CVPR 2019.
The discriminator ``D`` (the backbone with a real/fake head and a 4-way rotation head) is trained to
tell real from generated images and to classify the rotation (0/90/180/270) of rotated real
images (weight ``beta``); the generator ``G`` is trained to fool ``D`` and to draw images whose
rotation ``D`` can tell (weight ``alpha``), which keeps ``D``'s features from forgetting as ``G``
changes. Non-saturating GAN loss.

One optimiser steps both networks: ``G``'s terms go through a copy of ``D`` whose parameters are
detached (they give no gradient to ``D``) and ``D``'s terms see generated images detached from
``G``. Passes over generated images use copies of the BatchNorm statistics, so the encoder's
running statistics (used at evaluation) describe real images only. The inspector's live
"reconstructions" of this method are generator samples from fixed noise: how ``G`` draws as
training goes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.augment import AugmentConfig, augment
from engine.methods.base import Method, StepOutput
from engine.params import param
from engine.pretext.base import PretextBatch
from engine.pretext.rotation import rotation


@dataclass
class SSGANConfig:
    z_dim: int = param(32, "Length of the generator's noise vector (the paper: 128; 32 with the small generator "
                           "below learns faster on a CPU, see the method's text)", min=2, max=1024)
    gen_width: int = param(16, "Channels of the generator's last block (doubled per block towards the noise; the "
                               "paper's is wider, 64 here before: a generator this small learns faster on a CPU)",
                           min=8, max=1024)
    alpha: float = param(0.2, "Weight of the generator's rotation term (the paper: 0.2)", min=0.0, max=10.0)
    beta: float = param(1.0, "Weight of the discriminator's rotation term on real images (the paper: 1)", min=0.0,
                        max=10.0)
    gan_weight: float = param(1.0, "Weight of the real/fake terms (0: only rotation, a RotNet with a generator "
                                   "that learns nothing)", min=0.0, max=10.0)


class Generator(nn.Module):
    """DCGAN-style: noise -> 4x4 map -> (2x upsampling, 3x3 conv, BN, ReLU) up to the image size -> RGB in [0, 1]."""

    def __init__(self, z_dim: int, image_size: int, width: int = 64):
        super().__init__()
        ups = 0
        while 4 * 2 ** ups < image_size:
            ups += 1
        ch = width * 2 ** max(0, ups - 1)
        self.image_size = image_size
        self.start = (ch, 4, 4)
        self.fc = nn.Sequential(nn.Linear(z_dim, ch * 16, bias=False), nn.BatchNorm1d(ch * 16), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        for _ in range(ups):
            nxt = max(width, ch // 2)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, nxt, 3, padding=1, bias=False),
                       nn.BatchNorm2d(nxt), nn.ReLU(inplace=True)]
            ch = nxt
        layers.append(nn.Conv2d(ch, 3, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        y = self.net(self.fc(z).view(z.shape[0], *self.start))
        if y.shape[-1] != self.image_size:
            y = F.interpolate(y, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return torch.sigmoid(y)


def noise_image(z: torch.Tensor, size: int) -> torch.Tensor:
    """The noise vectors drawn as grey squares ``(B, 3, size, size)`` (for the inspector)."""
    b, d = z.shape
    side = int(d ** 0.5)
    grid = torch.sigmoid(z[:, :side * side].float()).view(b, 1, side, side)
    return F.interpolate(grid, size=(size, size), mode="nearest").expand(b, 3, size, size)


class SSGAN(Method):
    name = "ssgan"
    title = "SSGAN (GAN with a rotation-predicting discriminator)"
    summary = "Generative: a discriminator tells real from generated images and predicts their rotation; it is the encoder."
    description = ("Learns what real images look like (to catch fakes) and which way is up (the rotation head, "
                   "as RotNet), and shows what it has learned through what the generator draws (the inspector's "
                   "live samples). GANs are unstable: the discriminator's features drift as the generator "
                   "changes (the rotation term is there to hold them), mode collapse gives a narrow set of fakes, "
                   "and the real/fake task alone needs no semantics; small CPU runs draw blobs, not objects.")
    needs = ("Its generator is small on purpose (gen_width 16, z_dim 32; the paper's is wider): with the wider "
             "one (gen_width 64, z_dim 128) two minutes on an idle 2-core CPU gave kNN 0.672 against 0.561 for "
             "random init on the built-in shapes (6,000 shapes, seed 0, 501 steps of batch 64: +0.111), and on "
             "1,024 shapes (batch 64, seed 0, random init 0.348) 0.412 after 256 steps; the small one 0.475 after "
             "the same 256 steps (0.471 after 128), cheaper steps besides, and in the 2-minute table on the idle CPU "
             "0.869 (+0.308, 920 steps). The rotation term carries much of it: without the real/fake terms "
             "(gan_weight 0) 0.657 after 256 steps. On cifar10-small it learns slowly: 0.412 against 0.387 for random "
             "init (+0.025, 835 steps) in the 3-minute table of 2026-12-06, short of +0.05; in a run planned for "
             "2,400 steps (batch 64, seed 0, one thread) kNN on val was 0.387 after 312 steps, passed +0.05 after "
             "about 1,560 (0.440) and reached 0.456 after 2,184. Its recipe on photographs, 8 minutes, gave 0.464 "
             "(+0.077, 3,675 steps) on an idle 2-core CPU; on a slower day 8 minutes make about half the steps, "
             "where the run above stood at 0.45.")
    photo_recipe = {"minutes": 8.0}
    photo_recipe_why = ("SSGAN's discriminator learns photographs slowly: on cifar10-small 3 minutes gave kNN +0.025 "
                        "over random init, 8 minutes on an idle 2-core CPU +0.077 (0.464 against 0.387, 3,675 "
                        "steps).")
    paper = "Chen et al., Self-Supervised GANs via Auxiliary Rotation Loss, CVPR 2019"
    family = "generative"
    backbone_kind = "any"
    preview_kind = "ssgan"
    Config = SSGANConfig
    reconstruct_captions = ("a real image", "noise z (the generator's input, fixed)", "what the generator draws")

    @classmethod
    def run_defaults(cls) -> dict:
        return {"optim": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64}}

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        d = backbone.feature_dim
        self.generator = Generator(cfg.z_dim, info.image_size, cfg.gen_width)
        self.gan_head = nn.Linear(d, 1)
        self.rot_head = nn.Linear(d, 4)
        self.pre = AugmentConfig(crop=False, jitter_p=0.0, gray_p=0.0, flip_p=0.5)

    def noise(self, b: int, g, device) -> torch.Tensor:
        return torch.randn(b, self.cfg.z_dim, generator=g, device=device)

    def make_batch(self, x, g, preview=False):
        """Inputs ``(real, fake, real rotated, fake rotated)``; targets ``(rotation of the real ones,
        rotation of the fake ones)`` (0..3: anticlockwise quarter turns, one random one per image).
        ``fake`` carries the generator's gradient in training."""
        real = augment(x, self.pre, g)
        z = self.noise(x.shape[0], g, x.device)
        fake = self.generator(z)
        r_real = rotation(real, g, all_four=False)
        r_fake = rotation(fake, g, all_four=False)
        meta = {"z": z, "real_labels": r_real.meta["labels"], "fake_labels": r_fake.meta["labels"]}
        return PretextBatch((real, fake, r_real.inputs, r_fake.inputs), (r_real.targets, r_fake.targets), meta)

    def _frozen_call(self, module: nn.Module, x: torch.Tensor, detach: bool) -> torch.Tensor:
        """``module(x)`` with copies of its buffers (BatchNorm statistics stay untouched) and, if
        ``detach``, parameters that give no gradient."""
        state = {k: (p.detach() if detach else p) for k, p in module.named_parameters()}
        state.update({k: b.clone() for k, b in module.named_buffers()})
        return torch.func.functional_call(module, state, (x,))

    def training_step(self, x, labels, g):
        batch = self.make_batch(x, g)
        real, fake, real_rot, fake_rot = batch.inputs
        t_real, t_fake = batch.targets
        b = x.shape[0]
        c = self.cfg
        # discriminator: real (and rotated real) images update the BatchNorm statistics; fakes do not
        h_real, h_real_rot = self.backbone(torch.cat([real, real_rot])).split(b)
        h_fake = self._frozen_call(self.backbone, fake.detach(), detach=False)
        d_real, d_fake = self.gan_head(h_real).float().squeeze(1), self.gan_head(h_fake).float().squeeze(1)
        d_gan = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        rot_logits = self.rot_head(h_real_rot).float()
        d_rot = F.cross_entropy(rot_logits, t_real)
        # generator: through a detached discriminator
        hg, hg_rot = self._frozen_call(self.backbone, torch.cat([fake, fake_rot]), detach=True).split(b)
        g_gan = F.softplus(-self._frozen_call(self.gan_head, hg, detach=True).float().squeeze(1)).mean()
        g_rot_logits = self._frozen_call(self.rot_head, hg_rot, detach=True).float()
        g_rot = F.cross_entropy(g_rot_logits, t_fake)
        loss = c.gan_weight * (d_gan + g_gan) + c.beta * d_rot + c.alpha * g_rot
        return StepOutput(loss, {"d_gan": d_gan.detach(), "g_gan": g_gan.detach(), "d_rot": d_rot.detach(),
                                 "g_rot": g_rot.detach(), "pretext_acc": (rot_logits.argmax(1) == t_real).float().mean(),
                                 "fake_rot_acc": (g_rot_logits.argmax(1) == t_fake).float().mean(),
                                 "d_real_prob": torch.sigmoid(d_real).mean().detach()})

    @torch.no_grad()
    def samples(self, n: int, g, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(noise ``(n, z_dim)``, generated images ``(n, 3, H, W)``) in the generator's current mode."""
        z = self.noise(n, g, device)
        return z, self.generator(z).float()

    @torch.no_grad()
    def reconstruct(self, x, g):
        """Generator samples from noise drawn with ``g`` (the session passes the same seed every
        epoch, so the inspector shows the same noise drawn better and better)."""
        z, fake = self.samples(x.shape[0], g, x.device)
        return noise_image(z, x.shape[-1]).to(fake.dtype), fake.clamp(0, 1)

    @torch.no_grad()
    def preview_rows(self, x, g):
        from engine.pretext.tiles import PreviewRow, PreviewTile, to_uint8

        batch = self.make_batch(x, g, preview=True)
        real, fake, real_rot, fake_rot = (to_uint8(t) for t in batch.inputs)
        rows = []
        for i in range(x.shape[0]):
            rows.append(PreviewRow(f"pair {i + 1}", [
                PreviewTile(real[i], "real image (label: real)"),
                PreviewTile(real_rot[i], f"real, rotated: rotation label {int(batch.targets[0][i])} "
                                         f"({batch.meta['real_labels'][i]})"),
                PreviewTile(fake[i], "generated (label: fake; an untrained generator in the preview)"),
                PreviewTile(fake_rot[i], f"generated, rotated: rotation label {int(batch.targets[1][i])} "
                                         f"({batch.meta['fake_labels'][i]})"),
            ]))
        return rows

