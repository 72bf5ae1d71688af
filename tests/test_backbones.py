"""The CPU backbones: ``small_cnn`` (the CPU default, its function and checkpoints unchanged) and
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
    assert "features.1.running_mean" in state and "features.4.weight" in state  # conv, BN, pool, ReLU, conv
    build_backbone("small_cnn").load_state_dict(state)


def _classic(model):
    """The same modules in the textbook order of a block: conv, BatchNorm, ReLU, then max-pool."""
    layers = list(model.features)
    for i in range(len(layers) - 1):
        if isinstance(layers[i], nn.MaxPool2d) and isinstance(layers[i + 1], nn.ReLU):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    assert layers != list(model.features)
    return lambda x: nn.Sequential(*layers)(model.norm(x)).mean(dim=(2, 3))


def test_small_cnn_pools_before_its_relu_and_computes_exactly_the_textbook_block():
    """Max-pooling commutes with ReLU, so pooling first (ReLU on a quarter of the pixels) changes
    neither the features nor the gradients, in float32 and under the CPU's bf16 autocast, for even
    and odd map sizes (ceil-mode pooling)."""
    for name in ("small_cnn", "small_cnn_wide"):
        torch.manual_seed(0)
        model = build_backbone(name)
        classic = _classic(model)
        for size, amp in ((32, False), (32, True), (13, False)):
            x = torch.rand(4, 3, size, size) * 2 - 0.5
            outs = []
            for f in (model, classic):
                model.zero_grad()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    y = f(x)
                (y.float() * torch.linspace(-1, 1, y.shape[1])).sum().backward()
                outs.append((y.detach(), [p.grad.clone() for p in model.parameters()]))
            (y0, g0), (y1, g1) = outs
            assert torch.equal(y0, y1), (name, size, amp)
            assert all(torch.equal(a, b) for a, b in zip(g0, g1)), (name, size, amp)
