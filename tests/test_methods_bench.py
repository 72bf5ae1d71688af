"""bench/methods.py: one command trains the methods, scores them next to the baselines, writes
the markdown table and ends with one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_writes_the_table_and_one_json_line(tmp_path):
    out = tmp_path / "table.md"
    proc = subprocess.run(
        [sys.executable, "bench/methods.py", "--minutes", "0.02", "--methods", "denoising,bogus"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "bogus" in proc.stderr  # a typo is refused before any training
    proc = subprocess.run(
        [sys.executable, "bench/methods.py", "--minutes", "0.02", "--methods", "denoising", "--no-supervised",
         "--data", "builtin:shapes:64", "--threads", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = {r["method"]: r for r in result["results"]}
    assert set(rows) == {"random_init", "raw_pixels", "denoising"}
    for r in rows.values():
        assert 0.0 <= r["knn_top1"] <= 1.0
    assert rows["denoising"]["steps"] > 0 and rows["random_init"]["steps"] == 0
    assert result["random_init_knn_top1"] == rows["random_init"]["knn_top1"]
    table = out.read_text()
    # built-in data without --eval-data is scored on its own test split (200 generated test images)
    assert result["eval_data"] == "" and "the test split of builtin:shapes:64" in table
    assert "--data builtin:shapes:64" in table
    assert table.count("\n| ") == 4  # header + 3 rows
    for name in rows:
        assert f"| {name} |" in table


def test_bench_compares_with_the_same_backbone_and_reuses_finished_runs(tmp_path):
    """MAE (a ViT) is compared with a random ViT, not the CNN; a second call reuses the finished runs."""
    args = [sys.executable, "bench/methods.py", "--minutes", "0.01", "--methods", "mae", "--no-supervised",
            "--data", "builtin:shapes:64", "--eval-data", "builtin:shapes:48", "--threads", "1",
            "--runs-root", str(tmp_path / "runs"), "--out", str(tmp_path / "table.md")]
    first = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert first.returncode == 0, first.stderr[-2000:]
    res = json.loads(first.stdout.strip().splitlines()[-1])
    inits = {r["backbone"]: r for r in res["results"] if r["method"] == "random_init"}
    mae = next(r for r in res["results"] if r["method"] == "mae")
    assert mae["backbone"] in inits and len(inits) == 2  # the CNN's and the ViT's lower bounds
    assert res["random_init_by_backbone"][mae["backbone"]] == inits[mae["backbone"]]["knn_top1"]
    row = next(line for line in (tmp_path / "table.md").read_text().splitlines() if line.startswith("| mae |"))
    assert row.rstrip(" |").endswith(f"{mae['knn_top1'] - inits[mae['backbone']]['knn_top1']:+.3f}")

    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr[-2000:]
    res2 = json.loads(again.stdout.strip().splitlines()[-1])
    mae2 = next(r for r in res2["results"] if r["method"] == "mae")
    assert mae2.get("reused") and mae2["run_dir"] == mae["run_dir"] and mae2["knn_top1"] == mae["knn_top1"]
    assert len(list((tmp_path / "runs").iterdir())) == 3  # nothing trained twice


def test_bench_recipe_trains_each_method_with_its_recipe_for_the_data(tmp_path):
    """--recipe: on a folder of photographs CPC trains its recipe, 2 epochs with no time limit, and the table says
    so in its recipe column; a method without a recipe there trains the minutes given; jigsaw's recipe enlarges the
    images, and it is compared with an untrained encoder at that size."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "photos" / c).mkdir(parents=True)
        for i in range(40):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "photos" / c / f"{i}.png")
    out = tmp_path / "table.md"
    photos = str(tmp_path / "photos")
    proc = subprocess.run(
        [sys.executable, "bench/methods.py", "--minutes", "0.02", "--methods", "cpc,denoising,jigsaw", "--no-supervised",
         "--data", photos, "--eval-data", photos, "--threads", "1", "--recipe", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["method"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])["results"]}
    # a recipe in epochs names the batch it was measured at (auto would take a larger one on a GPU)
    assert rows["cpc"]["recipe"] == {"epochs": 2, "optim.batch_size": 64, "minutes": 0.0}
    assert rows["cpc"]["steps"] == 2  # 80 // 64 a epoch
    assert rows["denoising"]["recipe"] == {}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    inits = {r["image_size"]: r["knn_top1"] for r in result["results"] if r["method"] == "random_init"}
    assert set(inits) == {32, 64} and rows["jigsaw"]["image_size"] == 64
    assert result["random_init_by_backbone"]["small_cnn at 64 px"] == inits[64]
    table = out.read_text()
    assert "--recipe" in table and "| recipe |" in table
    assert next(x for x in table.splitlines() if x.startswith("| cpc |")).endswith("| epochs 2, optim.batch_size 64, minutes 0 (no time limit) |")
    assert next(x for x in table.splitlines() if x.startswith("| denoising |")).endswith("| - |")
    jig = next(x for x in table.splitlines() if x.startswith("| jigsaw |"))
    assert "| small_cnn at 64 px |" in jig and f"| {rows['jigsaw']['knn_top1'] - inits[64]:+.3f} |" in jig


def _bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_methods", ROOT / "bench" / "methods.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_record_keeps_each_method_row_under_its_set_and_the_others_rows(tmp_path):
    """--record writes a method's row (kNN, its own untrained encoder's, steps, minutes) under the data's set;
    rows of methods not in this bench stay; the file reads back as the catalogue's measured rows."""
    import pytest

    from engine.methods import measured_rows

    bench = _bench_module()
    path = tmp_path / "measured.json"
    path.write_text(bench.measured_json({"shapes": {**bench.MEASURED_SETS["shapes"], "table": "t.md", "methods": {
        "rotnet": {"knn": 0.9, "random_init": 0.5, "steps": 10, "minutes": 2.0, "date": "2026-01-01"}}}}))
    args = bench.parse_args(["--data", "builtin:shapes", "--minutes", "2", "--record", "--out", str(tmp_path / "t.md")])
    rows = [{"method": "random_init", "backbone": "small_cnn", "knn_top1": 0.56, "image_size": 32},
            {"method": "random_init", "backbone": "vit_mini", "knn_top1": 0.28, "image_size": 32},
            {"method": "counting", "backbone": "small_cnn", "knn_top1": 0.64, "steps": 312, "epochs": 6.66,
             "batch_size": 128, "image_size": 32},
            {"method": "mae", "backbone": "vit_mini", "knn_top1": 0.385, "steps": 278, "epochs": 5.9,
             "batch_size": 128, "image_size": 32},
            {"method": "dino", "backbone": "small_cnn", "knn_top1": None, "error": "boom", "image_size": 32}]
    base = bench.baselines(rows, 32)
    bench.record(rows, args, base, 0.56, path)
    got = measured_rows(path)
    assert got["rotnet"]["shapes"]["knn"] == 0.9  # another method's row stays
    assert got["counting"]["shapes"]["knn"] == 0.64 and got["counting"]["shapes"]["random_init"] == 0.56
    assert got["mae"]["shapes"]["random_init"] == 0.28  # compared with its own backbone's untrained encoder
    assert got["counting"]["shapes"]["minutes"] == 2.0 and got["counting"]["shapes"]["target"] == 0.15
    assert "dino" not in got and "random_init" not in got  # a failed run and the references are not kept
    # only the defaults on the three measured sets are kept
    for argv in (["--data", "builtin:shapes?colours=typical"], ["--data", str(tmp_path)], ["--data", "builtin:shapes:64"],
                 ["--data", "builtin:shapes", "--recipe"], ["--data", "builtin:shapes", "--image-size", "64"]):
        with pytest.raises(SystemExit):
            bench.parse_args(argv + ["--record"])
    assert measured_rows(tmp_path / "missing.json") == {}  # an installed copy without the file still runs


def test_record_refuses_at_once_a_measured_file_it_cannot_read(tmp_path, monkeypatch, capsys):
    import pytest

    import engine.methods

    bench = _bench_module()
    bad = tmp_path / "measured.json"
    bad.write_text("{ half a file")
    monkeypatch.setattr(engine.methods, "MEASURED_FILE", bad)
    with pytest.raises(SystemExit):
        bench.parse_args(["--data", "builtin:shapes", "--record"])
    assert "cannot read" in capsys.readouterr().err
    bad.write_text("{}")
    assert bench.parse_args(["--data", "builtin:shapes", "--record"]).record  # a readable one is fine


def test_the_shipped_measurements_cover_every_method_on_its_sets():
    """Every self-supervised image method has its defaults measured on the built-in shapes and cifar10-small,
    every video method on the clips: the Run view says how it did before Start."""
    from engine.methods import measured_rows

    bench = _bench_module()
    got = measured_rows()
    for m in bench.ssl_methods("images"):
        assert {"shapes", "photos"} <= set(got.get(m, {})), m
    for m in bench.ssl_methods("clips"):
        assert "clips" in got.get(m, {}), m


def test_the_shipped_measurements_agree_with_their_tables():
    """Each kept row names its table, and that table (bench/results) has the same method with the same kNN and
    steps: the line the Run view shows is the table's figure."""
    from engine.methods import measured_rows

    for method, sets in measured_rows().items():
        for kind, row in sets.items():
            table = (ROOT / row["table"]).read_text()
            line = next((x for x in table.splitlines() if x.startswith(f"| {method} |")), None)
            assert line is not None, (method, kind)
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            assert int(cells[4]) == row["steps"] and float(cells[6]) == row["knn"], (method, kind, cells)
