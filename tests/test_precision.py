"""Mixed precision on the CPU: bf16 autocast where the CPU computes it natively, losses in float32."""

import pytest
import torch

from engine.dist import LOCAL
from engine.methods import losses
from engine.training import device as D


@pytest.fixture
def detection(monkeypatch):
    def set_to(value):
        monkeypatch.setenv("SSLWB_CPU_BF16", value)
        D.cpu_native_bf16.cache_clear()
    yield set_to
    D.cpu_native_bf16.cache_clear()


def test_auto_precision_on_the_cpu_follows_native_bf16(detection):
    cpu = torch.device("cpu")
    detection("1")
    assert D.autocast_dtype(cpu, "auto") == torch.bfloat16
    assert D.autocast_dtype(cpu, "fp32") is None  # the way out stays
    detection("0")
    assert D.autocast_dtype(cpu, "auto") is None
    assert D.autocast_dtype(cpu, "bf16") == torch.bfloat16  # asked for explicitly


@pytest.mark.parametrize("name", ["nt_xent", "barlow_twins_loss", "vicreg_loss", "byol_loss"])
def test_losses_are_float32_inside_a_bf16_step(name):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(64, 256, generator=g), torch.randn(64, 256, generator=g)
    fn = getattr(losses, name)
    group = {"group": LOCAL} if name in losses.COUPLED else {}
    ref = fn(z1, z2, **group)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fn(z1, z2, **group)
    ref, got = (ref[0], got[0]) if isinstance(ref, tuple) else (ref, got)
    assert got.dtype == torch.float32
    assert torch.allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_without_the_guard_bf16_blurs_the_cross_correlation():
    """The guard matters: the same product under autocast differs (so the test above can fail)."""
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(64, 256, generator=g), torch.randn(64, 256, generator=g)
    ref = losses.barlow_twins_loss.__wrapped__(z1, z2, group=LOCAL)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = losses.barlow_twins_loss.__wrapped__(z1, z2, group=LOCAL)[0]
    assert not torch.allclose(got.float(), ref, rtol=1e-4, atol=1e-4)
