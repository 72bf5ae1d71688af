"""Jigsaw puzzles: shuffle 3x3 tiles, classify which permutation of a fixed set was applied.

Noroozi, Favaro. "Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles",
ECCV 2016. A siamese encoder embeds each tile; the concatenated embeddings predict the
permutation index.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.methods.base import Method, StepOutput
from engine.models.heads import mlp
from engine.params import param
from engine.pretext import jigsaw, jigsaw_permutations
from engine.pretext.base import resize_square


@dataclass
class JigsawConfig:
    permutations: int = param(100, "Size of the permutation set (classes), chosen for maximal Hamming "
                                   "distance", min=2, max=1000)
    cell: int = param(16, "Pixels per grid cell (the image is resized to 3 cells a side)", min=4, max=128)
    gap: float = param(0.15, "Part of each cell cut away (random gap and jitter between tiles)", min=0.0,
                       max=0.6)
    tile_norm: bool = param(False, "Normalise each tile on its own: blocks brightness and colour matching across "
                                   "tiles, but the encoder then never sees an image's own contrast and brightness, "
                                   "which it meets at evaluation (off by default: kNN 0.417 against 0.379 with it on "
                                   "cifar10-small after 312 steps, 0.336 against 0.326 after 936, 0.565 against 0.515 "
                                   "on the built-in shapes after 150)")
    gray_p: float = param(0.0, "Probability of turning a puzzle grey (against chromatic aberration: lenses shift "
                               "the colour channels towards the image border, which tells where a tile came from)",
                          min=0.0, max=1.0)
    head_hidden: int = param(512, "Hidden width of the permutation classifier", min=8, max=8192)


class Jigsaw(Method):
    name = "jigsaw"
    title = "Jigsaw puzzles"
    summary = "Transformation prediction: put 3x3 shuffled tiles back in order (classify the permutation)."
    description = ("Learns parts and their spatial arrangement. Shortcuts (matching tile edges, chromatic "
                   "aberration) must be blocked with gaps and jitter (and, as switches, grey puzzles and per-tile "
                   "normalisation, which also hides from the encoder the contrast it meets at evaluation); "
                   "features are learned on small tiles, so there is a gap between the pretext and full images.")
    needs = ("Measured side by side on a CPU (seed 0, batch 128): on cifar10-small every tile normalised on its "
             "own (the earlier default) kept the encoder from ever seeing an image's contrast and brightness: "
             "0.382, 0.379 and 0.326 after 156, 312 and 936 steps against 0.387 for random init; raw tiles "
             "(tile_norm off, now the default) reach 0.397, 0.417 and 0.336. So on 32-pixel photographs it peaks "
             "after about 300 steps (4 epochs, +0.03) and then drifts below random init as the puzzle gets solved "
             "from low-level cues (98% of 100 permutations after 936 steps); a run of 4 epochs that ends there gives 0.417 "
             "too (+0.030). Larger images help (the paper: 225-pixel crops, 64-pixel tiles): at 64 pixels (tiles of "
             "21, cell 21; random init 0.375 at that size) a run of 6 epochs gave 0.412, 0.429 and 0.437 after "
             "156, 312 and 468 steps (+0.062), while a run planned for 936 steps stood at 0.396-0.415 from step "
             "468 to 780. That short run at 64 pixels is its recipe on photographs: in bench/methods.py --recipe on an idle "
             "2-core CPU 0.437 and, in a second run of the same, 0.428 (+0.062 and +0.053 over random init at 64 "
             "pixels; about 95 s of training), a small margin. Neither larger tiles (cell 32: 0.382), a "
             "larger gap (0.4: 0.374) nor grey puzzles (gray_p 0.3 with gap 0.4: 0.383) helped at 156 steps, nor the paper's colour jitter of "
             "every tile on its own (tried on 2026-12-06 and not kept: 0.392 and 0.368 after 156 and 312 steps). On "
             "the built-in shapes (2000 images) raw tiles reach 0.565 against 0.515 normalised and 0.445 for "
             "random init after 150 steps; the earlier default led random init by 0.158 after 1.5 minutes.")
    photo_recipe = {"data.image_size": 64, "method_options.cell": 21, "epochs": 6}
    photo_recipe_why = ("Jigsaw needs larger tiles than 32-pixel photographs give: on cifar10-small 3 minutes gave "
                        "kNN -0.067 against random init; at 64 pixels (tiles of 21) 6 epochs gave 0.437 against "
                        "0.375 for random init at that size (468 steps of batch 128).")
    paper = "Noroozi & Favaro, Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles, ECCV 2016"
    family = "transformation"
    backbone_kind = "cnn"
    preview_kind = "jigsaw"
    Config = JigsawConfig

    @classmethod
    def run_defaults(cls) -> dict:
        return {"optim": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 5e-4, "batch_size": 128}}

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        self.register_buffer("perms", torch.as_tensor(jigsaw_permutations(cfg.permutations)), persistent=False)
        d = backbone.feature_dim
        self.head = mlp([(9 * d, cfg.head_hidden, True, True), (cfg.head_hidden, cfg.permutations, False, False)])

    def make_batch(self, x, g, preview=False):
        if self.cfg.gray_p > 0:
            grey = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
            pick = torch.rand(x.shape[0], 1, 1, 1, generator=g, device=x.device) < self.cfg.gray_p
            x = torch.where(pick, grey, x)
        return jigsaw(x, self.perms, g, grid=3, cell=self.cfg.cell, gap_fraction=self.cfg.gap)

    def encoder_tiles(self, tiles: torch.Tensor) -> torch.Tensor:
        """The tiles ``(B, 9, C, t, t)`` as the encoder sees them (each normalised on its own with tile_norm)."""
        if not self.cfg.tile_norm:
            return tiles
        flat = tiles.reshape(-1, *tiles.shape[2:])
        mean = flat.mean(dim=(1, 2, 3), keepdim=True)
        std = flat.std(dim=(1, 2, 3), keepdim=True).clamp(min=1e-3)
        return ((flat - mean) / std * 0.25 + 0.45).clamp(0, 1).view_as(tiles)

    @torch.no_grad()
    def preview_rows(self, x, g):
        from engine.pretext.tiles import PreviewRow, PreviewTile, assemble_tiles, to_uint8

        batch = self.make_batch(x, g, preview=True)
        side = 3 * self.cfg.cell
        resized = resize_square(x, side)
        orig = to_uint8(resized)
        shuffled = to_uint8(assemble_tiles(batch.inputs, 3))
        seen = to_uint8(assemble_tiles(self.encoder_tiles(batch.inputs), 3))
        # the shortcut the gap removes: whole cells, shuffled the same way, whose edges continue each other
        b, c, cell = x.shape[0], x.shape[1], self.cfg.cell
        cells = resized.view(b, c, 3, cell, 3, cell).permute(0, 2, 4, 1, 3, 5).reshape(b, 9, c, cell, cell)
        order = batch.meta["permutation"].to(x.device)
        no_gap = to_uint8(assemble_tiles(torch.gather(cells, 1, order.view(b, 9, 1, 1, 1).expand_as(cells)), 3))
        gap_note = f"gap {self.cfg.gap:g}: tiles cut apart" if self.cfg.gap > 0 else \
            "gap 0: this is what it trains on, so edges solve it (set gap > 0)"
        norm_note = "encoder input: each tile normalised on its own (tile_norm): brightness and colour do " \
                    "not match across tiles" if self.cfg.tile_norm else \
            "encoder input: raw tiles (tile_norm off): matching brightness and colour is a shortcut"
        rows = []
        for i in range(x.shape[0]):
            perm = batch.meta["permutation"][i].tolist()
            idx = int(batch.targets[i])
            rows.append(PreviewRow(f"image {i + 1}", [
                PreviewTile(orig[i], "original, 3x3 cells", grid=3),
                PreviewTile(shuffled[i], f"shuffled: permutation #{idx} of {self.cfg.permutations}", grid=3),
                PreviewTile(shuffled[i], "tile k shows cell " + " ".join(str(p) for p in perm), grid=3,
                            boxes=[((k % 3) * batch.meta['tile'], (k // 3) * batch.meta['tile'],
                                    (k % 3 + 1) * batch.meta['tile'], (k // 3 + 1) * batch.meta['tile'],
                                    "#ffd040", str(p)) for k, p in enumerate(perm)]),
                PreviewTile(seen[i], norm_note, grid=3),
                PreviewTile(no_gap[i], f"shortcut without a gap: edges continue across tiles ({gap_note})", grid=3),
            ]))
        return rows

    def training_step(self, x, labels, g):
        batch = self.make_batch(x, g)
        tiles = self.encoder_tiles(batch.inputs)  # (B, 9, C, t, t)
        b, n = tiles.shape[:2]
        flat = tiles.reshape(b * n, *tiles.shape[2:])
        feats = self.backbone(flat).view(b, n * self.backbone.feature_dim)
        logits = self.head(feats)
        loss = F.cross_entropy(logits, batch.targets)
        return StepOutput(loss, {"pretext_acc": (logits.argmax(1) == batch.targets).float().mean()})

    def pretext_errors(self, x, labels, class_names, seed=0, max_examples=24):
        from engine.methods.pretext_errors import jigsaw_errors

        return jigsaw_errors(self, x, labels, class_names, seed=seed, max_examples=max_examples)
