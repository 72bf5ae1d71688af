"""New methods inside a real training session: the inspector gets reconstructions, momentum
methods train end to end and resume to the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import messages as M
from engine.config import default_config
from engine.session import Control, Session
from engine.training.checkpoints import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: see conftest


def _config(method, tmp_path, **kw):
    return default_config(method, epochs=2, device="cpu", runs_root=str(tmp_path), backbone="small_cnn",
                          checkpoint_every_minutes=0.0,
                          data={"spec": "builtin:shapes:64", "image_size": 32, "holdout_fraction": 0.25},
                          optim={"batch_size": 16},
                          eval={"knn_every_epochs": 1, "linear_probe_epochs": 0, "bank_size": 48,
                                "monitor_size": 16}, **kw)


@pytest.mark.parametrize("method", ["denoising", "colorization"])
def test_session_sends_reconstructions_for_the_inspector(method, tmp_path):
    got = []
    summary = Session(_config(method, tmp_path), got.append).run()
    assert summary["reason"] == "completed", summary
    recs = [m for m in got if isinstance(m, M.Reconstruction)]
    assert recs, "no Reconstruction message"
    r = recs[-1]
    assert r.originals.shape == r.inputs.shape == r.outputs.shape and r.outputs.dtype == np.uint8
    assert not np.array_equal(r.originals, r.inputs)  # the model saw a corrupted image


class StopAfter(Control):
    """Sends "stop" at the ``n``-th poll of the training loop (once per step; the polls that look for a stop
    while the data is read or a snapshot is taken do not count)."""

    def __init__(self, n):
        self.n = n

    def poll(self):
        import inspect

        if inspect.stack()[1].function != "_handle_commands":
            return []
        self.n -= 1
        return [M.Command(M.STOP, {})] if self.n == 0 else []


def test_momentum_method_stops_and_resumes_exactly(tmp_path):
    cfg = _config("byol", tmp_path, seed=3)
    straight = Session(cfg, run_dir=tmp_path / "a").run()
    assert straight["reason"] == "completed" and straight["step"] >= 3
    stopped = Session(cfg, control=StopAfter(2), run_dir=tmp_path / "b").run()
    assert stopped["reason"] == "stopped" and 0 < stopped["step"] < straight["step"]
    again = Session(cfg, run_dir=tmp_path / "b", resume=True).run()
    assert again["reason"] == "completed" and again["step"] == straight["step"]
    a = load_checkpoint(tmp_path / "a")["model"]
    b = load_checkpoint(tmp_path / "b")["model"]
    assert any(k.startswith("target_backbone.") for k in a)
    for k in a:  # online, target and predictor: the EMA state is checkpointed too
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
