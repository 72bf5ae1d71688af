import numpy as np
import pytest
import torch

from engine.augment import AugmentConfig, augment, preset
from engine.params import ConfigError, from_dict
from engine.pretext import apply_patch_mask, jigsaw, jigsaw_permutations, patch_mask, rotation
from engine.pretext.base import generator_for


def _batch(n=16, s=32):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, s, s, generator=g)


def test_augment_draws_parameters_per_sample():
    x = _batch(1).repeat(16, 1, 1, 1)  # the same image 16 times
    y, params = augment(x, preset("simclr")[0], generator_for(1), return_params=True)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    flat = y.flatten(1)
    # every view differs from every other: parameters are drawn per sample, not per batch
    dist = torch.cdist(flat, flat) + torch.eye(16) * 1e9
    assert dist.min() > 1e-3
    assert len(set(np.round(params["box"][:, 0].numpy(), 4))) == 16


def test_augment_is_reproducible_and_stable_under_toggles():
    x = _batch()
    cfg = preset("simclr")[0]
    a = augment(x, cfg, generator_for(5))
    b = augment(x, cfg, generator_for(5))
    assert torch.equal(a, b)
    # switching jitter off keeps the same crops (draws are made in a fixed order)
    _, p1 = augment(x, cfg, generator_for(5), return_params=True)
    no_jitter = AugmentConfig(**{**cfg.__dict__, "jitter_p": 0.0})
    _, p2 = augment(x, no_jitter, generator_for(5), return_params=True)
    assert torch.equal(p1["box"], p2["box"]) and torch.equal(p1["flip"], p2["flip"])


def test_each_operation_does_what_it_says():
    x = _batch(8)
    off = AugmentConfig(crop=False, flip_p=0.0, jitter_p=0.0, gray_p=0.0)
    assert torch.allclose(augment(x, off, generator_for(0)), x)
    flip = AugmentConfig(crop=False, flip_p=1.0, jitter_p=0.0, gray_p=0.0)
    assert torch.allclose(augment(x, flip, generator_for(0)), x.flip(-1), atol=1e-5)
    gray = augment(x, AugmentConfig(crop=False, flip_p=0.0, jitter_p=0.0, gray_p=1.0), generator_for(0))
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    sol = augment(x, AugmentConfig(crop=False, flip_p=0.0, jitter_p=0.0, gray_p=0.0, solarize_p=1.0), generator_for(0))
    assert torch.allclose(sol, torch.where(x >= 0.5, 1 - x, x))
    blur = augment(x, AugmentConfig(crop=False, flip_p=0.0, jitter_p=0.0, gray_p=0.0, blur_p=1.0), generator_for(0))
    assert blur.std() < x.std() * 0.9  # smoothing lowers the variance of noise
    y = augment(x, AugmentConfig(), generator_for(0), out_size=16)
    assert y.shape == (8, 3, 16, 16)


def test_augment_config_is_validated():
    with pytest.raises(ConfigError, match="crop_scale_min"):
        from_dict(AugmentConfig, {"crop_scale_min": 0.9, "crop_scale_max": 0.5})
    with pytest.raises(ConfigError, match="above the maximum"):
        from_dict(AugmentConfig, {"flip_p": 2})
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        preset("nope")


def test_rotation_targets_match_the_rotation():
    x = _batch(3)
    out = rotation(x)
    assert out.inputs.shape == (12, 3, 32, 32)
    for k in range(12):
        i, r = k // 4, int(out.targets[k])
        assert torch.equal(out.inputs[k], torch.rot90(x[i], r, dims=(1, 2)))
    one = rotation(x, generator_for(0), all_four=False)
    for i in range(3):
        assert torch.equal(one.inputs[i], torch.rot90(x[i], int(one.targets[i]), dims=(1, 2)))


def test_jigsaw_permutation_set_is_far_apart():
    p = jigsaw_permutations(30, seed=0)
    assert p.shape == (30, 9) and len({tuple(r) for r in p}) == 30
    d = (p[:, None] != p[None]).sum(-1) + np.eye(30, dtype=int) * 99
    assert d.min() >= 6  # greedy max-min Hamming: far apart
    assert (jigsaw_permutations(30, seed=0) == p).all()
    with pytest.raises(ValueError):
        jigsaw_permutations(1)


def test_jigsaw_target_identifies_the_permutation():
    perms = jigsaw_permutations(20, seed=1)
    x = _batch(6, 30)
    out = jigsaw(x, perms, generator_for(2), cell=10, gap_fraction=0.0)  # no gap: tiles are exact cells
    assert out.inputs.shape == (6, 9, 3, 10, 10)
    for i in range(6):
        perm = perms[int(out.targets[i])]
        for k in range(9):
            cell = int(perm[k])
            r, c = divmod(cell, 3)
            assert torch.equal(out.inputs[i, k], x[i, :, r * 10:(r + 1) * 10, c * 10:(c + 1) * 10])


def test_patch_mask_ratio_and_restore():
    out = patch_mask(4, 64, 0.75, generator_for(0))
    assert out.inputs.shape == (4, 16)
    assert (out.targets.sum(1) == 48).all()
    for b in range(4):  # kept ids are exactly the unmasked patches
        assert set(out.inputs[b].tolist()) == set(torch.nonzero(out.targets[b] == 0).flatten().tolist())
    img = apply_patch_mask(torch.zeros(4, 3, 32, 32), out.targets, 4, fill=1.0)
    assert torch.isclose(img.mean(), torch.tensor(0.75))
    with pytest.raises(ValueError):
        patch_mask(1, 4, 1.0)
