"""Downstream label efficiency (engine.eval.downstream / finetune / invariance) and its CLI."""

import copy
import json
import threading

import numpy as np
import pytest
import torch

from engine.data import ImageData
from engine.eval.downstream import (
    DownstreamCancelled,
    DownstreamConfig,
    EncoderSource,
    FeatureCache,
    balanced_subset,
    feature_stats,
    linear_fit,
    parse_budgets,
    run_downstream,
)
from engine.eval.features import extract_features
from engine.eval.finetune import FinetuneConfig, finetune_fit
from engine.models import build_backbone

pytestmark = pytest.mark.usefixtures("one_thread")


def blobs(n_per_class, num_classes=3, size=16, seed=0, names=None, counts=None) -> ImageData:
    """Noisy images whose class is a colour (easy for any encoder): class c has ``counts[c]`` images."""
    g = torch.Generator().manual_seed(seed)
    palette = torch.tensor([[220, 40, 40], [40, 200, 60], [40, 60, 220], [220, 220, 40], [200, 40, 200]],
                           dtype=torch.float32)
    counts = counts or [n_per_class] * num_classes
    imgs, labels = [], []
    for c, k in enumerate(counts):
        base = palette[c % len(palette)].view(1, 3, 1, 1).expand(k, 3, size, size)
        imgs.append((base + 40 * torch.randn(k, 3, size, size, generator=g)).clamp(0, 255).to(torch.uint8))
        labels += [c] * k
    return ImageData(name="blobs", source=f"blobs:{seed}:{sum(counts)}", images=torch.cat(imgs),
                     labels=torch.tensor(labels), class_names=names or [f"c{i}" for i in range(len(counts))])


def small_encoder(seed=0):
    torch.manual_seed(seed)
    return build_backbone("small_cnn", 16)


def quick_cfg(**kw) -> DownstreamConfig:
    cfg = DownstreamConfig(labels_per_class=[1, 3, "all"], modes=["linear", "finetune", "knn"], seeds=2,
                           finetune=FinetuneConfig(steps=4, batch_size=8))
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


# -- subsets ----------------------------------------------------------------------------------------------
def test_subsets_are_class_balanced_deterministic_and_nested():
    labels = np.repeat(np.arange(4), [30, 12, 25, 40])
    np.random.default_rng(0).shuffle(labels)
    for k in (1, 5, 10):
        a = balanced_subset(labels, k, seed=7)
        assert np.bincount(labels[a], minlength=4).tolist() == [k] * 4
        assert len(set(a.tolist())) == len(a)
        assert np.array_equal(a, balanced_subset(labels, k, seed=7))  # same seed, same subset
    assert not np.array_equal(balanced_subset(labels, 5, 1), balanced_subset(labels, 5, 2))
    assert set(balanced_subset(labels, 5, 3)) <= set(balanced_subset(labels, 10, 3))  # nested
    assert len(balanced_subset(labels, "all", 0)) == len(labels)


def test_budget_parsing_and_errors():
    assert parse_budgets("10, 1,all,5,1") == [1, 5, 10, "all"]
    for bad, frag in (("0", "at least 1"), ("ten", "whole numbers"), ("", "no label budget")):
        with pytest.raises(ValueError, match=frag):
            parse_budgets(bad)


# -- the fits ---------------------------------------------------------------------------------------------
def test_linear_on_cached_features_equals_linear_recomputed():
    train, test = blobs(20, seed=1), blobs(10, seed=2)
    enc = small_encoder()
    src = EncoderSource.from_module("enc", enc)
    cache = FeatureCache()
    cfg = quick_cfg(modes=["linear"], labels_per_class=[3])
    first = run_downstream([src], train, test, cfg, cache=cache)
    assert cache.misses == 2 and cache.hits == 0
    again = run_downstream([src], train, test, cfg, cache=cache)
    assert cache.misses == 2 and cache.hits == 2  # the second call extracted nothing
    assert [f.top1 for f in again.fits] == [f.top1 for f in first.fits]
    # recomputed from scratch: features of exactly the subset, standardised with the pool's statistics
    pool = extract_features(enc, train)
    for fit in first.fits:
        idx = balanced_subset(train.labels.numpy(), 3, fit.seed)
        ftr = extract_features(enc, train, idx)
        fte = extract_features(enc, test)
        top1, logits = linear_fit(ftr, train.labels[idx], fte, test.labels, 3, cfg.linear, feature_stats(pool),
                                  return_logits=True)
        assert top1 == pytest.approx(fit.top1, abs=1e-6)
        cached_top1, cached_logits = linear_fit(pool[idx], train.labels[idx], fte, test.labels, 3, cfg.linear,
                                                feature_stats(pool), return_logits=True)
        assert torch.allclose(logits, cached_logits, atol=1e-3)


def test_finetune_changes_the_encoder_and_linear_does_not():
    train, test = blobs(12, seed=3), blobs(6, seed=4)
    enc = small_encoder(1)
    before = copy.deepcopy(enc.state_dict())
    src = EncoderSource.from_module("enc", enc)
    res = run_downstream([src], train, test, quick_cfg(labels_per_class=[3], seeds=1))
    by_mode = {f.mode: f for f in res.fits}
    assert by_mode["linear"].weight_change == 0.0 and by_mode["knn"].weight_change == 0.0
    assert by_mode["finetune"].weight_change > 0 and by_mode["finetune"].steps == 4
    # the caller's module is never touched, not even by fine-tuning (each fit trains a copy)
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())
    # fine-tuning itself trains the module it is given
    work = copy.deepcopy(enc)
    finetune_fit(work, train, np.arange(9), test, 3, FinetuneConfig(steps=3, batch_size=4))
    changed = [k for k, v in work.state_dict().items() if v.dtype.is_floating_point and not torch.equal(before[k], v)]
    assert any(k.endswith("weight") for k in changed)


def test_run_downstream_reports_every_fit_and_point_with_mean_and_std():
    train, test = blobs(10, seed=5), blobs(5, seed=6)
    fits, points, ticks = [], [], []
    sources = [EncoderSource.from_module("enc", small_encoder()), EncoderSource.random_init("small_cnn", 16)]
    cfg = quick_cfg()
    res = run_downstream(sources, train, test, cfg, progress=lambda d, t, s: ticks.append((d, t)),
                         on_fit=fits.append, on_point=points.append)
    assert len(fits) == 2 * 3 * 3 * 2 and len(res.points) == len(points) == 2 * 3 * 3
    # progress counts fits (feature extraction reports its text without a count): it ends at the fits made
    assert ticks[-1][0] == ticks[-1][1] == len(fits)
    assert sorted({d for d, _ in ticks} - {0}) == list(range(1, len(fits) + 1))
    assert all(b >= a for (a, _), (b, _) in zip(ticks, ticks[1:]))
    for p in res.points:
        mine = [f.top1 for f in fits if (f.encoder, f.mode, f.labels_per_class) == (p.encoder, p.mode,
                                                                                    p.labels_per_class)]
        assert p.seeds == 2 and p.top1_mean == pytest.approx(np.mean(mine))
        assert p.top1_std == pytest.approx(np.std(mine, ddof=1))
        assert p.num_labels == (30 if p.labels_per_class == "all" else 3 * p.labels_per_class)
    scratch = [f for f in fits if f.encoder == "random_init" and f.mode == "finetune"]
    assert {f.seed for f in scratch} == {0, 1}
    d = res.to_dict()
    assert set(d["results"][0]) >= {"encoder", "mode", "labels_per_class", "top1_mean", "top1_std", "seeds"}


def test_budget_larger_than_a_class_is_capped_and_said():
    train = blobs(0, counts=[8, 4, 6], seed=7)
    res = run_downstream([EncoderSource.from_module("enc", small_encoder())], train, blobs(4, seed=8),
                         quick_cfg(labels_per_class=[2, 10, 50], modes=["knn"], seeds=1))
    assert [p.labels_per_class for p in res.points] == [2, 4]
    assert res.points[1].requested == 10 and res.points[1].num_labels == 12
    assert any("smallest class has (4)" in n for n in res.notes)
    assert any("reported once" in n for n in res.notes)


def test_cancel_stops_with_a_cancelled_error():
    cancel = threading.Event()
    fits = []

    def on_fit(f):
        fits.append(f)
        cancel.set()

    with pytest.raises(DownstreamCancelled):
        run_downstream([EncoderSource.from_module("enc", small_encoder())], blobs(6), blobs(3, seed=1),
                       quick_cfg(), on_fit=on_fit, cancel=cancel)
    assert len(fits) == 1


def test_invariance_rows_for_transforms_and_pairs():
    from engine.eval.invariance import PAIRS, TRANSFORMS, invariance, transform

    data = blobs(8, seed=9)
    x = data.get(range(4)).float() / 255
    assert torch.allclose(transform(x, "flip"), x.flip(-1), atol=1e-5)
    assert torch.equal(transform(x, "rotate90"), torch.rot90(x, 1, (2, 3)))
    out = invariance([("a", small_encoder(0)), ("b", small_encoder(1))], data, num_images=20, seed=0)
    names = [(r["encoder"], r["name"]) for r in out["rows"]]
    assert names == [(e, n) for e in ("a", "b") for n in TRANSFORMS + PAIRS]
    for r in out["rows"]:
        assert -1.0 <= r["mean"] <= 1.0 + 1e-6 and r["n"] > 0
    # centred embeddings: a flipped noisy blob stays its own image, a blob of another colour does not
    cell = {(r["encoder"], r["name"]): r["mean"] for r in out["rows"]}
    assert cell["a", "flip"] > 0.8 and cell["a", "different_class"] < cell["a", "same_class"] - 0.3
    # identical inputs give identical rows (deterministic from the seed)
    again = invariance([("a", small_encoder(0))], data, num_images=20, seed=0)
    assert again["rows"] == out["rows"][:len(again["rows"])]
    unl = ImageData(name="u", source="u", images=data.images)
    assert len(invariance([("a", small_encoder(0))], unl, num_images=10)["rows"]) == len(TRANSFORMS)


# -- the CLI ----------------------------------------------------------------------------------------------
def run_cli(args, capsys):
    from engine.cli import main as cli

    try:
        rc = cli(args)
    except SystemExit as exc:
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """A run folder trained on builtin:shapes (random_init: a checkpoint without training time)."""
    from engine.cli import main as cli

    run_dir = tmp_path_factory.mktemp("runs") / "shapes"
    assert cli(["train", "--method", "random_init", "--data", "builtin:shapes:32", "--epochs", "1",
                "--image-size", "16", "--run-dir", str(run_dir), "--no-final-eval", "--quiet"]) == 0
    return run_dir


def write_folder(root, data: ImageData):
    from PIL import Image

    for i, (img, lab) in enumerate(zip(data.images, data.labels)):
        d = root / data.class_names[int(lab)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(d / f"{i}.png")
    return root


def test_cli_transfer_to_other_classes_prints_table_and_json(shapes_run, tmp_path, capsys):
    names = ["red", "green", "blue"]
    train = write_folder(tmp_path / "train", blobs(6, seed=10, names=names))
    test = write_folder(tmp_path / "test", blobs(4, seed=11, names=names))
    rc, out, err = run_cli(["downstream", "--run", str(shapes_run), "--train-data", str(train), "--test-data",
                            str(test), "--labels-per-class", "1,2,all", "--seeds", "2", "--finetune-steps", "3"],
                           capsys)
    assert rc == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert res["encoders"] == ["random_init", "random_init-2"]  # the run (a random-init run) and the baseline
    rows = res["results"]
    assert len(rows) == 2 * 3 * 3
    for r in rows:
        assert {"encoder", "mode", "labels_per_class", "top1_mean", "top1_std", "seeds"} <= set(r)
        assert r["seeds"] == 2 and 0.0 <= r["top1_mean"] <= 1.0
    assert {r["labels_per_class"] for r in rows} == {1, 2, "all"}
    assert "linear" in err and "finetune" in err and "[1/" in err  # progress and the table
    # colour classes are easy: the transferred encoder reads them out well above chance (1/3)
    best = max(r["top1_mean"] for r in rows if r["labels_per_class"] == "all" and r["mode"] == "linear")
    assert best > 0.6


@pytest.mark.parametrize("extra,fragment", [
    (["--labels-per-class", "0"], "at least 1"),
    (["--labels-per-class", "few"], "whole numbers"),
    (["--modes", "linear,svm"], "unknown mode"),
    (["--baselines", "imagenet"], "unknown baseline"),
    (["--seeds", "0"], "at least 1"),
    (["--minutes-per-fit", "-1"], "negative"),
])
def test_cli_wrong_values_get_one_line_and_exit_2(shapes_run, extra, fragment, capsys):
    rc, out, err = run_cli(["downstream", "--run", str(shapes_run), "--train-data", "builtin:shapes:20",
                            "--test-data", "builtin:shapes-test:20", *extra], capsys)
    assert rc == 2 and fragment in err and err.count("\n") == 1 and out == ""


def test_cli_unlabelled_test_set_and_big_budget_are_said(shapes_run, tmp_path, capsys):
    from PIL import Image

    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(6):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(flat / f"{i}.png")
    rc, out, err = run_cli(["downstream", "--run", str(shapes_run), "--train-data", "builtin:shapes:20",
                            "--test-data", str(flat)], capsys)
    assert rc == 2 and "has no labels" in err and err.count("\n") == 1
    rc, out, err = run_cli(["downstream", "--run", str(shapes_run), "--train-data", "builtin:shapes:24",
                            "--test-data", "builtin:shapes-test:16", "--labels-per-class", "1,1000",
                            "--modes", "knn", "--seeds", "1", "--baselines", "none"], capsys)
    assert rc == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    top = res["results"][-1]
    assert top["requested"] == 1000 and top["labels_per_class"] < 1000
    assert f"{top['labels_per_class']} per class is used instead" in err
    assert any("1000 labels per class" in n for n in res["notes"])


def test_cli_invariance_prints_rows_as_json(shapes_run, capsys):
    rc, out, err = run_cli(["invariance", "--run", str(shapes_run), "--data", "builtin:shapes:30", "--images",
                            "16"], capsys)
    assert rc == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert [r["encoder"] for r in res["rows"]] == ["random_init"] * 9 + ["random_init-2"] * 9
    assert {r["name"] for r in res["rows"]} >= {"crop", "solarize", "same_class", "different_class"}
    rc, _, err = run_cli(["invariance", "--run", str(shapes_run), "--data", "builtin:shapes:30", "--images", "1"],
                         capsys)
    assert rc == 2 and "at least 2" in err



def test_cli_help_names_every_flag_of_the_contract(capsys):
    rc, out, _ = run_cli(["downstream", "--help"], capsys)
    assert rc == 0
    for flag in ("--run", "--train-data", "--test-data", "--labels-per-class", "--modes", "--seeds", "--baselines",
                 "--minutes-per-fit"):
        assert flag in out
    rc, out, _ = run_cli(["invariance", "--help"], capsys)
    assert rc == 0 and "--run" in out and "--data" in out


def test_cli_errors_through_main_py(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    main_py = Path(__file__).resolve().parents[1] / "main.py"
    for args, fragment in ((["--run", str(tmp_path)], "not a run folder"),
                           (["--run", str(tmp_path), "--seeds", "many"], "invalid int value")):
        out = subprocess.run([sys.executable, str(main_py), "downstream", "--train-data", "builtin:shapes:16",
                              "--test-data", "builtin:shapes:16", *args], capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and fragment in out.stderr, out.stderr
