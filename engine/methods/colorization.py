"""Colorization: predict the colour (ab) of an image from its lightness (L).

Zhang, Isola, Efros. "Colorful Image Colorization", ECCV 2016. The encoder is the L branch: it
sees L replicated to three grey channels (so the same encoder takes RGB images at evaluation,
where it meets colour it never saw: a small train-eval gap). The decoder predicts ab at half the
image resolution, as a distribution over quantised in-gamut ab bins (soft-encoded targets, the
paper's classification, optionally class-rebalanced) or by regression.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.methods.base import StepOutput, rebalance_weights
from engine.methods.decoder import ReconstructionMethod, ReconstructionOptions
from engine.params import param
from engine.pretext.color import (
    AB_RANGE,
    ab_bins,
    colorization,
    decode_ab,
    lab_to_rgb,
    lightness_image,
    rgb_to_lab,
)


@dataclass
class ColorizationConfig(ReconstructionOptions):
    bottleneck: str = param("spatial", "What the decoder paints from: the encoder's spatial map (the default here: "
                                       "kNN 0.39 against 0.33 pooled after a short CPU run) or the pooled feature vector (the very features that are "
                                       "evaluated; a strong bottleneck)", choices=("pooled", "spatial"))
    mode: str = param("classification", "Predict a distribution over quantised ab bins (the paper: vivid "
                                        "colours) or regress ab (greyish averages)",
                      choices=("classification", "regression"))
    rebalance: float = param(0.0, "Class rebalancing: weight rare colours up (the paper's lambda mix with a "
                                  "uniform prior is 0.5; 0: off). Classification only", min=0.0, max=1.0)
    out_stride: int = param(4, "The ab prediction is this many times smaller than the image", choices=(1, 2, 4))


class Colorization(ReconstructionMethod):
    name = "colorization"
    title = "Colorization"
    summary = "Reconstruction: predict an image's colours (ab) from its lightness (L)."
    description = ("Learns what things are from their shape and texture, because colour depends on it (sky is "
                   "blue, grass green). Fails where colour is ambiguous (cars, clothes): the pixel-wise average "
                   "is grey, hence classification over colour bins. The encoder never sees colour while "
                   "training, and grey inputs differ from the RGB images it is evaluated on.")
    needs = ("What it needs is colour that depends on the object, and time. On the built-in shapes it has nothing "
             "to learn: their colours are drawn independently of the shapes and a pixel's lightness already tells "
             "much of its colour (the preview's low-level shortcut), so its features fall below random init "
             "(2000 shapes, batch 128, seed 0: kNN 0.38 after 150 and 0.385 after 300 steps against 0.445; "
             "regression 0.38, the pooled bottleneck 0.32, colour hints shown to the encoder 0.26, hues turned at "
             "random in the input 0.36, class rebalancing 0.5 0.355 at 300 steps; smooth colour blotches over the "
             "image before its lightness is taken, the targets clean (what lifts split-brain there; grid 4, sigma "
             "0.45, a whole 8-epoch run of 6,000 shapes, 2026-12-07) 0.456, 0.469 and 0.455 after 92, 184 and 276 "
             "steps against 0.561: its colour half alone has no object to find). On the shapes whose colours "
             "follow the shape (builtin:shapes?colours=typical; random init scores 0.595 there, colour carrying "
             "some of the class) it learns: 0.570 after 300 steps and 0.645 after 600 with its defaults, and with "
             "the paper's class rebalancing 0.5, which weights the rarer shape colours up against the background, "
             "0.640 after 300, 0.690 after 600 (+0.095) and 0.705 after 1200 steps (+0.110); the pooled "
             "bottleneck 0.540 at 300. Two minutes on a CPU (about 700 steps) give about +0.1 there, and the "
             "recipe (those shapes, rebalancing 0.5) +0.11 after 1200 steps of 2000 shapes; the recipe itself, 4 "
             "minutes on the default 6,000 of those shapes on an idle 2-core CPU: kNN 0.799 against 0.632 for random "
             "init (+0.167, 1,948 steps). On photographs "
             "(cifar10-small) kNN 0.423 against 0.387 after 3 minutes (1083 steps) on 2026-11-23 and 0.415 "
             "(+0.028, 926 steps) in the 3-minute table of 2026-12-06, short of +0.05; there photographs carry "
             "colour that depends on the object and it only needs time: in a run planned for 2,800 steps (batch "
             "128, seed 0, one thread) kNN on val passed +0.05 after about 1,250 steps (0.450) and reached 0.489 "
             "after 2,028. Its recipe on photographs, 6 minutes, gave 0.492 (+0.105, 3,319 steps) on an idle 2-core "
             "CPU; on a slower day 6 minutes make about half the steps, where the run above stood at 0.466."
             " In the 2-minute table on an idle 2-core CPU (6,000 shapes, seed 0): kNN 0.472 against 0.561 for "
             "random init (1088 steps of batch 128).")
    recipe = {"data.spec": "builtin:shapes?colours=typical", "method_options.rebalance": 0.5, "minutes": 4.0}
    recipe_why = ("Colorization learns where colour depends on the object: on the shapes whose colours follow the "
                  "shape, with class rebalancing, 4 minutes on an idle 2-core CPU gave kNN 0.799 against 0.632 "
                  "for random init (1,948 steps).")
    photo_recipe = {"minutes": 6.0}
    photo_recipe_why = ("On photographs colour depends on the object, and colorization needs time: on cifar10-small "
                        "3 minutes gave kNN +0.028 over random init, 6 minutes on an idle 2-core CPU +0.105 (0.492 "
                        "against 0.387, 3,319 steps).")
    paper = "Zhang et al., Colorful Image Colorization, ECCV 2016"
    preview_kind = "color"
    Config = ColorizationConfig

    def __init__(self, cfg, backbone, info):
        self.out_channels = 2 if cfg.mode == "regression" else len(ab_bins())
        super().__init__(cfg, backbone, info)
        self.register_buffer("bins", ab_bins().clone(), persistent=False)
        # running frequency of every ab bin (for rebalancing), kept in checkpoints
        self.register_buffer("prior", torch.full((len(self.bins),), 1.0 / len(self.bins)))

    def decoder_size(self, image_size):
        return max(1, image_size // self.cfg.out_stride)

    def corrupt(self, x, g):
        return colorization(x, self.decoder_size(x.shape[-1]), self.cfg.mode, self.bins)

    def training_step(self, x, labels, g):
        batch = self.make_batch(x, g)
        out = self.decode(batch.inputs).float()
        if self.cfg.mode == "regression":
            loss = F.mse_loss(torch.tanh(out), batch.targets.float())
            return StepOutput(loss, {})
        soft = batch.targets.float()
        ce = -(soft * F.log_softmax(out, dim=1)).sum(1)  # (B, h, w)
        hard = batch.meta["bins"]
        if self.cfg.rebalance > 0:
            ce = ce * rebalance_weights(self.prior, hard, self.cfg.rebalance)
        acc = (out.argmax(1) == hard).float().mean()
        return StepOutput(ce.mean(), {"pretext_acc": acc})

    def predict_ab(self, inputs):
        out = self.decode(inputs).float()
        if self.cfg.mode == "regression":
            return torch.tanh(out) * AB_RANGE
        return decode_ab(out, self.bins)

    @torch.no_grad()
    def reconstruct(self, x, g):
        lab = rgb_to_lab(x)
        inputs = lightness_image(lab)
        ab = F.interpolate(self.predict_ab(inputs), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return inputs, lab_to_rgb(torch.cat([lab[:, :1], ab], 1))

    @torch.no_grad()
    def preview_rows(self, x, g):
        from engine.pretext.tiles import PreviewRow, PreviewTile, to_uint8

        batch = self.make_batch(x, g, preview=True)
        lab = batch.meta["lab"]
        size = x.shape[-2:]
        src = to_uint8(lab_to_rgb(lab))
        light = to_uint8(batch.inputs)
        flat_l = torch.full_like(lab[:, :1], 65.0)
        ab_only = to_uint8(lab_to_rgb(torch.cat([flat_l, lab[:, 1:]], 1)))
        if self.cfg.mode == "classification":
            q = self.bins[batch.meta["bins"]].permute(0, 3, 1, 2)  # the bin centres the targets name
            target_cap = f"target: ab in {len(self.bins)} bins (shown at L=65)"
        else:
            q = batch.meta["ab"]
            target_cap = "target: ab values (shown at L=65)"
        q = F.interpolate(q, size=size, mode="nearest")
        tgt = to_uint8(lab_to_rgb(torch.cat([flat_l, q], 1)))
        lookup, err = lightness_lookup(lab)
        shortcut = to_uint8(lab_to_rgb(torch.cat([lab[:, :1], lookup], 1)))
        return [PreviewRow(f"image {i + 1}", [
            PreviewTile(src[i], "image (after crop and flip)"),
            PreviewTile(light[i], "encoder input: lightness L"),
            PreviewTile(ab_only[i], "colour ab alone (at L=65)"),
            PreviewTile(tgt[i], target_cap),
            PreviewTile(shortcut[i], f"low-level shortcut: colour from each pixel's lightness alone (these images' "
                                     f"average ab per lightness; off by {float(err[i]):.0f} ab units on average). "
                                     "What it already paints, the task does not teach"),
        ]) for i in range(x.shape[0])]


def lightness_lookup(lab: torch.Tensor, bins: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """The colour low-level statistics give: every pixel painted with the mean ab of the batch's pixels of
    the same lightness (``bins`` levels of L). Returns (ab ``(B, 2, H, W)``, the mean ab error per image)."""
    lum, ab = lab[:, 0], lab[:, 1:]
    idx = (lum / 100 * bins).long().clamp(0, bins - 1)  # (B, H, W)
    flat = idx.flatten()
    counts = torch.zeros(bins, device=lab.device).index_add_(0, flat, torch.ones_like(flat, dtype=torch.float))
    sums = torch.zeros(bins, 2, device=lab.device).index_add_(0, flat, ab.permute(0, 2, 3, 1).reshape(-1, 2))
    means = sums / counts.clamp(min=1).unsqueeze(1)
    painted = means[idx].permute(0, 3, 1, 2)
    return painted, (painted - ab).norm(dim=1).mean(dim=(1, 2))
