"""The collapse signal: it fires on a collapsed encoder (dimensional or complete) and on a method whose
outputs no longer tell positives from negatives, and not on a healthy encoder."""

from __future__ import annotations

import torch

from engine.eval.collapse import CollapseWatch, effective_rank
from engine.eval.metrics import collapse_std


def _features(n=400, d=64, rank=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    if rank is None:
        f = torch.randn(n, d, generator=g)
    else:
        f = torch.randn(n, rank, generator=g) @ torch.randn(rank, d, generator=g)
    return torch.nn.functional.normalize(f, dim=1)


def test_effective_rank_counts_the_dimensions_used():
    assert effective_rank(_features()) > 50  # spread over 64 dimensions
    assert 1.5 < effective_rank(_features(rank=2)) < 2.5
    assert effective_rank(torch.ones(100, 16)) < 1.01  # every image on one point
    assert effective_rank(torch.zeros(0, 8)) == 0.0


def test_watch_fires_on_collapsed_encoders_and_not_on_healthy_ones():
    w = CollapseWatch()
    healthy = _features()
    assert w.features(effective_rank(healthy), collapse_std(healthy), first=True) is None  # random init
    assert w.features(effective_rank(healthy) * 0.9, collapse_std(healthy)) is None
    low = _features(rank=2)
    text = w.features(effective_rank(low), collapse_std(low))
    assert text and "collapsed to about 2" in text
    assert w.features(effective_rank(low), collapse_std(low)) is None  # said once
    assert w.features(effective_rank(healthy), collapse_std(healthy)) is None  # gone again
    point = torch.nn.functional.normalize(torch.ones(100, 64) + 1e-4 * torch.randn(100, 64), dim=1)
    text = w.features(effective_rank(point), collapse_std(point))
    assert text and "nearly the same point" in text


def test_watch_fires_when_positives_and_negatives_look_the_same():
    w = CollapseWatch()
    assert w.step({"loss": 1.0}) is None  # a method without the two cosines
    assert w.step({"pos_cos": 0.9, "neg_cos": 0.2}) is None
    text = w.step({"pos_cos": 0.99, "neg_cos": 0.985})
    assert text and "positives and negatives look the same" in text
    assert w.step({"pos_cos": 0.99, "neg_cos": 0.99}) is None  # said once
    assert w.step({"pos_cos": 0.99, "neg_cos": 0.975}) is None  # hovering at the threshold: not again
    assert w.step({"pos_cos": 0.9, "neg_cos": 0.3}) is None  # healthy again
    assert w.step({"pos_cos": 0.99, "neg_cos": 0.99}) is not None  # and collapsed again


def test_a_session_reports_collapse_of_a_dead_encoder(tmp_path, monkeypatch):
    """An encoder whose features stop depending on the image (its last layer zeroed after step 0) is reported
    once, with a record in metrics.jsonl; a healthy run of the same method is not."""
    import json

    from engine import messages as M
    from engine.config import default_config
    from engine.methods import get_method_class
    from engine.session import Session

    def run(kill: bool, where):
        cfg = default_config("rotnet", backbone="small_cnn", device="cpu", epochs=6, runs_root=str(where),
                             data={"spec": "builtin:shapes:128", "image_size": 16}, optim={"batch_size": 32},
                             eval={"knn_every_epochs": 0, "final_eval": False, "snapshot_every_s": 0.001})
        cls = get_method_class("rotnet")
        real = cls.after_step

        def after(self, progress):
            real(self, progress)
            if kill:
                with torch.no_grad():  # the last block's BatchNorm outputs a constant
                    bn = [m for m in self.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
                    bn.weight.zero_()

        monkeypatch.setattr(cls, "after_step", after)
        msgs = []
        summary = Session(cfg, msgs.append).run()
        monkeypatch.setattr(cls, "after_step", real)
        return [m for m in msgs if isinstance(m, M.Collapse)], summary

    dead, summary = run(True, tmp_path / "dead")
    assert len(dead) == 1 and dead[0].where == "encoder" and dead[0].step > 0
    records = [json.loads(x) for x in open(f"{summary['run_dir']}/metrics.jsonl")]
    assert [r["type"] for r in records].count("collapse") == 1
    healthy, _ = run(False, tmp_path / "ok")
    assert healthy == []


def test_two_view_methods_report_how_alike_their_views_and_other_images_are():
    """What the outputs' collapse alarm reads, for contrastive methods and those without negatives alike."""
    import pytest

    from engine.methods import DataInfo, get_method_class
    from engine.models import build_backbone
    from engine.seeds import step_generator

    x = torch.rand(8, 3, 16, 16)
    for name in ("simclr", "moco", "byol", "simsiam"):
        cls = get_method_class(name)
        m = cls(cls.Config(), build_backbone("small_cnn", 16), DataInfo(16, 0))
        out = m.training_step(x, None, step_generator(0, 0, 0, torch.device("cpu")))
        pos, neg = float(out.metrics["pos_cos"]), float(out.metrics["neg_cos"])
        assert -1 <= neg <= 1 and -1 <= pos <= 1, name
        assert pos != pytest.approx(neg), name


def test_the_per_epoch_monitor_records_the_effective_rank(tmp_path):
    """A headless run's kNN monitor every epoch (no time snapshots) gives the Curves' effective-rank plot its
    points, as the snapshots do."""
    import json

    from engine.config import default_config
    from engine.session import Session

    cfg = default_config("rotnet", backbone="small_cnn", device="cpu", epochs=2, runs_root=str(tmp_path),
                         data={"spec": "builtin:shapes:128", "image_size": 16}, optim={"batch_size": 32},
                         eval={"knn_every_epochs": 1, "final_eval": False, "snapshot_every_s": 0})
    summary = Session(cfg, lambda m: None).run()
    records = [json.loads(x) for x in open(f"{summary['run_dir']}/metrics.jsonl")]
    monitor = [r for r in records if r.get("kind") == "knn_monitor"]
    assert len(monitor) == 2 and all(1.0 <= r["effective_rank"] <= 64 for r in monitor)
