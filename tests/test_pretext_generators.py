"""Pretext generators: shapes, and targets that really say what was done to the image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.pretext.base import generator_for
from engine.pretext.color import (
    AB_RANGE,
    ab_bins,
    colorization,
    decode_ab,
    encode_ab,
    lab_to_rgb,
    rgb_to_lab,
)
from engine.pretext.context import NEIGHBOURS, context_geometry, context_pairs
from engine.pretext.corrupt import FILL, add_noise, block_mask, downscale
from engine.pretext.jigsaw import jigsaw, jigsaw_permutations
from engine.pretext.patches import patch_grid

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest


def _images(n=8, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# -- context prediction ----------------------------------------------------------------------------
def test_context_label_is_the_neighbours_position():
    x = _images(64, 32)
    cell, gap, jitter = 16, 0.25, 0.1
    b = context_pairs(x, generator_for(3), cell, gap, jitter)
    centre, neigh = b.inputs
    patch, _, shift = context_geometry(cell, gap, jitter)
    assert centre.shape == neigh.shape == (64, 3, patch, patch)
    assert b.targets.shape == (64,) and set(b.targets.tolist()) == set(range(8))  # all 8 positions drawn
    img = b.meta["image"]
    assert img.shape[-1] == 3 * cell
    for i in range(64):
        cx0, cy0, cx1, cy1 = b.meta["centre_box"][i].tolist()
        nx0, ny0, nx1, ny1 = b.meta["neighbour_box"][i].tolist()
        # the centre patch lies in the centre cell, the neighbour patch in the cell its label names
        assert cell <= cx0 and cx1 <= 2 * cell and cell <= cy0 and cy1 <= 2 * cell
        row, col = ny0 // cell, nx0 // cell
        assert (ny1 - 1) // cell == row and (nx1 - 1) // cell == col
        assert (row - 1, col - 1) == NEIGHBOURS[int(b.targets[i])]
        # the patches are the image's pixels at those coordinates
        assert torch.equal(centre[i], img[i, :, cy0:cy1, cx0:cx1])
        assert torch.equal(neigh[i], img[i, :, ny0:ny1, nx0:nx1])
        # a gap always separates them (no touching edges to match)
        dy, dx = NEIGHBOURS[int(b.targets[i])]
        if dx:
            assert (nx0 - cx1 if dx > 0 else cx0 - nx1) >= cell - patch - 2 * shift > 0
        if dy:
            assert (ny0 - cy1 if dy > 0 else cy0 - ny1) >= cell - patch - 2 * shift > 0


def test_context_same_seed_same_batch_and_jitter_varies():
    x = _images(16)
    a = context_pairs(x, generator_for(5), 16, 0.25, 0.1)
    b = context_pairs(x, generator_for(5), 16, 0.25, 0.1)
    assert torch.equal(a.targets, b.targets) and torch.equal(a.inputs[0], b.inputs[0])
    offsets = a.meta["centre_box"][:, 0] % 16
    assert len(set(offsets.tolist())) > 1  # the jitter moves patches


# -- colorization ----------------------------------------------------------------------------------
def test_lab_round_trip_and_known_colours():
    x = _images(4, 16)
    assert (lab_to_rgb(rgb_to_lab(x)) - x).abs().max() < 1e-3
    ref = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).view(3, 3, 1, 1)
    lab = rgb_to_lab(ref).view(3, 3)
    assert torch.allclose(lab[0], torch.tensor([100.0, 0.0, 0.0]), atol=0.5)  # white
    assert torch.allclose(lab[1], torch.tensor([53.24, 80.09, 67.20]), atol=0.5)  # sRGB red
    assert torch.allclose(lab[2], torch.tensor([32.30, 79.19, -107.86]), atol=0.5)  # sRGB blue


def test_colorization_input_is_lightness_and_targets_encode_ab():
    x = _images(4, 16)
    b = colorization(x, target_size=16, mode="classification")
    lab = rgb_to_lab(x)
    assert b.inputs.shape == (4, 3, 16, 16)
    assert torch.equal(b.inputs[:, 0], b.inputs[:, 1]) and torch.equal(b.inputs[:, 1], b.inputs[:, 2])
    assert torch.allclose(b.inputs[:, 0], lab[:, 0] / 100, atol=1e-5)
    bins = ab_bins()
    assert 200 <= len(bins) <= 400  # the in-gamut bins (313 in the paper's gamut)
    assert b.targets.shape == (4, len(bins), 16, 16)
    assert torch.allclose(b.targets.sum(1), torch.ones(4, 16, 16), atol=1e-5)
    assert torch.equal(b.targets.argmax(1), b.meta["bins"])
    # the hard bin is the nearest bin centre, within half a bin of the true ab
    centre = bins[b.meta["bins"]].permute(0, 3, 1, 2)
    assert (centre - lab[:, 1:]).abs().max() <= 5.0 + 1e-3
    # decoding the soft target recovers the colour (annealed mean, within a bin)
    assert (decode_ab(b.targets.clamp(min=1e-12).log(), bins, temperature=1.0) - lab[:, 1:]).abs().mean() < 5.0
    r = colorization(x, target_size=8, mode="regression")
    assert r.targets.shape == (4, 2, 8, 8)
    assert torch.allclose(r.targets * AB_RANGE, F.adaptive_avg_pool2d(lab[:, 1:], 8), atol=1e-4)


def test_encode_ab_soft_targets_peak_at_the_nearest_bin():
    bins = ab_bins()
    ab = bins[[0, len(bins) // 2, len(bins) - 1]].t().reshape(1, 2, 1, 3)
    soft, hard = encode_ab(ab, bins)
    assert hard.flatten().tolist() == [0, len(bins) // 2, len(bins) - 1]
    assert ((soft > 0).sum(1) <= 5).all()


# -- inpainting, noise, super-resolution ---------------------------------------------------------
def test_center_block_mask_location():
    x = _images(3, 32)
    b = block_mask(x, None, size=0.5, mode="center")
    m = b.meta["mask"]
    assert m.shape == (3, 1, 32, 32)
    expect = torch.zeros(32, 32)
    expect[8:24, 8:24] = 1
    assert all(torch.equal(m[i, 0], expect) for i in range(3))
    assert b.meta["boxes"].tolist() == [[8, 8, 24, 24]] * 3
    fill = torch.tensor(FILL).view(3, 1, 1)
    assert torch.allclose(b.inputs[:, :, 8:24, 8:24], fill.expand(3, 16, 16).expand(3, 3, 16, 16))
    keep = (1 - m).bool().expand_as(x)
    assert torch.equal(b.inputs[keep], x[keep]) and torch.equal(b.targets, x)


def test_random_block_mask_matches_its_boxes():
    x = _images(32, 32)
    b = block_mask(x, generator_for(1), size=0.25, mode="random")
    boxes = b.meta["boxes"]
    assert len({tuple(bx) for bx in boxes.tolist()}) > 4  # different places
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        assert x1 - x0 == y1 - y0 == 8 and 0 <= x0 and x1 <= 32 and 0 <= y0 and y1 <= 32
        assert b.meta["mask"][i, 0, y0:y1, x0:x1].all() and b.meta["mask"][i].sum() == 64


@pytest.mark.parametrize("kind", ["gaussian", "salt_pepper", "masking"])
def test_noise_kinds_and_strength(kind):
    x = torch.full((4, 3, 64, 64), 0.5)
    b = add_noise(x, generator_for(0), kind, 0.3)
    assert b.inputs.shape == x.shape and torch.equal(b.targets, x)
    changed = (b.inputs != x).any(1, keepdim=True)
    if kind == "gaussian":
        assert abs(float((b.inputs - x).std()) - 0.3) < 0.03  # sigma = strength (little clipping at 0.5)
    else:
        assert abs(float(changed.float().mean()) - 0.3) < 0.03  # the fraction replaced = strength
        assert torch.equal(changed.float(), b.meta["mask"])
        vals = set(b.inputs[changed.expand_as(x)].unique().tolist())
        assert vals <= ({0.0, 1.0} if kind == "salt_pepper" else {0.0})
    weak = add_noise(x, generator_for(0), kind, 0.05)
    assert (weak.inputs - x).abs().mean() < (b.inputs - x).abs().mean()


def test_noise_on_a_grid_is_smooth_blotches_a_neighbourhood_mean_cannot_remove():
    x = torch.full((8, 3, 32, 32), 0.5)
    per_pixel = add_noise(x, generator_for(0), "gaussian", 0.2).inputs - x
    blotches = add_noise(x, generator_for(0), "gaussian", 0.2, grid=4).inputs - x
    # what a 3x3 average of the neighbours leaves of the noise: most of the blotches, little of per-pixel noise
    def left_after_smoothing(n):
        return float(F.avg_pool2d(n, 3, 1, 1, count_include_pad=False).std() / n.std())
    assert left_after_smoothing(blotches) > 0.95 and left_after_smoothing(per_pixel) < 0.5
    # neighbouring pixels share their noise on the grid, not without it
    def neighbour_corr(n):
        a, b = n[..., :, :-1].flatten(), n[..., :, 1:].flatten()
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    assert neighbour_corr(blotches) > 0.9 and abs(neighbour_corr(per_pixel)) < 0.1
    # each image and channel gets its own blotches; sigma is reached at the grid points, less between them
    assert not torch.allclose(blotches[0], blotches[1]) and not torch.allclose(blotches[0, 0], blotches[0, 1])
    assert 0.08 < float(blotches.std()) < 0.2
    # masking and salt-and-pepper ignore the grid (pixels are replaced one by one)
    m = add_noise(x, generator_for(0), "masking", 0.3, grid=4)
    assert torch.equal(m.inputs, add_noise(x, generator_for(0), "masking", 0.3).inputs)


def test_downscale_keeps_block_means():
    x = _images(2, 32)
    b = downscale(x, 4, "bicubic")
    assert b.meta["low"].shape == (2, 3, 8, 8) and b.inputs.shape == x.shape
    assert torch.allclose(b.meta["low"], F.avg_pool2d(x, 4), atol=1e-6)
    flat = torch.full((1, 3, 32, 32), 0.3)
    assert torch.allclose(downscale(flat, 2).inputs, flat, atol=1e-5)


def test_patch_grid_cuts_the_boxes():
    x = _images(2, 32)
    b = patch_grid(x, grid=4, patch=16, stride=8)
    assert b.inputs.shape == (2, 16, 3, 16, 16)
    img = b.meta["image"]
    assert img.shape[-1] == 40
    for k, (x0, y0, x1, y1) in enumerate(b.meta["boxes"].tolist()):
        assert torch.equal(b.inputs[:, k], img[:, :, y0:y1, x0:x1])


def test_jigsaw_target_identifies_the_permutation():
    x = _images(6, 48)
    perms = jigsaw_permutations(30)
    b = jigsaw(x, perms, generator_for(2), grid=3, cell=16, gap_fraction=0.0)
    for i in range(6):
        order = perms[int(b.targets[i])]
        for k in range(9):  # input tile k shows original cell order[k]
            r, c = divmod(int(order[k]), 3)
            assert torch.equal(b.inputs[i, k], x[i, :, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16])
    assert np.array_equal(b.meta["permutation"].numpy(), perms[b.targets.numpy()])
