"""Denoising autoencoder: reconstruct the clean image from a corrupted one.

Vincent, Larochelle, Bengio, Manzagol. "Extracting and Composing Robust Features with Denoising
Autoencoders", ICML 2008. Gaussian, salt-and-pepper or masking noise of adjustable strength.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.methods.decoder import ReconstructionMethod, ReconstructionOptions
from engine.params import param
from engine.pretext.corrupt import NOISE_KINDS, add_noise


@dataclass
class DenoisingConfig(ReconstructionOptions):
    noise: str = param("gaussian", "Kind of corruption: additive Gaussian, salt-and-pepper pixels, or masking "
                                  "(pixels set to 0)", choices=NOISE_KINDS)
    strength: float = param(0.3, "Noise strength: the Gaussian's sigma (at the points of the noise grid when "
                                 "noise_grid is set), or the fraction of pixels replaced",
                            min=0.0, max=1.0)
    noise_grid: int = param(4, "Gaussian noise drawn on a grid of N x N points and spread smoothly over the image "
                               "(blotches of colour a quarter of the image wide at 4, which no pixel's neighbours "
                               "can undo); 0: drawn anew for every pixel, which is removed by local filtering "
                               "(on cifar10-small, 3 minutes on a CPU: kNN 0.461 with the grid of 4 at sigma 0.3 "
                               "against 0.428 for the best per-pixel noise, sigma 0.15; random init 0.387)",
                            min=0, max=64, legacy=0)


class Denoising(ReconstructionMethod):
    name = "denoising"
    title = "Denoising autoencoder"
    summary = "Reconstruction: recover the clean image from a noisy copy."
    description = ("Learns what images look like underneath a corruption: shapes, regions and the colours that go "
                   "with them. Noise drawn anew for every pixel is removed by low-level filtering (averaging a "
                   "pixel's neighbours), so the features stay low-level; noise in smooth blotches (the default) "
                   "cannot be averaged away and must be undone from what the image shows. The encoder sees noisy "
                   "images in training and clean ones at evaluation.")
    needs = ("Measured on a CPU (seed 0). Its defaults add Gaussian noise drawn on a 4 x 4 grid and spread smoothly "
             "over the image (noise_grid 4, sigma 0.3 at the grid's points, since 2026-12-07): in the 3-minute table on an idle "
             "2-core CPU kNN 0.461 against 0.387 for random init on cifar10-small (+0.074, 718 steps on a slow day; "
             "with seed 1 0.451 against 0.389, +0.062), "
             "in the 2-minute one 0.761 against 0.561 on the built-in shapes (+0.200, 461 steps). Side by side on cifar10-small (whole runs whose learning rate decays within them, "
             "batch 128, one thread, kNN on val every 2 epochs, random init 0.387): the grid of 4 at sigma 0.3 "
             "0.405, 0.432, 0.448, 0.455, 0.463, 0.467, 0.464 after 156 to 1,092 steps (14 epochs); at sigma 0.45 "
             "0.407, 0.443, 0.443, 0.451, 0.471, 0.468, 0.464; a grid of 8 at sigma 0.2 0.401, 0.434, 0.429 over 6 "
             "epochs; noise drawn for every pixel peaked at 0.437-0.444 (sigma 0.1 and 0.15). On the 6,000 "
             "built-in shapes (whole 14-epoch runs, 644 steps, random init 0.561) the grid of 4 gave 0.684, 0.788, 0.815 and 0.821 "
             "after 184, 368, 552 and 644 steps at sigma 0.3 (0.790 at the end at 0.45), noise drawn for every "
             "pixel at sigma 0.15 0.574, 0.720, 0.767 and 0.774. "
             "Before, with noise drawn for every pixel: sigma 0.3 hid too much of a 32-pixel "
             "photograph (cifar10-small: kNN 0.407, +0.020 after 712 steps in the 3-minute table of 2026-12-06; "
             "0.410-0.417 from step 312 to 780 of a run planned for 2,400 steps; 0.394 with the spatial "
             "bottleneck instead of the pooled one). Side by side, runs of 780-1,092 steps: sigma 0.1 0.415, 0.433, "
             "0.444, 0.444, 0.434 after 156, 312, 468, 624 and 780 steps; 0.15 0.410, 0.429, 0.440, 0.435, 0.439; "
             "0.2 0.394, 0.414, 0.417, 0.422, 0.426; masking 30% of the pixels 0.389-0.403. Sigma 0.15 gave 0.428 "
             "(+0.041, 1,157 steps) in 3 minutes on an idle 2-core CPU and 0.775 (+0.214, 692 steps) in 2 minutes "
             "on the shapes. Whole runs of 6 epochs (one thread) stayed at +0.05 or below whatever else changed: "
             "sigma 0.1 0.439 (seed 1 0.435), sigma 0.07 0.436, crops down to 20% 0.423, batch 64 0.432, learning "
             "rate 1e-3 0.421 and 4e-3 0.420, weight decay 0.05 0.435, decoder width 64 0.423 and 256 0.426, "
             "super-resolution's L1 loss 0.423 (0.437 with the squared error). Per-pixel noise is removed by "
             "low-level filtering; smooth noise is not.")
    paper = "Vincent et al., Extracting and Composing Robust Features with Denoising Autoencoders, ICML 2008"
    preview_kind = "noise"
    Config = DenoisingConfig

    def corrupt(self, x, g):
        return add_noise(x, g, self.cfg.noise, self.cfg.strength, self.cfg.noise_grid)

    @torch.no_grad()
    def preview_rows(self, x, g):
        from engine.pretext.tiles import PreviewRow, PreviewTile, to_uint8

        batch = self.make_batch(x, g, preview=True)
        clean, noisy = to_uint8(batch.targets), to_uint8(batch.inputs)
        diff = to_uint8(((batch.inputs - batch.targets).abs() * 3).clamp(0, 1))
        grid = self.cfg.noise_grid
        blotches = f" in blotches ({grid}x{grid} grid)" if grid else ""
        what = {"gaussian": f"Gaussian noise, sigma {self.cfg.strength:.2f}{blotches}",
                "salt_pepper": f"salt and pepper on {self.cfg.strength:.0%} of the pixels",
                "masking": f"{self.cfg.strength:.0%} of the pixels set to 0"}[self.cfg.noise]
        return [PreviewRow(f"image {i + 1}", [
            PreviewTile(noisy[i], f"encoder input: {what}"),
            PreviewTile(clean[i], "target: the clean image"),
            PreviewTile(diff[i], "what was changed (x3)"),
        ]) for i in range(x.shape[0])]
