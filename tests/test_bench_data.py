"""bench/data.py: one command opens a folder with an empty cache, again from the cache, streams it beside a
training step, and ends with one JSON line; a missing folder is one line and exit 2. bench/extraction.py:
the extraction's speed per setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_scale_data import _images  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_data_reports_the_opens_and_the_stream_beside_the_step(tmp_path):
    root = _images(tmp_path / "imgs", 48, sizes=(20, 24))
    cache = tmp_path / "cache"  # given: the bench uses it (and leaves it, it is the user's)
    env = {**os.environ, "SSLWB_CACHE_DIR": str(cache)}
    proc = subprocess.run([sys.executable, "bench/data.py", "--data", str(root), "--image-size", "16",
                           "--batch-size", "8", "--batches", "3", "--steps", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["images"] == 48 and out["cache_was_empty"] is True
    for key in ("first_open_s", "cached_open_s", "shard_build_s", "stream_images_per_s", "step_images_per_s",
                "streamed_step_images_per_s"):
        assert out[key] > 0, key
    assert out["stream_to_step_ratio"] == pytest.approx(out["stream_images_per_s"] / out["step_images_per_s"],
                                                        rel=0.01)
    assert out["streaming"] and out["stream_batches"] == 3 and 1 <= out["peak_shards_held"] <= 2
    assert list((cache / "folders").glob("*.npy")) and list((cache / "shards").iterdir())
    proc = subprocess.run([sys.executable, "bench/data.py", "--data", str(tmp_path / "nowhere")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and "is not a folder" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_bench_extraction_reports_every_setting_and_a_map_estimate():
    proc = subprocess.run([sys.executable, "bench/extraction.py", "--images", "16", "--threads", "1",
                           "--batch-sizes", "8", "--map-images", "1000"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    settings = {(r["precision"], r["channels_last"]) for r in out["rows"]}
    assert {("float32", False), ("float32", True)} <= settings and all(r["images_per_s"] > 0 for r in out["rows"])
    assert out["best"]["images_per_s"] == max(r["images_per_s"] for r in out["rows"])
    assert out["map_extract_s_best"] == pytest.approx(1000 / out["best"]["images_per_s"], rel=0.01, abs=0.001)
