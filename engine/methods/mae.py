"""Masked autoencoder: hide most ViT patches, reconstruct their pixels from the visible ones.

He, Chen, Xie, Li, Dollar, Girshick. "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from engine.augment import AugmentConfig, augment
from engine.methods.base import Method, StepOutput
from engine.models.backbones import Block, sincos_pos_embed
from engine.params import param
from engine.pretext import apply_patch_mask, patch_mask


@dataclass
class MAEConfig:
    mask_ratio: float = param(0.75, "Fraction of patches hidden from the encoder", min=0.0, max=0.95)
    decoder_dim: int = param(128, "Width of the (light) decoder", min=16, max=1024)
    decoder_depth: int = param(2, "Transformer blocks in the decoder", min=1, max=12)
    norm_pix_loss: bool = param(True, "Predict per-patch normalised pixels (the paper's better target)")
    norm_per_channel: bool = param(False, "Normalise each colour channel of a patch on its own (with "
                                   "norm_pix_loss): the target keeps a patch's layout and drops its colours")
    crop_scale_min: float = param(0.35, "Random crops (smallest area) before masking", min=0.05, max=1.0)


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    b, c, h, w = x.shape
    x = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(t: torch.Tensor, p: int, h: int, w: int) -> torch.Tensor:
    b = t.shape[0]
    x = t.view(b, h // p, w // p, p, p, 3).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, 3, h, w)


class MAE(Method):
    name = "mae"
    title = "MAE (masked autoencoder)"
    summary = "Masked image modelling: reconstruct the pixels of ~75% hidden ViT patches."
    description = ("Learns to model image content and layout from context; scales well with ViTs and "
                   "long training. Its features are not linearly separable early on (a low linear-probe "
                   "score; fine-tuning recovers it), and it needs a ViT and many epochs.")
    needs = ("Measured with its defaults on a CPU (seed 0, batch 128, built-in shapes of 2000 images, its random-init "
             "vit_mini 0.255 reading the class token, 0.265 the mean of the patch tokens): kNN 0.268 after 210 steps "
             "(+0.013; the mean of the patch tokens 0.240) and 0.308 after 600 steps (+0.053; about 4 minutes on an "
             "idle 2-core CPU at 150 steps a minute), so the class token is not what holds it back. At the "
             "same 210 steps: each colour channel of a patch normalised on its own as the target 0.248 (mean 0.262), "
             "mask ratio 0.5 with one decoder block at twice the learning rate 0.268, a lighter decoder (one block "
             "of width 64) 0.282, learning rate 5e-3 0.213, hues and greys turned at random in the input 0.215; "
             "earlier, 90 steps 0.240 and plain pixel targets 0.225. On cifar10-small "
             "0.298 against 0.306 after 3 minutes (470 steps), 0.282 (-0.024, 274 steps) in the 3-minute table of "
             "2026-12-06; in a run planned for 1,100 steps (batch 128, seed 0, one thread) kNN on val was 0.333 after "
             "156 steps, 0.292 after 312 and 0.314 after 780 (stopped there): far short of +0.05; nor do short runs "
             "that end there (whole runs of 3 epochs, one thread, kNN every epoch, 2026-12-07): batch 64 0.282, "
             "0.321, 0.312, learning rate 5e-4 0.294, 0.294, 0.307; mask ratio 0.6 with crops down to 15% 0.284, "
             "0.328, 0.349 at batch 64 (+0.043), but 0.277 with seed 1 (its untrained vit_mini 0.303), 0.326, 0.309, "
             "0.328 after 2, 4 and 6 epochs of a 6-epoch run, 0.273, 0.301, 0.318, 0.326 at batch 128 over 4: "
             "nothing beats random init on every seed there. What does is fewer, larger patches: on 8-pixel patches "
             "(vit_mini_patch8, 16 to an image, a quarter of the tokens and about 3 times the steps a second) "
             "whole 8-epoch runs with the defaults (one thread, 2026-12-07, kNN after 2, 4, 6 and 8 epochs) gave "
             "0.307, 0.326, 0.346, 0.342 against 0.289 for that ViT untrained (seed 0), 0.274, 0.300, 0.295, 0.309 "
             "against 0.273 (seed 1) and 0.309, 0.329, 0.340, 0.323 against 0.275 (seed 2); through the bench "
             "(bench/methods.py --recipe, two threads, idle) 0.342, +0.053 in 108 s of training. That is its recipe "
             "on photographs, short of the aim on two seeds of three. Against the default 4-pixel ViT's untrained "
             "0.306 it is +0.036 at best: the patches that learn fastest start lower. (On the built-in shapes "
             "8-pixel patches do not help: below.) Two minutes on a CPU are not enough for a ViT to "
             "learn shapes from pixels: train it far longer (hundreds of epochs in the paper) on a GPU "
             "(vit_tiny), or compare it by fine-tuning rather than kNN."
             " In the 2-minute table on an idle 2-core CPU (6,000 shapes, seed 0): kNN 0.385 against 0.278 (an "
             "untrained vit_mini) for random init (278 steps of batch 128). +0.107: it learns, short of +0.15; six "
             "minutes there give no more (0.378, +0.100 after 803 steps), so the Run view offers no recipe for it "
             "on a CPU. Side by side on those shapes (whole runs of 322 steps, one thread, kNN after 92, 184 and "
             "276): the defaults 0.346, 0.372, 0.352; a light decoder (one block of width 64, a third faster a "
             "step) 0.330, 0.377, 0.370; a floor of 0.01 under each patch's variance in the normalised target "
             "(flat background patches left small) 0.321, 0.319, 0.342; mask ratio 0.85 0.283, 0.292; crops no "
             "smaller than 80% 0.285; crops down to 15% and 25% 0.317, 0.390, 0.380 and 0.334, 0.387, 0.372: "
             "none near the 0.43 that +0.15 asks for. Nor (whole runs of 6 epochs, one thread, 2026-12-07, kNN after 2, 4 "
             "and 6 epochs against 0.309, 0.348 and 0.363 for the defaults): batch 64, 0.383, 0.367, 0.352 (it peaks "
             "early and wears away); 48-pixel images (144 patches) 0.323, 0.318, 0.306 against 0.277 for random init "
             "at that size; HOG targets of every patch instead of pixels (MaskFeat's, 9 orientations per colour "
             "channel; a prototype, not an option) 0.330, 0.331, 0.331; 16-pixel images (16 patches) 0.271-0.282 "
             "over 16 epochs against 0.272; mask ratio 0.6 0.333, 0.358, 0.361, and with it crops down to 20% 0.383, "
             "0.375, 0.367 (2026-12-07); learning rate 5e-4 0.362, 0.362, 0.347, one decoder block 0.308, 0.350, 0.357, "
             "patches of 8 pixels (16 to an image) 0.249, 0.270, 0.257 against 0.266 for random init with them "
             "(2026-12-07); smooth colour blotches over the whole image before it is masked, the targets clean "
             "(denoising's lesson, which lifts split-brain there; grid 4) 0.308 and 0.331 after 2 and 4 epochs at "
             "sigma 0.15, 0.236 after 2 at sigma 0.3; the best of these together, mask ratio 0.6 with crops down to "
             "15%, 0.349, 0.348 and 0.348 after 2, 4 and 6 epochs, and at batch 64 0.316, 0.329, 0.340 and 0.348 "
             "after 1 to 4 epochs (2026-12-07). Nor a deeper decoder, which the paper found to lift linear "
             "probing (the last blocks of the encoder then need not serve the reconstruction): six blocks, 0.318, 0.338, 0.327 after 2, 4 and 6 "
             "epochs, at half the steps a second (one thread, 2026-12-07). Nor is what it learns hidden in the middle of "
             "the encoder (as masked image models with a light decoder are reported to keep it): kNN on the class token "
             "after each of the six blocks of a whole 6-epoch run (mask ratio 0.6, crops down to 15%) 0.352, 0.355, 0.351, "
             "0.364, 0.363, 0.368, the mean of the patch tokens 0.309-0.324. Nor does hiding square blocks of patches "
             "instead of single ones (a prototype; whole 6-epoch runs, one thread, 2026-12-07, the defaults beside "
             "them 0.309, 0.348, 0.363 after 2, 4 and 6 epochs): blocks of 2 x 2 patches 0.378, 0.373, 0.371 (at "
             "batch 64 0.288, 0.353, 0.357), quarters of the image 0.369, 0.368, 0.380. Nor does the small CNN given "
             "its task (a "
             "prototype: inpainting's encoder and decoder "
             "with random patches hidden instead of one block, 12 epochs on the shapes): 4-pixel patches, 60% "
             "hidden, 0.554, and 8-pixel patches, 75% hidden, 0.549, against 0.561 for the CNN's random init; on "
             "cifar10-small 0.405 after 8-10 epochs (+0.018): dense convolutions fill scattered holes from their "
             "neighbours, a low-level task.")
    photo_recipe = {"backbone": "vit_mini_patch8", "epochs": 8}
    photo_recipe_short = True
    photo_recipe_why = ("On 8-pixel patches (vit_mini_patch8: a quarter of the tokens, 3x the steps) 8 epochs beat random "
                        "init on photographs: kNN 0.342 against 0.289 on cifar10-small (+0.053, 624 steps); seeds 1 "
                        "and 2 +0.037 and +0.048.")
    paper = "He et al., Masked Autoencoders Are Scalable Vision Learners, CVPR 2022"
    family = "reconstruction"
    backbone_kind = "vit"
    backbone_needs = ("forward_tokens", "patch", "grid", "num_patches")
    backbone_needs_why = "the workbench's own ViT (vit_mini, vit_tiny, vit_small: it encodes only the visible patches)"
    preview_kind = "mask"
    Config = MAEConfig

    @classmethod
    def run_defaults(cls) -> dict:
        return {"backbone": "auto", "optim": {"optimizer": "adamw", "lr": 1.5e-3, "weight_decay": 0.05,
                                              "batch_size": 128}}

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        d, dd = backbone.embed_dim, cfg.decoder_dim
        self.patch = backbone.patch
        self.decoder_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer("dec_pos", sincos_pos_embed(dd, backbone.grid).unsqueeze(0), persistent=False)
        self.decoder = nn.ModuleList([Block(dd, max(1, dd // 32)) for _ in range(cfg.decoder_depth)])
        self.decoder_norm = nn.LayerNorm(dd)
        self.decoder_pred = nn.Linear(dd, self.patch * self.patch * 3)
        self.aug = AugmentConfig(crop_scale_min=cfg.crop_scale_min, jitter_p=0.0, gray_p=0.0)

    def make_batch(self, x, g, preview=False, mask_ratio: float | None = None):
        x = augment(x, self.aug, g)
        ratio = self.cfg.mask_ratio if mask_ratio is None else mask_ratio
        m = patch_mask(x.shape[0], self.backbone.num_patches, ratio, g, device=x.device)
        m.meta.update({"images": x, "patch": self.patch, "grid": self.backbone.grid})
        m.meta["masked_images"] = apply_patch_mask(x, m.targets, self.patch)
        return m

    def _forward(self, x, batch):
        ids_keep = batch.inputs
        ids_restore = batch.meta["ids_restore"]
        latent = self.backbone.forward_tokens(x, ids_keep)  # (B, 1+K, D)
        t = self.decoder_embed(latent)
        b, k1, dd = t.shape
        n = ids_restore.shape[1]
        fill = self.mask_token.expand(b, n - (k1 - 1), dd)
        seq = torch.cat([t[:, 1:], fill], dim=1)
        seq = torch.gather(seq, 1, ids_restore.unsqueeze(-1).expand(-1, -1, dd))
        seq = seq + self.dec_pos
        seq = torch.cat([t[:, :1], seq], dim=1)
        for blk in self.decoder:
            seq = blk(seq)
        return self.decoder_pred(self.decoder_norm(seq))[:, 1:]  # (B, L, p*p*3)

    def _patch_stats(self, x):
        """(patches (B, L, p*p*3), their mean, their std) with the statistics the normalised target uses:
        over the whole patch, or over each colour channel of it (``norm_per_channel``), broadcast to the patch."""
        target = patchify(x, self.patch)
        if not self.cfg.norm_per_channel:
            return target, target.mean(-1, keepdim=True), (target.var(-1, keepdim=True) + 1e-6).sqrt()
        per = target.view(*target.shape[:2], -1, 3)  # patchify puts the channel last
        mean = per.mean(2, keepdim=True).expand_as(per).reshape(target.shape)
        std = (per.var(2, keepdim=True) + 1e-6).sqrt().expand_as(per).reshape(target.shape)
        return target, mean, std

    def _target(self, x):
        if not self.cfg.norm_pix_loss:
            return patchify(x, self.patch)
        target, mean, std = self._patch_stats(x)
        return (target - mean) / std

    def training_step(self, x, labels, g):
        batch = self.make_batch(x, g)
        xa = batch.meta["images"]
        pred = self._forward(xa, batch)
        loss = ((pred.float() - self._target(xa)) ** 2).mean(-1)
        mask = batch.targets
        loss = (loss * mask).sum() / mask.sum().clamp(min=1)
        return StepOutput(loss, {})

    @torch.no_grad()
    def preview_rows(self, x, g):
        """Per image: the crop, the crop with its masked patches blanked, and what the encoder is given:
        only the visible patches, packed side by side (in reading order) as the short sequence it gets."""
        from engine.pretext.tiles import PreviewRow, PreviewTile, to_uint8

        batch = self.make_batch(x, g, preview=True)
        src = to_uint8(batch.meta["images"])
        masked = to_uint8(batch.meta["masked_images"])
        n, keep = self.backbone.num_patches, batch.meta["num_keep"]
        side = max(1, int(np.ceil(np.sqrt(keep))))
        packed = to_uint8(self._packed(batch.meta["images"], batch.inputs, side))
        rows = []
        for i in range(x.shape[0]):
            rows.append(PreviewRow(f"image {i + 1}", [
                PreviewTile(src[i], "input (after crop)", grid=self.backbone.grid),
                PreviewTile(masked[i], f"{n - keep} of {n} patches masked ({(n - keep) / n:.0%})",
                            grid=self.backbone.grid),
                PreviewTile(packed[i], f"the encoder sees only the {keep} visible patches", grid=side),
            ]))
        return rows

    def _packed(self, x, ids_keep, side: int):
        """The kept patches of each image in reading order, packed into a ``side`` x ``side`` grid (grey
        where the grid has more cells than patches): (B, 3, side * p, side * p)."""
        p = self.patch
        tokens = patchify(x, p)  # (B, L, p*p*3)
        kept = torch.gather(tokens, 1, ids_keep.sort(1).values.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        b, k, d = kept.shape
        fill = torch.full((b, side * side - k, d), 0.5, dtype=kept.dtype, device=kept.device)
        return unpatchify(torch.cat([kept, fill], 1), p, side * p, side * p)

    @torch.no_grad()
    def reconstruct(self, x, g):
        batch = self.make_batch(x, g)
        xa = batch.meta["images"]
        pred = self._forward(xa, batch).float()
        if self.cfg.norm_pix_loss:  # undo the per-patch normalisation with the true patch statistics
            _, mean, std = self._patch_stats(xa)
            pred = pred * std + mean
        recon = unpatchify(pred, self.patch, *xa.shape[-2:]).clamp(0, 1)
        m = batch.targets
        pm = apply_patch_mask(torch.zeros_like(xa), m, self.patch, fill=1.0)  # 1 on masked pixels
        blended = xa * (1 - pm) + recon * pm  # visible patches as given, masked ones predicted
        return batch.meta["masked_images"], blended
