"""Video colorization: colour a grey target frame by pointing to the matching pixels of a coloured
reference frame; the loss is on the target's colours.

Vondrick, Shrivastava, Fathi, Guadarrama, Murphy. "Tracking Emerges by Colorizing Videos",
ECCV 2018. The target frame goes through the encoder in grey, the reference in colour with its colours
jittered (the paper shows both grey; here the encoder then also sees colour frames, as at evaluation, and
must find the object by its shape: see ``needs``); every target pixel's embedding attends
over the reference pixels' embeddings (softmax of their similarities), and its predicted colour
is the attention-weighted mix of the reference colours (quantised ab bins, soft-encoded). The
pointer can only copy colours, so to colour well the embedding has to find the same object
point in the other frame: tracking emerges.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.augment import AugmentConfig, augment
from engine.methods.base import Method, StepOutput
from engine.methods.decoder import feature_map, map_shape
from engine.params import param
from engine.pretext.color import ab_bins, encode_ab, lab_to_rgb
from engine.pretext.temporal import reference_target


@dataclass
class VideoColorizationConfig:
    embed_dim: int = param(64, "Width of the per-pixel embedding the pointer compares (the paper: 64)", min=4,
                           max=1024)
    temperature: float = param(0.1, "Softmax temperature of the pointer over the reference pixels (on cosine "
                                    "similarities)", min=0.01, max=2.0)
    upsample: int = param(1, "Frames are enlarged this many times before the encoder, for a finer map of "
                             "pixels to point at (2: four times the work per step, and the encoder learns "
                             "objects at twice the size it is evaluated at)", choices=(1, 2))
    max_gap: int = param(3, "Largest number of frames between the reference and the target", min=1, max=64)
    object_weight: float = param(4.0, "Clips that know their moving object (built-in clips): how much more a "
                                      "pixel on the object counts in the loss than a background pixel (1: all "
                                      "pixels the same; most pixels are background)", min=1.0, max=100.0)
    reference_colour: bool = param(True, "Show the encoder the reference frame in colour (the target stays "
                                         "grey, so colour cannot be matched to colour): the encoder then also "
                                         "sees colour frames, as at evaluation (off: both grey, the paper)",
                                     legacy=False)
    reference_jitter_p: float = param(0.8, "With the reference in colour: probability of jittering its colours "
                                           "(and of showing it grey, a quarter of that) in the encoder's input; "
                                           "the colours copied stay the true ones", min=0.0, max=1.0,
                                      legacy=0.0)
    bin_size: float = param(10.0, "Size of the ab colour bins the loss is measured over", min=4.0, max=40.0)


class VideoColorization(Method):
    name = "video_colorization"
    title = "Video colorization (colour by pointing)"
    summary = "Video: colour a grey frame by pointing to the matching pixels of a coloured reference frame."
    description = ("Learns to find the same object point in two frames (correspondence, tracking): the target "
                   "frame is grey and its colours can only be copied from the reference, never invented. Trains "
                   "on clips. Fails when colours change between frames or when everything has the same colour "
                   "(nothing to point at).")
    needs = ("The paper shows the encoder both frames grey. On the built-in clips that learnt little: two minutes "
             "on an idle 2-core CPU gave kNN 0.168 against 0.145 for random init (+0.023, 2,055 steps of batch "
             "64), and longer did not help (seed 0, the default 1,200 clips, kNN on the 400 test clips: 0.160, "
             "0.172, 0.170, 0.162 and 0.170 after 360, 720, 1,080, 1,440 and 1,602 steps). The encoder is "
             "evaluated on colour frames it never saw while training, and grey pixels match grey pixels by their "
             "brightness alone. Showing it the reference in colour (the target stays grey, so colour cannot be "
             "matched to colour; reference_colour) gave 0.273, 0.275, 0.233, 0.243 and 0.248 at the same steps; "
             "jittering the reference's colours as well (reference_jitter_p 0.8, a fifth of them grey; the colours "
             "copied stay the true ones), so that the pointer has to find the object by its shape, 0.252, 0.308, "
             "0.285 and 0.265 at the same steps, 0.278 after 1,800 and 0.273 after 2,016 (+0.128). Both are the defaults now: two "
             "minutes on an idle 2-core CPU give kNN 0.270 against 0.145 (+0.125, 1,900 steps). Larger gaps "
             "between the frames (max_gap 7: 0.205 after 1,800 steps), a lower learning rate (3e-4: 0.200) or "
             "every pixel weighted the same (object_weight 1: 0.215) did worse. Before, frames enlarged twice "
             "(upsample 2) cost four times the work per step and the encoder learnt objects at twice the size kNN "
             "shows them (0.155 after two minutes, 411 steps).")
    paper = "Vondrick et al., Tracking Emerges by Colorizing Videos, ECCV 2018"
    family = "video"
    backbone_kind = "any"
    preview_kind = "video_color"
    input_kind = "clips"
    Config = VideoColorizationConfig

    @classmethod
    def run_defaults(cls) -> dict:
        return {"optim": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 64}}

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        ch, self.side = map_shape(backbone, info.image_size * cfg.upsample)
        self.embed = nn.Conv2d(ch, cfg.embed_dim, 1)
        self.register_buffer("bins", ab_bins(float(cfg.bin_size)).clone(), persistent=False)
        self.ref_aug = AugmentConfig(crop=False, flip_p=0.0, jitter_p=cfg.reference_jitter_p,
                                     gray_p=cfg.reference_jitter_p / 4)

    def make_batch(self, x, g, preview=False):
        batch = reference_target(x, g, self.cfg.max_gap)
        if self.cfg.reference_colour:
            ref = batch.meta["ref_rgb"]
            if self.cfg.reference_jitter_p > 0:
                ref = augment(ref, self.ref_aug, g)
            batch.inputs = (ref, batch.inputs[1])
        return batch

    def embed_frames(self, grey: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) grey frames -> L2-normalised pixel embeddings (B, h*w, D)."""
        if self.cfg.upsample > 1:
            grey = F.interpolate(grey, scale_factor=self.cfg.upsample, mode="bilinear", align_corners=False)
        e = self.embed(feature_map(self.backbone, grey)).float()
        return F.normalize(e.flatten(2).transpose(1, 2), dim=2)

    def pointer(self, batch) -> tuple[torch.Tensor, int]:
        """Attention ``(B, n_target, n_reference)`` of every target pixel over the reference pixels."""
        ref_grey, tgt_grey = batch.inputs
        e = self.embed_frames(torch.cat([ref_grey, tgt_grey]))
        er, et = e.chunk(2)
        side = int(round(er.shape[1] ** 0.5))
        return torch.softmax(et @ er.transpose(1, 2) / self.cfg.temperature, dim=2), side

    def colours(self, lab: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(ab pooled to the map (B, side*side, 2), soft bin targets (B, side*side, Q))."""
        ab = F.adaptive_avg_pool2d(lab[:, 1:], side)
        soft, _ = encode_ab(ab, self.bins)
        return ab.flatten(2).transpose(1, 2), soft.flatten(2).transpose(1, 2)

    def training_step(self, x, labels, g):
        batch = self.make_batch(x, g)
        attn, side = self.pointer(batch)
        lab_r, lab_t = batch.targets
        _, soft_r = self.colours(lab_r, side)
        _, soft_t = self.colours(lab_t, side)
        pred = attn @ soft_r  # (B, n_t, Q): the copied colour distribution
        ce = -(soft_t * pred.clamp(min=1e-8).log()).sum(2)  # (B, n_t)
        mask = batch.meta.get("tgt_mask")
        if mask is not None and self.cfg.object_weight != 1.0:
            on = F.adaptive_avg_pool2d(mask[:, None].float(), side).flatten(1)  # object share of each map cell
            w = 1 + (self.cfg.object_weight - 1) * on
            loss = (ce * w).sum() / w.sum()
        else:
            loss = ce.mean()
        acc = (pred.argmax(2) == soft_t.argmax(2)).float().mean()
        return StepOutput(loss, {"pretext_acc": acc})

    @torch.no_grad()
    def copied_colours(self, batch) -> torch.Tensor:
        """The target frame coloured by the pointer: its own L with the copied ab (B, 3, H, W) in [0, 1]."""
        attn, side = self.pointer(batch)
        lab_r, lab_t = batch.targets
        ab_r, _ = self.colours(lab_r, side)
        ab = (attn @ ab_r).transpose(1, 2).reshape(-1, 2, side, side)
        ab = F.interpolate(ab, size=lab_t.shape[-2:], mode="bilinear", align_corners=False)
        return lab_to_rgb(torch.cat([lab_t[:, :1], ab], 1))

    @torch.no_grad()
    def preview_rows(self, x, g):
        from engine.pretext.tiles import PreviewRow, PreviewTile, to_uint8

        batch = self.make_batch(x, g, preview=True)
        m = batch.meta
        ref, truth = to_uint8(m["ref_rgb"]), to_uint8(m["tgt_rgb"])
        grey = to_uint8(batch.inputs[1])
        copied = to_uint8(self.copied_colours(batch))
        seen = to_uint8(batch.inputs[0])
        if not self.cfg.reference_colour:
            seen_cap = "the reference as the encoder sees it (grey)"
        elif self.cfg.reference_jitter_p > 0:
            seen_cap = "the reference as the encoder sees it (colours jittered; the true ones are copied)"
        else:
            seen_cap = "the reference as the encoder sees it (in colour)"
        return [PreviewRow(f"clip {i + 1}", [
            PreviewTile(ref[i], f"reference: frame {int(m['ref'][i]) + 1} (its colours are copied)"),
            PreviewTile(seen[i], seen_cap),
            PreviewTile(grey[i], f"target: frame {int(m['tgt'][i]) + 1} (grey, what the encoder sees)"),
            PreviewTile(copied[i], "copied colours (pointer to the reference)"),
            PreviewTile(truth[i], "truth: the target's colours"),
        ]) for i in range(x.shape[0])]
