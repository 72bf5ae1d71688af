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
    assert rows["cpc"]["recipe"] == {"epochs": 2, "minutes": 0.0} and rows["cpc"]["steps"] == 2  # 80 // 64 a epoch
    assert rows["denoising"]["recipe"] == {}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    inits = {r["image_size"]: r["knn_top1"] for r in result["results"] if r["method"] == "random_init"}
    assert set(inits) == {32, 64} and rows["jigsaw"]["image_size"] == 64
    assert result["random_init_by_backbone"]["small_cnn at 64 px"] == inits[64]
    table = out.read_text()
    assert "--recipe" in table and "| recipe |" in table
    assert next(x for x in table.splitlines() if x.startswith("| cpc |")).endswith("| epochs 2, minutes 0 (no time limit) |")
    assert next(x for x in table.splitlines() if x.startswith("| denoising |")).endswith("| - |")
    jig = next(x for x in table.splitlines() if x.startswith("| jigsaw |"))
    assert "| small_cnn at 64 px |" in jig and f"| {rows['jigsaw']['knn_top1'] - inits[64]:+.3f} |" in jig
