"""Opening any encoder (engine.encoders), without the internet: small torchvision and timm models with random
weights, saved in the layouts people have, load to bit-identical features; architectures that do not fit, pickles
that would run code and pretrained weights that are not here are refused in one line; attention maps."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch

from engine.encoders import attention_maps, load_encoder, mean_map, top_mass_mask
from engine.encoders.loader import state_target
from engine.errors import EncoderError
from engine.models import build_backbone

pytestmark = pytest.mark.usefixtures("one_thread")

RESNET = "torchvision:resnet18?input_size=64"  # the model sees 64 px: quick
VIT = "timm:vit_tiny_patch16_224?depth=2&img_size=32&patch_size=8"


def reference(arch: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_backbone(arch).eval()


def images(n: int = 3, size: int = 40, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def features(module, x=None) -> torch.Tensor:
    with torch.no_grad():
        return module(images() if x is None else x)


def with_head(arch: str, state: dict) -> dict:
    """The encoder's tensors plus the classifier the released model has."""
    out = dict(state)
    if arch.startswith("torchvision"):
        out.update({"fc.weight": torch.randn(10, 512), "fc.bias": torch.randn(10)})
    else:
        out.update({"head.weight": torch.randn(10, 192), "head.bias": torch.randn(10)})
    return out


def prefixed(prefix: str, state: dict) -> dict:
    return {prefix + k: v for k, v in state.items()}


def layouts(arch: str, sd: dict, other: dict) -> dict:
    """file name -> object in each layout; ``other``: another network's tensors (student, momentum copy)."""
    head = with_head(arch, sd)
    proj = {"0.weight": torch.randn(8, 8), "2.weight": torch.randn(4, 8)}
    return {
        "plain.pth": head,
        "state_dict.pth": {"state_dict": head, "epoch": 3},
        "module.pt": prefixed("module.", head),
        "model.pth": prefixed("model.", head),
        "backbone.pth": {**prefixed("backbone.", sd), **prefixed("projector.", proj)},
        "encoder.pth": prefixed("encoder.", sd),
        "model_backbone.pth": {"model": {**prefixed("backbone.", sd), **prefixed("head.", proj)}},
        "lightning.ckpt": {"state_dict": {**prefixed("model.backbone.", sd), **prefixed("model.projector.", proj)},
                           "epoch": 9, "global_step": 90, "hyper_parameters": argparse.Namespace(lr=0.1),
                           "optimizer_states": [{"state": {}}]},
        "solo_learn.ckpt": {"state_dict": {**prefixed("backbone.", sd), **prefixed("momentum_backbone.", other),
                                           **prefixed("projector.", proj), **prefixed("momentum_projector.", proj),
                                           "classifier.weight": torch.randn(10, 4)}, "epoch": 5},
        "dino.pth": {"teacher": {**prefixed("backbone.", sd), **prefixed("head.", proj)},
                     "student": {**prefixed("module.backbone.", other), **prefixed("module.head.", proj)},
                     "epoch": 100, "args": argparse.Namespace(arch="vit_small", patch_size=16)},
        "mocov3.pth.tar": {"state_dict": {**prefixed("module.base_encoder.", with_head(arch, sd)),
                                          **prefixed("module.momentum_encoder.", with_head(arch, other)),
                                          **prefixed("module.predictor.", proj)}, "epoch": 300, "arch": "vit"},
        "weights.safetensors": head,
    }


def save(obj, path: Path) -> Path:
    if path.name.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in obj.items()}, str(path))
    else:
        torch.save(obj, path)
    return path


@pytest.fixture(scope="module", params=[RESNET, VIT], ids=["torchvision-resnet18", "timm-vit"])
def saved(request, tmp_path_factory):
    """(arch, folder with every layout, reference features, the other network's features)."""
    arch = request.param
    ref, other = reference(arch, 0), reference(arch, 1)
    folder = tmp_path_factory.mktemp("layouts")
    for name, obj in layouts(arch, state_target(ref).state_dict(), state_target(other).state_dict()).items():
        save(obj, folder / name)
    return arch, folder, features(ref), features(other)


LAYOUTS = ["plain.pth", "state_dict.pth", "module.pt", "model.pth", "backbone.pth", "encoder.pth",
           "model_backbone.pth", "lightning.ckpt", "solo_learn.ckpt", "dino.pth", "mocov3.pth.tar",
           "weights.safetensors"]


@pytest.mark.parametrize("name", LAYOUTS)
def test_every_layout_loads_to_bit_identical_features(saved, name):
    arch, folder, want, _ = saved
    le = load_encoder(folder / name, arch)
    assert torch.equal(features(le.module), want)
    assert le.report.startswith(f"loaded {len(state_target(le.module).state_dict())} tensors")
    assert "\n" not in le.report


def test_the_report_says_where_and_what_was_set_aside(saved):
    arch, folder, _, _ = saved
    dino = load_encoder(folder / "dino.pth", arch).report
    assert "under teacher.backbone" in dino and "other parts" in dino and "student" in dino
    moco = load_encoder(folder / "mocov3.pth.tar", arch).report
    assert "under state_dict.module.base_encoder" in moco and "heads" in moco


@pytest.mark.parametrize("name, select", [("dino.pth", "student"), ("mocov3.pth.tar", "momentum_encoder"),
                                          ("solo_learn.ckpt", "momentum")])
def test_select_picks_the_other_network(saved, name, select):
    arch, folder, want, other = saved
    le = load_encoder(folder / name, arch, select=select)
    assert torch.equal(features(le.module), other) and not torch.equal(other, want)


def test_select_that_names_nothing_lists_the_networks(saved):
    arch, folder, _, _ = saved
    with pytest.raises(EncoderError, match=r"no part of .* is called 'ema'.*teacher\.backbone.*student"):
        load_encoder(folder / "dino.pth", arch, select="ema")


# -- refusals ---------------------------------------------------------------------------------------------
def test_resnet34_weights_are_refused_by_a_resnet18_naming_the_extra_blocks(tmp_path):
    r34 = state_target(build_backbone("torchvision:resnet34")).state_dict()
    path = save(prefixed("model.backbone.", r34), tmp_path / "r34.ckpt")
    with pytest.raises(EncoderError) as exc:
        load_encoder(path, "torchvision:resnet18")
    text = str(exc.value)
    assert "unexpected" in text and "layer1.2.conv1.weight" in text and "\n" not in text
    assert "--arch" in text


def test_resnet18_weights_are_refused_by_a_vit_naming_missing_and_unexpected(tmp_path):
    path = save(with_head(RESNET, state_target(reference(RESNET)).state_dict()), tmp_path / "r18.pth")
    with pytest.raises(EncoderError) as exc:
        load_encoder(path, VIT)
    text = str(exc.value)
    assert "missing" in text and "cls_token" in text and "conv1.weight" in text


def test_a_tensor_of_another_shape_is_refused(tmp_path):
    # a workbench ResNet-18 trained at 32 px has the CIFAR stem; opened at 224 px it has ImageNet's
    path = save(state_target(build_backbone("resnet18", 32)).state_dict(), tmp_path / "cifar.pth")
    with pytest.raises(EncoderError, match=r"another shape \(conv1.weight is \[64, 3, 3, 3\] in the file"):
        load_encoder(path, "resnet18", image_size=224)
    assert load_encoder(path, "resnet18", image_size=32).report.startswith("loaded")


@pytest.mark.parametrize("how", ["os.system", "Path.write_text"])
def test_a_pickle_that_would_run_code_is_refused_and_does_not_run(tmp_path, how):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            if how == "os.system":
                return os.system, (f"touch {marker}",)
            return Path.write_text, (marker, "pwned")

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "payload": Evil()}, path)
    with pytest.raises(EncoderError) as exc:
        load_encoder(path, RESNET)
    text = str(exc.value)
    assert "could run code" in text and "not opened" in text and "weights_only" not in text
    assert not marker.exists()


def test_damaged_and_missing_files_are_one_line(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint at all")
    for path, words in ((bad, "cannot be read"), (tmp_path / "none.pth", "neither an encoder name")):
        with pytest.raises(EncoderError, match=words) as exc:
            load_encoder(path, RESNET)
        assert "\n" not in str(exc.value)
    with pytest.raises(EncoderError, match="needs its architecture"):
        load_encoder(save({"w": torch.ones(1)}, tmp_path / "w.pth"))
    with pytest.raises(EncoderError, match="unknown architecture"):
        load_encoder(tmp_path / "w.pth", "resnet19")


def test_unknown_names_are_one_line():
    with pytest.raises(EncoderError, match="torchvision has no model 'resnet5'"):
        load_encoder("torchvision:resnet5")
    with pytest.raises(EncoderError, match="has no weights 'IMAGENET9K'"):
        load_encoder("torchvision:resnet18:IMAGENET9K")
    with pytest.raises(EncoderError, match="timm has no model"):
        load_encoder("timm:not_a_model_at_all:random")


# -- pretrained weights: the cache, and no network -------------------------------------------------------
@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Downloads switched off, empty caches, and any attempt to reach the network fails the test."""
    import engine.encoders.hub as hub

    monkeypatch.setenv("SSLWB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hub, "network_available", lambda *a, **k: pytest.fail("no network in tests"))
    return tmp_path


def test_pretrained_weights_that_are_not_here_are_one_line_offline(offline):
    for spec, fix in (("torchvision:resnet18:IMAGENET1K_V1", "--arch torchvision:resnet18"),
                      ("timm:vit_tiny_patch16_224?img_size=32&patch_size=8", "--arch timm:vit_tiny_patch16_224")):
        with pytest.raises(EncoderError) as exc:
            load_encoder(spec)
        text = str(exc.value)
        assert "not on this computer" in text and "switched off" in text and fix in text and "\n" not in text


def test_cached_torchvision_weights_load_offline(offline):
    from engine.encoders.hub import torch_cache_file
    from engine.models.external import parse_arch, torchvision_weights

    ref = reference("torchvision:resnet18:IMAGENET1K_V1")
    path = torch_cache_file(torchvision_weights(parse_arch("torchvision:resnet18:IMAGENET1K_V1")).url)
    path.parent.mkdir(parents=True)
    torch.save(with_head(RESNET, state_target(ref).state_dict()), path)
    le = load_encoder("torchvision:resnet18:IMAGENET1K_V1")
    assert torch.equal(features(le.module), features(ref))
    assert "IMAGENET1K_V1" in le.report and le.image_size == 256 and le.module.preprocess.input_size == 224


def test_cached_timm_weights_load_offline(offline):
    from safetensors.torch import save_file

    spec = "timm:vit_tiny_patch16_224?img_size=32&patch_size=8"
    ref = reference(spec)
    repo = ref.net.pretrained_cfg["hf_hub_id"]
    snap = offline / "hf" / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("abc123")
    save_file({k: v.contiguous() for k, v in with_head(VIT, state_target(ref).state_dict()).items()},
              str(snap / "model.safetensors"))
    le = load_encoder(spec)
    assert torch.equal(features(le.module), features(ref)) and "pretrained" in le.report


def test_random_weights_need_no_network(offline):
    assert load_encoder("torchvision:resnet18").report.startswith("random weights")
    assert load_encoder("timm:vit_tiny_patch16_224:random?img_size=32&patch_size=8&depth=1").kind == "vit"


# -- preprocessing --------------------------------------------------------------------------------------------
def test_the_model_s_own_preprocessing_crops_exactly_at_its_resize_size():
    m = build_backbone("torchvision:resnet18:IMAGENET1K_V1").eval()
    p = m.preprocess
    assert (p.input_size, p.resize_size, p.image_size) == (224, 256, 256)
    x = torch.rand(1, 3, 256, 256)
    want = (x[..., 16:240, 16:240] - torch.tensor(p.mean).view(1, 3, 1, 1)) / torch.tensor(p.std).view(1, 3, 1, 1)
    assert torch.allclose(m.pre(x), want)
    assert m.pre(torch.rand(2, 3, 40, 40)).shape == (2, 3, 224, 224)  # any size: cropped and resized
    m.train()
    assert m.pre(x).shape == (1, 3, 224, 224)  # training: resized only (the method's augmentations crop)
    s = build_backbone("timm:vit_tiny_patch16_224?img_size=32&patch_size=8&crop_pct=1.0&mean=imagenet").preprocess
    assert s.resize_size == 32 and s.mean == (0.485, 0.456, 0.406)


# -- attention -------------------------------------------------------------------------------------------
def test_timm_attention_is_the_last_block_s_softmax_of_queries_and_keys():
    m = reference(VIT)
    attn = m.net.blocks[-1].attn
    seen = []
    handle = attn.register_forward_pre_hook(lambda mod, a: seen.append(a[0]))
    x = images()
    with torch.no_grad():
        mine = m.cls_attention(x)
        handle.remove()
        t = seen[-1]
        b, n, d = t.shape
        q, k, _ = attn.qkv(t).reshape(b, n, 3, 3, d // 3).permute(2, 0, 3, 1, 4)
        want = ((q @ k.transpose(-2, -1)) * (d // 3) ** -0.5).softmax(-1)[:, :, 0, 1:].reshape(mine.shape)
    assert torch.allclose(mine, want, atol=1e-6)
    assert attn.fused_attn  # left as it was


def test_the_workbench_vit_attention_reproduces_its_fused_block():
    import torch.nn.functional as F

    m = reference("vit_mini")
    x = images(size=32)
    with torch.no_grad():
        t = m._embed(x)
        for blk in m.blocks[:-1]:
            t = blk(t)
        last = m.blocks[-1]
        b, n, d = t.shape
        q, k, v = last.qkv(last.norm1(t)).view(b, n, 3, last.heads, d // last.heads).permute(2, 0, 3, 1, 4)
        fused = F.scaled_dot_product_attention(q, k, v)[:, :, 0]  # the class token's output, per head
        a = m.cls_attention(x).flatten(2)  # its weights on the patches
        cls_weight = 1 - a.sum(-1, keepdim=True)  # what is left goes to the class token itself
        mine = cls_weight * v[:, :, 0] + (a.unsqueeze(-1) * v[:, :, 1:]).sum(2)
    assert torch.allclose(mine, fused, atol=1e-5)


@pytest.mark.parametrize("arch", ["vit_mini", "small_cnn", VIT, "torchvision:vit_b_16?image_size=32"])
def test_attention_maps_sum_to_one_and_move_with_the_weights(arch):
    m = reference(arch)
    x = images(size=32)
    a = attention_maps(m, x)
    heads = {"vit_mini": 4, "small_cnn": 1, VIT: 3}.get(arch, 12)
    assert a.shape[:2] == (3, heads) and a.shape[-1] == a.shape[-2] > 1
    assert torch.allclose(a.sum(dim=(-2, -1)), torch.ones(3, heads), atol=1e-5)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    b = attention_maps(m, x)
    assert (a - b).abs().max() > 1e-3


def test_mean_over_heads_and_the_top_mass_mask():
    maps = torch.tensor([[[[0.5, 0.3], [0.1, 0.1]], [[0.5, 0.3], [0.1, 0.1]]]])
    mean = mean_map(maps)
    assert mean.shape == (1, 2, 2) and abs(mean.sum() - 1) < 1e-6
    assert top_mass_mask(mean, 0.6).tolist() == [[[True, True], [False, False]]]
    assert top_mass_mask(mean, 0.5).tolist() == [[[True, False], [False, False]]]
    assert top_mass_mask(mean, 1.0).all()
    with pytest.raises(ValueError):
        top_mass_mask(mean, 0)
