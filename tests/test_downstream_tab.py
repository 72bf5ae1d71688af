"""The Inspector's Downstream tab driven as a user would (offscreen), against an in-process analysis
worker and a tiny SimCLR run: a curve point is drawn as its fit finishes, exported as CSV and PNG, Cancel
stops a long fit, and the invariance bars fill in. The README's picture uses the same plot."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from app.common.analysis_client import AnalysisClient
from app.inspector.downstream_plot import read_points_csv, render_curve_png
from app.inspector.panel import InspectorPanel

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_thread")]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from engine.config import default_config
    from engine.session import Session

    run_dir = tmp_path_factory.mktemp("dstab") / "simclr-run"
    cfg = default_config("simclr", data={"spec": "builtin:shapes:200", "image_size": 16}, epochs=1, device="cpu",
                         eval={"embed_every_epochs": 0, "linear_probe_epochs": 0, "knn_every_epochs": 0})
    cfg.optim.batch_size = 64
    assert Session(cfg, lambda m: None, run_dir=run_dir).run()["reason"] == "completed"
    return str(run_dir)


@pytest.fixture(scope="module")
def client(qapp):
    c = AnalysisClient(warm=False, in_process=True)
    yield c
    c.shutdown()


@pytest.fixture
def tab(qtbot, client, run):
    ins = InspectorPanel(client)
    qtbot.addWidget(ins)
    ins.resize(1200, 760)
    ins.show()
    ins.set_run(run)
    ins.tabs.setCurrentWidget(ins.downstream)
    return ins.downstream


def one_point_setup(t, budget="2"):
    t.budgets.setText(budget)
    for key, cb in t.mode_boxes.items():
        cb.setChecked(key == "linear")
    t.random_init.setChecked(False)
    t.supervised.setChecked(False)
    t.seeds.setValue(1)


def test_tab_draws_a_curve_point_and_exports_it(tab, qtbot, tmp_path):
    one_point_setup(tab)
    drawn_before_done = []
    done = tab._on_done
    tab._on_done = lambda d: (drawn_before_done.append(len(tab.plot.points)), done(d))
    assert tab.run_curve() is not None and not tab.run_btn.isEnabled() and tab.cancel_btn.isEnabled()
    qtbot.waitUntil(lambda: tab.request_id is None, timeout=120_000)
    assert tab.result is not None, tab.status.text()
    assert drawn_before_done == [1]  # the point came with its fit's partial, before the final result
    (pt,) = tab.result["results"]
    assert (pt["encoder"], pt["mode"], pt["labels_per_class"], pt["seeds"]) == ("simclr", "linear", 2, 1)
    assert pt["num_labels"] == 2 * tab.result["num_classes"]
    curve = tab.plot.curves["simclr", "linear"]
    x, y = curve.getData()  # the item's data (x in log10: the axis is logarithmic)
    assert len(x) == 1 and y[0] == pytest.approx(pt["top1_mean"]) and x[0] == pytest.approx(0.30103, abs=1e-4)
    assert ("simclr", "linear") in tab.plot.bands and tab.run_btn.isEnabled() and not tab.cancel_btn.isEnabled()
    assert "200 training" in tab.curve_info.text()

    path = tab.export_csv(str(tmp_path / "curve.csv"))
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and rows[0]["encoder"] == "simclr" and rows[0]["mode"] == "linear"
    assert rows[0]["labels_per_class"] == "2" and float(rows[0]["top1_mean"]) == pytest.approx(pt["top1_mean"], abs=1e-6)
    assert read_points_csv(path)[0]["top1"] == pytest.approx(pt["top1"], abs=1e-4)
    png = tab.export_png(str(tmp_path / "curve.png"))
    assert Path(png).stat().st_size > 5000


def test_bad_choices_get_a_message_and_no_request(tab):
    tab.budgets.setText("1, zero")
    assert tab.run_curve() is None and "zero" in tab.status.text() and tab.request_id is None
    one_point_setup(tab)
    tab.mode_boxes["linear"].setChecked(False)
    assert tab.run_curve() is None and "at least one mode" in tab.status.text()
    tab.mode_boxes["linear"].setChecked(True)
    tab.other_data.setChecked(True)
    assert tab.run_curve() is None and "training set and a test set" in tab.status.text()
    assert tab.export_csv(None) is None and "Nothing to export" in tab.status.text()


def test_transfer_to_an_unlabelled_or_missing_set_fails_with_one_line(tab, qtbot, tmp_path):
    one_point_setup(tab)
    tab.other_data.setChecked(True)
    tab.train_spec.setText(str(tmp_path / "missing"))
    tab.test_spec.setText(str(tmp_path / "missing"))
    tab.run_curve()
    qtbot.waitUntil(lambda: tab.request_id is None, timeout=60_000)
    assert "missing" in tab.status.text() and "\n" not in tab.status.text() and tab.run_btn.isEnabled()


def test_cancel_stops_a_long_fine_tuning_fit(tab, qtbot):
    one_point_setup(tab)
    tab.mode_boxes["linear"].setChecked(False)
    tab.mode_boxes["finetune"].setChecked(True)
    tab.ft_steps.setValue(100_000)
    tab.run_curve()
    qtbot.wait(1500)  # inside the fit (100,000 steps: far longer than this test may take)
    assert tab.request_id is not None and tab.progress.maximum() == 0  # busy, no fit done
    tab.cancel_btn.click()
    assert tab.request_id is None and tab.status.text().startswith("Cancelled") and tab.run_btn.isEnabled()
    assert not tab.plot.points
    # the worker really stopped: the slow lane answers the next curve
    one_point_setup(tab)
    tab.run_curve()
    qtbot.waitUntil(lambda: tab.request_id is None, timeout=60_000)
    assert len(tab.plot.points) == 1, tab.status.text()


def test_invariance_bars(tab, qtbot):
    tab.inv_images.setValue(24)
    assert tab.run_invariance() is not None
    qtbot.waitUntil(lambda: tab.inv_request_id is None, timeout=60_000)
    rows = tab.bars.rows
    assert {r["encoder"] for r in rows} == {"simclr", "random_init"}, tab.inv_status.text()
    names = {r["name"] for r in rows}
    assert {"crop", "flip", "color_jitter", "grayscale", "blur", "rotate90", "solarize"} <= names
    assert {"same_class", "different_class"} <= names
    assert len(tab.bars.items) >= 4 and "24 images" in tab.inv_status.text()


def test_readme_picture_uses_the_tab_plot(tmp_path, qapp):
    points = [{"encoder": e, "mode": "linear", "labels_per_class": b, "top1_mean": m, "top1_std": 0.02, "seeds": 3,
               "num_labels": 0, "top1": [m] * 3}
              for e, base in (("simclr", 0.3), ("random_init", 0.2)) for b, m in ((1, base), (10, base + 0.1),
                                                                                 ("all", base + 0.2))]
    from app.inspector.downstream_plot import write_points_csv

    write_points_csv(points, tmp_path / "p.csv")
    r = subprocess.run([sys.executable, "bench/downstream_plot.py", str(tmp_path / "p.csv"), str(tmp_path / "c.png")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c.png").stat().st_size > 5000
    render_curve_png(points, tmp_path / "d.png", per_class_all=1000)
    assert (tmp_path / "d.png").stat().st_size > 5000
