"""MAE's reconstruction targets: the per-patch normalised pixels of the paper, or each colour channel of a
patch normalised on its own (``norm_per_channel``), and the reconstruction that undoes either."""

from __future__ import annotations

import pytest
import torch

from engine.methods.base import DataInfo
from engine.methods.mae import MAE, MAEConfig, patchify
from engine.models import build_backbone

pytestmark = pytest.mark.usefixtures("one_thread")


def mae(**options) -> MAE:
    torch.manual_seed(0)
    return MAE(MAEConfig(**options), build_backbone("vit_mini", 32), DataInfo(32)).eval()


def recolour(x: torch.Tensor) -> torch.Tensor:
    """The same layout in other colours: each channel scaled and shifted by its own amount."""
    scale = torch.tensor([0.5, 1.5, 0.8]).view(1, 3, 1, 1)
    shift = torch.tensor([0.3, -0.2, 0.1]).view(1, 3, 1, 1)
    return x * scale + shift


def test_per_channel_targets_keep_the_layout_and_drop_the_colours():
    x = torch.rand(2, 3, 32, 32)
    per_channel, whole = mae(norm_per_channel=True), mae()
    assert torch.allclose(per_channel._target(x), per_channel._target(recolour(x)), atol=1e-4)
    # the paper's target normalises the patch as a whole: a recoloured patch is another target
    assert not torch.allclose(whole._target(x), whole._target(recolour(x)), atol=1e-2)
    t = per_channel._target(x).view(2, 64, 16, 3)  # per patch, per channel: mean 0, variance 1
    assert torch.allclose(t.mean(2), torch.zeros(2, 64, 3), atol=1e-4)
    assert torch.allclose(t.var(2), torch.ones(2, 64, 3), atol=1e-3)


@pytest.mark.parametrize("per_channel", [False, True])
def test_a_perfect_prediction_reconstructs_the_image(per_channel, monkeypatch):
    m = mae(norm_per_channel=per_channel)
    x = torch.rand(2, 3, 32, 32)
    # the decoder predicts exactly the target of the (cropped) image it is given
    monkeypatch.setattr(m, "_forward", lambda xa, batch: m._target(xa))
    monkeypatch.setattr(m, "aug", type(m.aug)(crop=False, flip_p=0.0, jitter_p=0.0, gray_p=0.0))
    _, recon = m.reconstruct(x, torch.Generator().manual_seed(0))
    assert torch.allclose(recon, x, atol=1e-4)
    assert patchify(recon, m.patch).shape == (2, 64, 48)
