"""One run, one number: the same run's kNN is the same figure in the map's headline after the end, the Run
history, the Inspector's Evaluation and Compare and results.json, or each says which measure it shows; and
the Pretext preview's recipe after a data change is the one the run will train with."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_analysis_worker import run_op, train_tiny_run  # noqa: E402  (the session's shared tiny run)
from test_app_panels import FakeService  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.getbasetemp())[0]


@pytest.fixture(scope="module")
def worker():
    from engine.analysis import AnalysisWorker

    w = AnalysisWorker(lambda r: None, "cpu")
    w.warm.set()
    return w


class FakeAnalysis:
    """Records what a tab asks the analysis process (the test answers with the engine in this process)."""

    def __init__(self):
        self.calls: list = []

    def request(self, op, args=None, **callbacks):
        self.calls.append((op, dict(args or {}), callbacks))
        return len(self.calls)

    def cancel(self, rid):
        pass


def _store_of(run_dir: str):
    """The map's store of a run opened after it ended: its snapshots, monitor records and facts."""
    from app.common.measures import read_run_facts
    from app.map.model import Entry, MapState, MapStore
    from engine.analysis import list_snapshots
    from engine.analysis.map_ops import knn_records

    store = MapStore()
    store.open(run_dir)
    for rec in knn_records(run_dir):
        store.knn.add(rec["step"], rec)
    for s in list_snapshots(run_dir):
        e = Entry.snapshot(s)
        store.add_entry(e)
        with np.load(s["path"]) as z:
            store.states[e.key] = MapState(e.key, z["features"], z["indices"], z["labels"], [str(i) for i in range(8)],
                                           step=s["step"])
    store.set_facts(read_run_facts(run_dir))
    return store


def test_the_same_runs_knn_is_one_number_in_every_view(qtbot, tiny, worker):
    from app.common.measures import knn_cell, list_runs_with_finals
    from app.curves.model import final_summary
    from app.inspector.evaluation import CACHED, CompareTab, EvaluationTab
    from app.inspector.model import InspectorModel
    from app.inspector.tab import pct

    res = json.loads((Path(tiny) / "results.json").read_text())
    knn, lin = res["knn_top1"], res["linear_top1"]

    # the Run history: the final evaluation's figure, said to be it
    infos, finals = list_runs_with_finals(str(Path(tiny).parent))
    info = next(i for i in infos if i.path == tiny)
    text, tip, measure = knn_cell(info, finals[info.path])
    assert measure == "final" and text == f"{knn:.1%}" and "final evaluation" in tip and "test images" in tip

    # the map's headline on the newest map after the end: the final evaluation, named so
    store = _store_of(tiny)
    newest = max((e for e in store.entries), key=lambda e: e.step)
    store.current = store.states[newest.key]
    assert store.headline().startswith(f"kNN top-1 {knn:.2f}")
    assert store.headline_detail().startswith("final evaluation") and "test images against a bank" in \
        store.headline_detail()
    # an earlier snapshot shows the monitor's value of its step, and says so
    first = min((e for e in store.entries), key=lambda e: e.step)
    store.current = store.states[first.key]
    assert store.headline_detail().startswith(f"online monitor at step {store.knn.step_of(first.step)}")

    # Compare runs: the tab asks without probe epochs (the run's own), the engine reuses results.json
    client = FakeAnalysis()
    target = InspectorModel(client)
    target.open(tiny)
    cmp = CompareTab(target)
    qtbot.addWidget(cmp)
    cmp.reload()
    assert cmp.probe_epochs.value() == res["protocol"]["probe_epochs"] and cmp.checked() == [tiny]
    cmp.compare()
    op, args, _cb = client.calls[-1]
    assert op == "compare" and "probe_epochs" not in args
    out = run_op(worker, op, **args)[-1].data
    cmp._on_reply(out, True)
    assert cmp.table.item(0, 4).text() == pct(knn) == text
    assert cmp.table.item(0, 5).text() == pct(lin) and cmp.table.item(0, 6).text() == CACHED
    assert "test images against a bank" in cmp.status.text()
    # the user's own probe length is another question: sent, measured now, and said so
    cmp.probe_epochs.setValue(res["protocol"]["probe_epochs"] + 1)
    cmp.compare()
    assert client.calls[-1][1]["probe_epochs"] == res["protocol"]["probe_epochs"] + 1

    # Evaluation: the saved row is the final evaluation; Evaluate reuses it for the run's row
    ev = EvaluationTab(target)
    qtbot.addWidget(ev)
    ev.show_saved()
    assert ev.table.item(0, 1).text() == pct(knn) and ev.table.item(0, 5).text() == CACHED
    ev.evaluate(supervised="none")
    op, args, _cb = client.calls[-1]
    assert op == "evaluate" and "probe_epochs" not in args
    out = run_op(worker, op, **args)[-1].data
    ev._on_reply(out, True)
    assert ev.table.item(0, 1).text() == pct(knn) and ev.table.item(0, 5).text() == CACHED
    assert ev.table.item(1, 5).text() == "now"  # the random-init encoder is scored now

    # the curves' final label
    assert f"{knn:.1%}" in final_summary({"knn_top1": knn, "linear_top1": lin}, 2)


def test_a_run_without_a_final_evaluation_says_its_figure_is_the_monitor(tmp_path):
    from app.common.measures import knn_cell, list_runs_with_finals, monitor_text
    from app.history.details import details_html, read_details

    d = tmp_path / "runs" / "stopped"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"method": "simclr", "data": {"spec": "builtin:shapes:64"}}))
    (d / "status.json").write_text(json.dumps({"state": "stopped", "step": 113, "epoch": 0, "epoch_f": 0.42,
                                               "last_knn": 0.33}))
    infos, finals = list_runs_with_finals(str(tmp_path / "runs"))
    text, tip, measure = knn_cell(infos[0], finals[infos[0].path])
    assert (text, measure) == ("33.0% (monitor)", "monitor") and "no final evaluation" in tip
    html = details_html(str(d), read_details(str(d)))
    assert "113 / 0.42" in html and "33.0%" in html and "No final evaluation" in html
    assert monitor_text({"snapshot_images": 500}, 120) == "online monitor at step 120 · leave-one-out among 500 " \
                                                          "evaluation images"
    assert monitor_text({"epoch_test": 500, "epoch_bank": 2000}, 7, snapshot=False).endswith(
        "500 evaluation images against a bank of 2,000")


# -- the preview's recipe follows the data -------------------------------------------------------------------
def _view_dataset(spec: str, n: int = 16):
    from app.models.dataset import ViewDataset

    rng = np.random.default_rng(0)
    return ViewDataset(spec=spec, image_size=32, images=rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8),
                       labels=np.arange(n) % 4, class_names=list("abcd"), total=n)


def _options_sent(panel) -> dict:
    return panel.last_request["options"]


def test_the_preview_shows_after_a_data_change_the_recipe_the_run_uses(qtbot, qapp):
    from app.models.config_model import ConfigModel
    from app.preview.panel import PreviewPanel
    from engine.config import SHAPES_RECIPE, default_config
    from engine.worker import catalogue

    model = ConfigModel()
    model.set_catalogue(catalogue())
    model.set("data.spec", "builtin:shapes:64")
    panel = PreviewPanel(FakeService(), model)
    qtbot.addWidget(panel)
    panel.resize(1200, 700)
    panel.show()
    panel.set_method("simclr")
    panel.set_dataset(_view_dataset("builtin:shapes:64"))
    qtbot.waitUntil(lambda: panel.is_ready() and panel.last_request is not None, timeout=30_000)
    assert _options_sent(panel)["augment"] == SHAPES_RECIPE["augment"]
    assert panel.augment.value("hue") == SHAPES_RECIPE["augment"]["hue"]
    assert "recommends" in panel.augment.recipe_note.text()

    # as in the window: the preview hears of the new dataset first, then the run config takes its spec
    folder = "/data/cifar10-small"
    panel.set_dataset(_view_dataset(folder))
    model.set("data.spec", folder)
    run = default_config("simclr", data={"spec": folder}).to_dict()["method_options"]
    qtbot.waitUntil(lambda: panel.is_ready() and _options_sent(panel)["augment"] == run["augment"], timeout=30_000)
    assert _options_sent(panel) == model.config()["method_options"] == run
    assert panel.augment.value("hue") != SHAPES_RECIPE["augment"]["hue"] and not panel.augment.recipe_note.text()
    # the recipe follows the data back, for a method other than the run's too
    model.set_method("byol")
    panel.set_method("simclr")
    model.set("data.spec", "builtin:shapes:64")
    qtbot.waitUntil(lambda: panel.is_ready() and _options_sent(panel)["augment"] == SHAPES_RECIPE["augment"],
                    timeout=30_000)


def test_the_last_sessions_recipe_is_not_taken_for_the_users_choice(qapp):
    from app.models.config_model import ConfigModel, default_run_config
    from engine.config import SHAPES_RECIPE, default_config
    from engine.worker import catalogue

    # what an older window saved: the shapes' recipe among the options, as if the user had set it
    cfg = default_run_config()
    cfg["method_options"] = {"augment": dict(SHAPES_RECIPE["augment"]), "temperature": 0.2}
    state = {"config": cfg, "options": {"simclr": {"augment": dict(SHAPES_RECIPE["augment"]), "temperature": 0.2}}}
    m = ConfigModel()
    m.set_catalogue(catalogue())
    m.restore(state)
    assert m.config()["method_options"]["augment"] == SHAPES_RECIPE["augment"]
    m.set("data.spec", "/data/folder")
    want = default_config("simclr", data={"spec": "/data/folder"}).to_dict()["method_options"]
    assert m.config()["method_options"] == {**want, "temperature": 0.2}  # the user's own choice stays
    # a run's config loaded the same way
    m.load_dict(default_config("byol", data={"spec": "builtin:shapes:64"}).to_dict())
    m.set("data.spec", "/data/folder")
    assert m.config()["method_options"] == default_config("byol", data={"spec": "/data/folder"}).to_dict()[
        "method_options"]
