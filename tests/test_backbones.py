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


def test_vit_mini_patch8_is_vit_mini_on_a_quarter_of_the_tokens_and_says_which_sizes_it_takes():
    """MAE's recipe on photographs: the same ViT as vit_mini (its weights have the same names and the same shapes but
    the patch embedding's), on 8-pixel patches at any image size; an image size that is not a multiple of 8 is
    refused, by name, before training."""
    from engine.worker import validate_config

    mini, p8 = build_backbone("vit_mini", 32), build_backbone("vit_mini_patch8", 32)
    assert (mini.patch, mini.num_patches, p8.patch, p8.num_patches) == (4, 64, 8, 16)
    assert build_backbone("vit_mini_patch8", 64).num_patches == 64  # fixed patch, not fixed grid
    assert mini.state_dict().keys() == p8.state_dict().keys() and p8.feature_dim == mini.feature_dim
    x = torch.rand(2, 3, 32, 32)
    assert p8(x).shape == (2, 128) and p8.forward_tokens(x).shape == (2, 17, 128)
    ok = validate_config({"method": "mae", "backbone": "vit_mini_patch8", "epochs": 1, "data": {"spec": "builtin:shapes"}})
    assert ok["ok"], ok
    bad = validate_config({"method": "mae", "backbone": "vit_mini_patch8", "epochs": 1,
                           "data": {"spec": "builtin:shapes", "image_size": 36}})
    assert not bad["ok"] and "vit_mini_patch8 needs an image size divisible by its patch size 8" in str(bad)


def test_mae_trains_on_vit_mini_patch8_and_its_run_loads_back_for_evaluation(tmp_path, capsys):
    """The recipe's backbone end to end: a run on 8-pixel patches, then `main.py eval` rebuilds it by name."""
    import json

    from engine.cli import main

    run_dir = tmp_path / "mae8"
    assert main(["train", "--method", "mae", "--backbone", "vit_mini_patch8", "--data", "builtin:shapes:64",
                 "--epochs", "1", "--batch-size", "16", "--run-dir", str(run_dir), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["reason"] == "completed" and summary["step"] == 4
    assert json.loads((run_dir / "config.json").read_text())["backbone"] == "vit_mini_patch8"
    assert main(["eval", "--run", str(run_dir), "--train-data", "builtin:shapes:64", "--test-data",
                 "builtin:shapes-test:40", "--probe-epochs", "0"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= out["knn_top1"] <= 1.0 and out["num_test"] == 40
