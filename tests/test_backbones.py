"""The CPU backbones: ``small_cnn`` (the CPU default, its layout and checkpoints unchanged) and
``small_cnn_fast``, which pools before BatchNorm and ReLU."""

import torch
import torch.nn as nn

from engine.models import build_backbone, default_backbone


def _norm_inputs(model, size):
    """The spatial size each BatchNorm layer normalises, in order."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[2:])))
             for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    model(torch.rand(2, 3, size, size))
    for h in hooks:
        h.remove()
    return seen


def test_the_fast_cnn_normalises_pooled_maps_and_gives_the_same_shapes():
    fast, plain = build_backbone("small_cnn_fast"), build_backbone("small_cnn")
    assert _norm_inputs(fast, 32) == [(16, 16), (8, 8), (4, 4), (4, 4)]  # a quarter of the pixels
    assert _norm_inputs(plain, 32) == [(32, 32), (16, 16), (8, 8), (4, 4)]
    for size in (32, 16, 12):  # views, local crops, tiles
        x = torch.rand(2, 3, size, size)
        assert fast.forward_map(x).shape == plain.forward_map(x).shape
        assert fast(x).shape == plain(x).shape == (2, fast.feature_dim)
    assert sum(p.numel() for p in fast.parameters()) == sum(p.numel() for p in plain.parameters())


def test_small_cnn_stays_the_cpu_default_and_its_checkpoints_still_load():
    assert default_backbone("cpu") == "small_cnn" and default_backbone("cuda") == "resnet18"
    state = build_backbone("small_cnn").state_dict()
    assert "features.1.running_mean" in state and "features.4.weight" in state  # conv, BN, ReLU, pool, conv
    build_backbone("small_cnn").load_state_dict(state)
