"""The Pretext preview shows the shortcuts the lectures warn about, next to the switch that removes them:
jigsaw's matching tile edges and per-tile colour, colorization's low-level statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.methods import METHODS, DataInfo
from engine.models.backbones import build_backbone
from engine.params import from_dict

pytestmark = pytest.mark.usefixtures("one_thread")


def make(name: str, **options):
    cls = METHODS[name]
    return cls(from_dict(cls.Config, options), build_backbone("small_cnn", 32), DataInfo(32))


def images(n: int = 3) -> torch.Tensor:
    from engine.data import load_dataset

    return load_dataset("builtin:shapes:16", 32).images[:n].float() / 255


def tile(rows, caption_start: str) -> np.ndarray:
    return next(t.image for t in rows[0].tiles if t.caption.startswith(caption_start))


def test_jigsaw_preview_shows_the_edges_shortcut_as_the_shuffled_whole_cells():
    m = make("jigsaw")
    x = images()
    rows = m.preview_rows(x, torch.Generator().manual_seed(3))
    no_gap = tile(rows, "shortcut without a gap").astype(np.float32)  # (48, 48, 3): whole cells, shuffled
    perm = m.make_batch(x, torch.Generator().manual_seed(3), preview=True).meta["permutation"][0].tolist()
    resized = torch.nn.functional.interpolate(x[:1], size=(48, 48), mode="bilinear", align_corners=False)
    orig = (resized[0].permute(1, 2, 0).numpy() * 255)
    for k, src in enumerate(perm):  # input cell k shows original cell perm[k], whole (no gap, no jitter)
        r, c, sr, sc = k // 3, k % 3, src // 3, src % 3
        got = no_gap[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16]
        want = orig[sr * 16:(sr + 1) * 16, sc * 16:(sc + 1) * 16]
        assert np.abs(got - want).max() <= 1.0
    assert "gap 0.15" in next(t.caption for t in rows[0].tiles if t.caption.startswith("shortcut"))
    rows0 = make("jigsaw", gap=0.0).preview_rows(x, torch.Generator().manual_seed(3))
    assert "set gap > 0" in next(t.caption for t in rows0[0].tiles if t.caption.startswith("shortcut"))


def test_jigsaw_preview_shows_what_the_encoder_sees_with_and_without_tile_norm():
    x = images()
    on = make("jigsaw", tile_norm=True)
    batch = on.make_batch(x, torch.Generator().manual_seed(0))
    seen = on.encoder_tiles(batch.inputs)
    assert torch.allclose(seen.mean(dim=(2, 3, 4)), torch.full(seen.shape[:2], 0.45), atol=0.05)
    off = make("jigsaw", tile_norm=False)
    assert torch.equal(off.encoder_tiles(batch.inputs), batch.inputs)
    caps = [t.caption for t in off.preview_rows(x, torch.Generator().manual_seed(0))[0].tiles]
    assert any("tile_norm off" in c for c in caps)


def test_jigsaw_grey_puzzles_remove_colour_and_change_nothing_when_off():
    x = images(4)
    grey = make("jigsaw", gray_p=1.0).make_batch(x, torch.Generator().manual_seed(0)).inputs
    assert torch.allclose(grey[:, :, 0], grey[:, :, 1]) and torch.allclose(grey[:, :, 1], grey[:, :, 2])
    plain = make("jigsaw").make_batch(x, torch.Generator().manual_seed(0)).inputs
    again = make("jigsaw", gray_p=0.0).make_batch(x, torch.Generator().manual_seed(0)).inputs
    assert torch.equal(plain, again) and not torch.allclose(plain[:, :, 0], plain[:, :, 1])


def test_colorization_lookup_paints_what_lightness_alone_tells():
    from engine.methods.colorization import lightness_lookup
    from engine.pretext.color import lab_to_rgb, rgb_to_lab

    # colour that follows lightness (bright = yellow, dark = blue): the lookup paints it back
    lum = torch.linspace(20, 90, 32).view(1, 1, 1, 32).expand(2, 1, 32, 32)
    b = (lum - 55) * 1.2
    lab = rgb_to_lab(lab_to_rgb(torch.cat([lum, torch.zeros_like(lum), b], 1)))
    _, err = lightness_lookup(lab)
    assert err.max() < 6
    # colour drawn independently of lightness: the lookup misses it by far
    g = torch.Generator().manual_seed(0)
    hue = rgb_to_lab(torch.rand(8, 3, 1, 1, generator=g).expand(8, 3, 32, 32))
    lab2 = torch.cat([torch.full_like(hue[:, :1], 60.0), hue[:, 1:]], 1)
    _, err2 = lightness_lookup(lab2)
    assert err2.mean() > 4 * err.max()


def test_colorization_preview_has_the_low_level_shortcut_tile():
    rows = make("colorization").preview_rows(images(), torch.Generator().manual_seed(0))
    caps = [t.caption for t in rows[0].tiles]
    assert any(c.startswith("low-level shortcut") and "ab units" in c for c in caps)


def test_context_preview_shows_the_whole_cells_the_gap_cuts_apart():
    from engine.pretext.context import NEIGHBOURS

    x = images()
    m = make("context")
    rows = m.preview_rows(x, torch.Generator().manual_seed(2))
    batch = m.make_batch(x, torch.Generator().manual_seed(2), preview=True)
    k = int(batch.targets[0])
    shortcut = tile(rows, "shortcut without a gap")
    dr, dc = NEIGHBOURS[k]
    assert shortcut.shape[:2] == ((abs(dr) + 1) * 16, (abs(dc) + 1) * 16)  # the two cells, whole
    # the centre patch lies inside the centre cell of that region, at its place
    img = (batch.meta["image"][0].permute(1, 2, 0).numpy() * 255).round()
    r0, c0 = min(1, 1 + dr), min(1, 1 + dc)
    assert np.abs(shortcut.astype(np.float32) - img[r0 * 16:(r0 + abs(dr) + 1) * 16,
                                                   c0 * 16:(c0 + abs(dc) + 1) * 16]).max() <= 1
    caps = [t.caption for t in rows[0].tiles]
    assert any("patch_norm" in c for c in caps) and any("gray_p" in c for c in caps)
    caps0 = [t.caption for t in make("context", gap=0.0).preview_rows(x, torch.Generator().manual_seed(2))[0].tiles]
    assert any("set gap > 0" in c for c in caps0)
