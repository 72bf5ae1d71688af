"""app/history/details.py without a window: what the Run history reads of a run folder and shows of it."""

from __future__ import annotations

import json

from app.history.details import details_html, fmt_duration, fmt_pct, read_details


def test_durations_and_percentages():
    assert fmt_duration(0) == "0m 00s" and fmt_duration(None) == "0m 00s"
    assert fmt_duration(125.7) == "2m 05s"
    assert fmt_duration(3 * 3600 + 7 * 60 + 5) == "3h 07m"
    assert fmt_pct(0.4567) == "45.7%" and fmt_pct(None) == ""


def test_read_details_of_a_folder(tmp_path):
    run = tmp_path / "r1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"method": "simclr"}))
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    d = read_details(str(run))
    assert d["config"] == {"method": "simclr"} and d["checkpoint"] and not d["encoder"]
    assert d["results"] is None and d["data"] is None and d["status"] is None  # missing files: nothing to show


def test_details_html_escapes_and_shows_results_per_class():
    d = {"config": {"method": "simclr", "backbone": "resnet18"},
         "results": {"knn_top1": 0.5, "linear_top1": 0.625, "note": "a <note>", "class_names": ["cat", "<dog>"],
                     "knn_per_class": [0.25, 1.0]},
         "data": {"name": "shapes", "num_images": 200, "image_size": 32, "labelled": True, "skipped": 2,
                  "notes": ["one & two"]},
         "status": {"state": "finished", "step": 40, "epoch": 2, "elapsed_s": 65, "error": "bad <thing>"},
         "checkpoint": True, "encoder": False}
    text = details_html("/runs/a<b>", d)
    assert "/runs/a&lt;b&gt;" in text and "resnet18" in text and "1m 05s" in text
    assert "<b>50.00%</b>" in text and "<b>62.50%</b>" in text and "kNN top-5" not in text
    assert "a &lt;note&gt;" in text and "&lt;dog&gt;" in text and "width=30 " in text and "width=120 " in text
    assert "bad &lt;thing&gt;" in text and "none yet" in text
    assert "200 images, 32 px, labelled, 2 skipped" in text and "one &amp; two" in text


def test_details_html_of_a_run_in_progress():
    text = details_html("/runs/x", {"status": {"state": "running", "reason": "budget"}})
    assert "The run is in progress" in text and "running — budget" in text and "<h4>Data</h4>" not in text
    assert "Final evaluation" not in text and "Checkpoint</b></td><td>no" in text
