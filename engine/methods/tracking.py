"""Tracking as supervision: a patch and the same object tracked a few frames later are a positive
pair, a patch from another clip is the negative; a triplet loss on cosine distances.

Wang and Gupta. "Unsupervised Learning of Visual Representations using Videos", ICCV 2015. On
clips that carry their object's position (the built-in clips) the track is known; on user clips
it is found by block matching between consecutive frames, from the patch that moves most.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.augment import AugmentConfig, augment
from engine.methods.base import Method, StepOutput
from engine.models.heads import projection_head
from engine.params import param
from engine.pretext.temporal import tracked_pairs


@dataclass
class TrackingConfig:
    patch_fraction: float = param(1.0, "Side of the tracked patch, as a fraction of the frame (1: the whole frame, "
                                       "followed over up to max_gap frames; smaller: the patch around the moving "
                                       "object, the paper's setting on large frames)", min=0.2, max=1.0)
    max_gap: int = param(4, "Largest number of frames between the patch and its tracked version", min=1, max=64)
    track: str = param("auto", "Where the tracked patch comes from: the clip's known track where it has one "
                               "(built-in clips), else block matching (auto); always block matching; or "
                               "only the known track", choices=("auto", "block_matching", "known"))
    search_radius: int = param(3, "Block matching: largest shift searched between two frames (pixels)", min=1,
                               max=32)
    margin: float = param(0.5, "Triplet margin M: D(query, tracked) + M < D(query, negative), D = 1 - cosine",
                          min=0.0, max=2.0)
    negatives: str = param("hardest", "The negative of each query: the most similar patch of another clip in "
                                      "the batch (the paper's hard negatives), a random one, or all of them at "
                                      "once (a softmax over the batch, temperature 0.1)",
                           choices=("hardest", "random", "all"))
    jitter: float = param(0.8, "Probability of an independent colour jitter on each patch (0: the paper's raw "
                               "patches; colour then tells clips apart)", min=0.0, max=1.0)
    crop: float = param(0.5, "Smallest random crop of each patch, as a fraction of its area (1: no crop); "
                             "with flips, so a patch pair is matched by what the object is, not by where it "
                             "sits in the patch", min=0.05, max=1.0)
    proj_hidden: int = param(512, "Hidden width of the embedding head", min=8, max=16384)
    proj_dim: int = param(128, "Width of the embedding the distances are measured in", min=2, max=16384)


class Tracking(Method):
    name = "tracking"
    title = "Tracking (Wang and Gupta)"
    summary = "Video: a patch and the same object tracked frames later lie close, another clip's patch far."
    description = ("Learns features that stay the same while an object moves, turns and changes lighting over a "
                   "few frames: viewpoint and pose invariance from real motion instead of augmentations. "
                   "Trains on clips. Fails when the tracker drifts (fast motion, little texture) and when the "
                   "background alone tells clips apart.")
    needs = ("On the built-in 32-pixel clips the tracked patch must cover the frame: kNN looks at whole frames, "
             "and features of a 19-pixel patch around the object do not carry to them. Measured at 900 steps of "
             "batch 32 on 480 clips (seed 0, about 35 s on a 2-core CPU): patch 0.6 of the frame kNN 0.172, 0.8 "
             "0.255, 0.9 0.295, the whole frame (the default) 0.325, against about 0.175 for the random-init "
             "encoder; a softmax over every other clip (negatives 'all') 0.303 with whole frames.")
    paper = "Wang and Gupta, Unsupervised Learning of Visual Representations using Videos, ICCV 2015"
    family = "video"
    backbone_kind = "any"
    preview_kind = "tracking"
    input_kind = "clips"
    Config = TrackingConfig

    @classmethod
    def run_defaults(cls) -> dict:
        return {"optim": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 128}}

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        self.projector = projection_head(backbone.feature_dim, cfg.proj_hidden, cfg.proj_dim)
        self.jitter = AugmentConfig(crop=cfg.crop < 1.0, crop_scale_min=min(cfg.crop, 1.0), flip_p=0.5 if cfg.crop < 1.0 else 0.0,
                                    jitter_p=cfg.jitter, gray_p=0.2 if cfg.jitter > 0 else 0.0)

    def make_batch(self, x, g, preview=False):
        batch = tracked_pairs(x, g, self.cfg.patch_fraction, self.cfg.max_gap, self.cfg.track,
                              self.cfg.search_radius)
        if self.cfg.jitter > 0 or self.cfg.crop < 1.0:
            q, t = batch.inputs
            batch.inputs = (augment(q, self.jitter, g), augment(t, self.jitter, g))
        return batch

    def training_step(self, x, labels, g):
        q, t = self.make_batch(x, g).inputs
        z = F.normalize(self.projector(self.backbone(torch.cat([q, t]))).float(), dim=1)
        zq, zt = z.chunk(2)
        # the negatives: the tracked patches of the other clips of the global batch
        loss, parts = self.losses.triplet_loss(zq, zt, self.cfg.margin, {"hardest": True, "random": False}.get(self.cfg.negatives, "all"))
        return StepOutput(loss, parts)

    @torch.no_grad()
    def preview_rows(self, x, g):
        from engine.pretext.tiles import PreviewRow, PreviewTile, to_uint8

        batch = self.make_batch(x, g, preview=True)
        q, t = (to_uint8(v) for v in batch.inputs)
        m = batch.meta
        rgb = x[:, :, :3]
        h, w = rgb.shape[-2:]
        half = m["size"] / 2
        n = x.shape[0]

        def box(c, color, label):
            x0, y0 = max(0.0, float(c[0]) + 0.5 - half), max(0.0, float(c[1]) + 0.5 - half)
            x1, y1 = min(float(w), float(c[0]) + 0.5 + half), min(float(h), float(c[1]) + 0.5 + half)
            return (x0, y0, x1, y1, color, label)

        rows = []
        for i in range(n):
            s, e = int(m["start"][i]), int(m["end"][i])
            f0 = to_uint8(rgb[i, s][None])[0]
            f1 = to_uint8(rgb[i, e][None])[0]
            j = (i + 1) % n
            rows.append(PreviewRow(f"clip {i + 1}: track {m['track']}", [
                PreviewTile(f0, f"frame {s + 1}: the patch", boxes=[box(m["c0"][i], "#ff4040", "query")]),
                PreviewTile(f1, f"frame {e + 1}: tracked", boxes=[box(m["c1"][i], "#40ff80", "tracked")]),
                PreviewTile(q[i], "query patch"),
                PreviewTile(t[i], "positive: tracked patch"),
                PreviewTile(t[j], f"negative: clip {j + 1}'s patch" if n > 1 else "negative: another clip"),
            ]))
        return rows
