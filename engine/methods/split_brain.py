"""Split-brain autoencoder: one half predicts colour (ab) from lightness (L), the other L from ab.

Zhang, Isola, Efros. "Split-Brain Autoencoders: Unsupervised Learning by Cross-Channel
Prediction", CVPR 2017. The paper splits the network's channels into two disjoint sub-networks,
one per direction, and the representation is both halves together.

Here the workbench evaluates, exports and reloads one backbone of a registered architecture, so
the split is made on its output: the first half of the encoder's feature channels (computed from
the L split) predicts ab, the second half (computed from the ab split) predicts L; the layers
below are shared by both directions. The pooled representation holds both halves. Each direction
has its own small decoder and predicts at ``1/out_stride`` of the image size, by classification
over quantised values (the paper's choice: ab in the 313 in-gamut bins of colorization, L in
``l_bins`` bins) or by regression.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.augment import AugmentConfig, augment
from engine.methods.base import Method, StepOutput, rebalance_weights
from engine.methods.decoder import UpDecoder, feature_map, map_shape
from engine.params import param
from engine.pretext.color import AB_RANGE, ab_bins, decode_ab, lab_to_rgb, rgb_to_lab
from engine.pretext.corrupt import add_noise
from engine.pretext.split import AB_VIEW_L, split_brain, split_inputs


@dataclass
class SplitBrainConfig:
    mode: str = param("classification", "Predict distributions over quantised values (the paper) or regress "
                                        "the values", choices=("classification", "regression"))
    l_bins: int = param(50, "Lightness bins of the ab -> L direction (classification)", min=2, max=100)
    rebalance: float = param(0.0, "Class rebalancing of the L -> ab direction, as colorization's: weight rare "
                                  "colours up (the mix with a uniform prior; 0: off). Classification only",
                             min=0.0, max=1.0)
    out_stride: int = param(4, "The predictions are this many times smaller than the image", choices=(1, 2, 4))
    decoder_width: int = param(128, "Channels of each decoder's first layer (halved at each upsampling)", min=8,
                               max=2048)
    crop_scale_min: float = param(0.35, "Light random crops and flips first (smallest area; 1: none)", min=0.05,
                                  max=1.0)
    input_noise_grid: int = param(0, "Smooth colour blotches over the image before it is split (denoising's noise, "
                                     "drawn on an N x N grid): each half then predicts the other's clean channels, "
                                     "which no pixel's own noisy values give, so it has to find the object they "
                                     "belong to (built-in shapes, 644 steps: kNN 0.701 at 4, 0.742 at 4 with sigma "
                                     "0.45, against 0.519 without; random init 0.561); 0: off", min=0, max=64)
    input_noise: float = param(0.3, "Sigma of those blotches at the grid's points", min=0.0, max=1.0)


class SplitBrain(Method):
    name = "split_brain"
    title = "Split-brain autoencoder"
    summary = "Reconstruction: half the features predict colour from lightness, the other half lightness from colour."
    description = ("Learns what things are from two directions: shape and texture explain colour (as colorization), "
                   "colour layout explains lightness (shading, what is bright). Each half sees only its channels "
                   "while training and whole RGB images at evaluation (a train-eval gap); ab -> L is easy "
                   "from colour edges and teaches less than L -> ab; ambiguous colours still average to grey "
                   "without the classification loss.")
    needs = ("What it needs is colour that depends on the object, and time. On the built-in "
             "shapes, as colorization, it has nothing to learn: colour is drawn independently of the shape and "
             "lightness follows from the colour (2000 shapes, batch 128, seed 0: kNN 0.36 after 150 steps against "
             "0.445 for random init). Its deficit is not BatchNorm statistics fitted to grey and colour-only inputs: on "
             "6,000 shapes after 644 steps (its 2-minute table's length), main.py eval --refit-norm 20 gives 0.437 "
             "against 0.627 for random init, both refitted (0.500 and 0.556 untouched): its weights lose shape. On the shapes whose colours follow the shape (builtin:shapes?colours=typical; "
             "random init 0.595 there, colour carrying some of the class) it comes closer but stays below: 0.513, "
             "0.560 and 0.545 after 300, 600 and 1200 steps (about 6 minutes on a CPU), where colorization with "
             "class rebalancing reaches 0.705; half its features predict lightness from colour, and the shapes' "
             "lightness is drawn on its own. Colorization's class rebalancing on its colour half (rebalance 0.5) brings it "
             "closer, still below: 0.577, 0.577 and 0.567 against 0.535, 0.550 and 0.545 without it after 300, 600 "
             "and 1,200 steps of the same run (2026-12-06). On 6,000 of those shapes (random init 0.632) a whole run of 552 steps with rebalance 0.5 (batch 128, seed 0, one thread) gave 0.628, 0.645 and 0.653 after 184, 368 and 552: past random init by about 0.02, far from +0.15; with each shape also drawn at a typical lightness (not a built-in set) random init rose to 0.717 and split-brain stayed at 0.753-0.758 (2026-12-07). Nor does the paper's own split (a prototype, 2026-12-07: two half-width CNNs, one seeing only L and one only ab, at "
             "evaluation too): 0.577 and 0.582 after 184 and 368 steps against 0.664 for its own random init, where the shared "
             "encoder gave 0.628 and 0.645 (rebalance 0.5, 6,000 typical-colour shapes). Nor does batch 64 (more updates, which counting needed; whole 8-epoch runs, "
             "rebalance 0.5, 2026-12-07): 0.606, 0.612 and 0.636 after 2, 4 and 6 epochs, against 0.575, 0.610 "
             "and 0.621 at batch 128 (random init 0.632). What does lift it on the ordinary shapes is smooth colour "
             "blotches over the image before it is split (input_noise_grid 4, input_noise 0.3; denoising's noise), "
             "the targets left clean: a whole 14-epoch run (644 steps, batch 128, one thread, 2026-12-07) gave "
             "0.682, 0.692, 0.698 and 0.701 after 184, 368, 552 and 644 steps against 0.506, 0.516, 0.511 and "
             "0.519 for the defaults (random init 0.561): +0.140; on a grid of 2 at sigma 0.3 0.686, 0.719, 0.731 "
             "and 0.728, on a grid of 4 at sigma 0.45 0.667, 0.739, 0.746 and 0.742 (+0.18). With them as defaults "
             "the 2-minute table's command gave 0.692 (+0.132, 318 steps on a slow day, 2026-12-07), and on "
             "cifar10-small in 3 minutes 0.363 against 0.387 (-0.023, 515 steps) where the defaults give +0.037: the "
             "blotches help on the shapes, whose colour tells nothing, and hurt on photographs, whose colour does "
             "(milder ones too: sigma 0.15, whole 6-epoch runs on cifar10-small, one thread, 0.377, 0.403 and 0.410 "
             "after 156, 312 and 468 steps against 0.390, 0.415 and 0.419 for the defaults). "
             "So they stay off by default and are the shapes' recipe: 12 epochs with grid 4 and sigma 0.45 gave "
             "0.750 against 0.561 (+0.189, 552 steps, 193 s on an idle 2-core CPU; 8 epochs +0.152); on the "
             "typical-colours shapes the same recipe gives 0.734 against 0.632 (+0.103), more than anything "
             "else measured there. On photographs "
             "(cifar10-small) it learns, given time: 0.424 (+0.037, 554 steps) in the 3-minute table of 2026-12-06, short "
             "of +0.05; in a run planned for 2,400 steps (batch 128, seed 0, one thread) kNN on val passed +0.05 "
             "after about 940 steps (0.449) and reached 0.471 after 2,184. Its recipe on photographs, 8 minutes, "
             "gave 0.468 (+0.081, 2,638 steps) on an idle 2-core CPU; on a slower day 8 minutes make about half "
             "the steps, where the run above stood at 0.455-0.460."
             " In the 2-minute table on an idle 2-core CPU (6,000 shapes, seed 0): kNN 0.508 against 0.561 for "
             "random init (655 steps of batch 128).")
    recipe = {"method_options.input_noise_grid": 4, "method_options.input_noise": 0.45, "epochs": 12}
    recipe_why = ("On the built-in shapes colour is drawn apart from the shape; split-brain learns what they are "
                  "when its inputs carry smooth colour blotches that its clean targets do not: 12 epochs with them "
                  "gave kNN 0.750 against 0.561 untrained (552 steps, 193 s on a 2-core CPU).")
    photo_recipe = {"minutes": 8.0}
    photo_recipe_why = ("On photographs colour and lightness depend on the object, and split-brain needs time: on "
                        "cifar10-small 3 minutes gave kNN +0.037 over random init, 8 minutes on an idle 2-core CPU "
                        "+0.081 (0.468 against 0.387, 2,638 steps).")
    paper = "Zhang et al., Split-Brain Autoencoders: Unsupervised Learning by Cross-Channel Prediction, CVPR 2017"
    family = "reconstruction"
    backbone_kind = "any"
    preview_kind = "split_brain"
    Config = SplitBrainConfig
    reconstruct_captions = ("original", "the L split the encoder saw", "L from ab, ab from L: both predictions")

    @classmethod
    def run_defaults(cls) -> dict:
        return {"optim": {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 1e-4, "batch_size": 128}}

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        ch, side = map_shape(backbone, info.image_size)
        self.half = ch // 2
        self.register_buffer("bins", ab_bins().clone(), persistent=False)
        # running frequency of every ab bin (for rebalancing), kept in checkpoints of runs that rebalance (so
        # that runs written before the option resume)
        self.register_buffer("prior", torch.full((len(self.bins),), 1.0 / len(self.bins)),
                             persistent=cfg.rebalance > 0)
        classify = cfg.mode == "classification"
        self.target_size = max(1, info.image_size // cfg.out_stride)
        self.to_ab = UpDecoder(self.half, side, self.target_size, len(self.bins) if classify else 2, cfg.decoder_width)
        self.to_l = UpDecoder(ch - self.half, side, self.target_size, cfg.l_bins if classify else 1, cfg.decoder_width)
        self.aug = AugmentConfig(crop=cfg.crop_scale_min < 1.0, crop_scale_min=cfg.crop_scale_min, jitter_p=0.0,
                                 gray_p=0.0)

    def split(self, x):
        return split_brain(x, self.target_size, self.cfg.mode, self.bins, self.cfg.l_bins)

    def make_batch(self, x, g, preview=False):
        x = augment(x, self.aug, g)
        batch = self.split(x)  # the targets (and the preview's source) from the clean image
        if self.cfg.input_noise_grid > 0:
            noisy = add_noise(x, g, "gaussian", self.cfg.input_noise, self.cfg.input_noise_grid).inputs
            batch.inputs = split_inputs(rgb_to_lab(noisy))  # inputs only: the targets stay the clean image's
        return batch

    def predict(self, l_split, ab_split):
        """Raw outputs of both directions: (ab from the L split, L from the ab split)."""
        f_l = feature_map(self.backbone, l_split)
        f_ab = feature_map(self.backbone, ab_split)
        return self.to_ab(f_l[:, :self.half]).float(), self.to_l(f_ab[:, self.half:]).float()

    def training_step(self, x, labels, g):
        batch = self.make_batch(x, g)
        ab_out, l_out = self.predict(*batch.inputs)
        ab_t, l_t = batch.targets
        if self.cfg.mode == "regression":
            ab_loss = F.mse_loss(torch.tanh(ab_out), ab_t.float())
            l_loss = F.mse_loss(torch.sigmoid(l_out), l_t.float())
            return StepOutput(ab_loss + l_loss, {"ab_loss": ab_loss.detach(), "l_loss": l_loss.detach()})
        ab_ce = -(ab_t.float() * F.log_softmax(ab_out, 1)).sum(1)
        if self.cfg.rebalance > 0:
            ab_ce = ab_ce * rebalance_weights(self.prior, batch.meta["bins"], self.cfg.rebalance)
        ab_loss = ab_ce.mean()
        l_loss = F.cross_entropy(l_out, l_t)
        return StepOutput(ab_loss + l_loss, {"ab_loss": ab_loss.detach(), "l_loss": l_loss.detach(),
                                             "ab_acc": (ab_out.argmax(1) == batch.meta["bins"]).float().mean(),
                                             "l_acc": (l_out.argmax(1) == l_t).float().mean()})

    def predicted_lab(self, l_split, ab_split, size) -> torch.Tensor:
        ab_out, l_out = self.predict(l_split, ab_split)
        if self.cfg.mode == "regression":
            ab, lum = torch.tanh(ab_out) * AB_RANGE, torch.sigmoid(l_out) * 100
        else:
            ab = decode_ab(ab_out, self.bins)
            width = 100.0 / self.cfg.l_bins
            centres = (torch.arange(self.cfg.l_bins, device=l_out.device) + 0.5) * width
            lum = torch.einsum("bqhw,q->bhw", l_out.softmax(1), centres).unsqueeze(1)
        lab = torch.cat([lum, ab], 1)
        return F.interpolate(lab, size=size, mode="bilinear", align_corners=False)

    @torch.no_grad()
    def reconstruct(self, x, g):
        batch = self.split(x)
        return batch.inputs[0], lab_to_rgb(self.predicted_lab(*batch.inputs, x.shape[-2:]))

    @torch.no_grad()
    def preview_rows(self, x, g):
        from engine.pretext.tiles import PreviewRow, PreviewTile, to_uint8

        batch = self.make_batch(x, g, preview=True)
        lab = batch.meta["lab"]
        size = x.shape[-2:]
        src = to_uint8(lab_to_rgb(lab))
        l_split, ab_split = (to_uint8(t) for t in batch.inputs)
        flat = torch.full_like(lab[:, :1], AB_VIEW_L)
        if self.cfg.mode == "classification":
            q_ab = self.bins[batch.meta["bins"]].permute(0, 3, 1, 2)
            width = 100.0 / self.cfg.l_bins
            q_l = (batch.targets[1].unsqueeze(1).float() + 0.5) * width
            cap_ab, cap_l = f"target of the L half: ab in {len(self.bins)} bins", f"target of the ab half: L in {self.cfg.l_bins} bins"
        else:
            q_ab, q_l = batch.meta["ab"], batch.meta["L"]
            cap_ab, cap_l = "target of the L half: ab values", "target of the ab half: L values"
        q_ab = F.interpolate(q_ab, size=size, mode="nearest")
        q_l = F.interpolate(q_l, size=size, mode="nearest")
        t_ab = to_uint8(lab_to_rgb(torch.cat([flat, q_ab], 1)))
        t_l = to_uint8((q_l / 100).clamp(0, 1).expand(-1, 3, -1, -1))
        grid = self.cfg.input_noise_grid
        noisy = f" under colour blotches ({grid}x{grid} grid, sigma {self.cfg.input_noise:.2f})" if grid else ""
        clean = ", from the clean image" if grid else ""
        return [PreviewRow(f"image {i + 1}", [
            PreviewTile(src[i], "image (after crop and flip)"),
            PreviewTile(l_split[i], f"split 1: lightness L{noisy} (input of the first half)"),
            PreviewTile(t_ab[i], f"{cap_ab}{clean} (shown at L={AB_VIEW_L:g})"),
            PreviewTile(ab_split[i], f"split 2: colour ab at L={AB_VIEW_L:g}{noisy} (input of the second half)"),
            PreviewTile(t_l[i], cap_l + clean),
        ]) for i in range(x.shape[0])]

