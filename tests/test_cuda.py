"""Every method on a CUDA device, when there is one (skipped on CPU-only machines such as CI).

Catches host/device mix-ups (a buffer on the GPU handed to numpy, say) that CPU runs cannot show.
Run on a GPU machine: ``python -m pytest tests/test_cuda.py``.
"""

from __future__ import annotations

import pytest
import torch

from engine.methods import METHODS
from engine.pretext.base import generator_for
from tests.test_methods_catalogue import TRAINABLE, batch, build

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("name", TRAINABLE)
def test_method_trains_and_reconstructs_on_cuda(name):
    m = build(name).cuda()
    x, y = batch()
    x, y = x.cuda(), y.cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = m.training_step(x, y, generator_for(0, x.device))
    out.loss.backward()
    m.after_step(0.5)
    assert torch.isfinite(out.loss)
    m.eval()
    rec = m.reconstruct(x[:2], generator_for(0, x.device))  # the inspector's reconstructions
    if rec is not None:
        assert rec[1].shape == x[:2].shape and rec[1].device.type == "cuda"


def test_jigsaw_takes_its_permutations_from_the_device():
    from engine.pretext.jigsaw import jigsaw, jigsaw_permutations

    perms = torch.as_tensor(jigsaw_permutations(10)).cuda()
    b = jigsaw(torch.rand(4, 3, 32, 32, device="cuda"), perms, generator_for(0, torch.device("cuda")))
    assert b.targets.device.type == "cuda" and int(b.targets.max()) < 10
    assert METHODS["jigsaw"].trains
