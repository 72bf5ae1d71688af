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
         "--data", "builtin:shapes:64", "--eval-data", "builtin:shapes:48", "--threads", "1", "--out", str(out)],
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
    assert table.count("\n| ") == 4  # header + 3 rows
    for name in rows:
        assert f"| {name} |" in table
