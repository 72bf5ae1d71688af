"""Video colorization: colour a grey target frame by pointing to the matching pixels of a coloured
reference frame; the loss is on the target's colours.

Vondrick, Shrivastava, Fathi, Guadarrama, Murphy. "Tracking Emerges by Colorizing Videos",
ECCV 2018. Both frames go through the encoder in grey; every target pixel's embedding attends
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
    bin_size: float = param(10.0, "Size of the ab colour bins the loss is measured over", min=4.0, max=40.0)


class VideoColorization(Method):
    name = "video_colorization"
    title = "Video colorization (colour by pointing)"
    summary = "Video: colour a grey frame by pointing to the matching pixels of a coloured reference frame."
    description = ("Learns to find the same object point in two frames (correspondence, tracking) from grey "
                   "inputs, because colour is only copied, never invented. Trains on clips. Fails when colours "
                   "change between frames or when everything has the same colour (nothing to point at).")
    needs = ("On the built-in clips it has not been shown to reach random init + 0.10: two minutes on an idle "
             "2-core CPU give kNN 0.168 against 0.145 for random init (+0.023, 2,055 steps of batch 64). Before, "
             "two minutes on an idle "
             "2-core CPU with frames enlarged twice (411 steps of batch 64) gave kNN 0.155 against 0.145 for "
             "random init: the encoder learnt objects at twice the size kNN shows them, at four times the work "
             "per step (0.148 after 200 steps). At the frames' own size (upsample 1, the default) kNN is 0.180 "
             "after 200 steps and 0.188 "
             "after 400 (seed 0, 1,200 clips, batch 64, 400 test clips: +-0.02), and a step costs a quarter; "
             "temperature 0.05 or 0.5 gave 0.200 and 0.198 after 200 steps (within the noise). "
             "How much longer it needs to reach +0.10 is not measured.")
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

    def make_batch(self, x, g, preview=False):
        return reference_target(x, g, self.cfg.max_gap)

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
        return [PreviewRow(f"clip {i + 1}", [
            PreviewTile(ref[i], f"reference: frame {int(m['ref'][i]) + 1} (in colour)"),
            PreviewTile(grey[i], f"target: frame {int(m['tgt'][i]) + 1} (grey, what the encoder sees)"),
            PreviewTile(copied[i], "copied colours (pointer to the reference)"),
            PreviewTile(truth[i], "truth: the target's colours"),
        ]) for i in range(x.shape[0])]
