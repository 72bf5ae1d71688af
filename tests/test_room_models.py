"""The workflow state the window's views share (the run model) and the rooms' Qt-free models, without a
window: runs protected while they train, the dataset chosen and loading, the chosen image, the views'
requests; the Run history's listing; the run the Inspector's tabs inspect."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest


def test_run_model_holds_the_workflow_state(qapp, tmp_path):
    from app.models.run_model import DataChoice, RunModel

    m = RunModel()
    seen: dict[str, list] = {k: [] for k in ("protected", "chosen", "loading", "image", "dataset")}
    m.protectedChanged.connect(lambda: seen["protected"].append(True))
    m.dataChosen.connect(seen["chosen"].append)
    m.loadingChanged.connect(seen["loading"].append)
    m.imageChosen.connect(seen["image"].append)
    m.datasetChanged.connect(seen["dataset"].append)
    # runs training here are protected, by folder (however it is spelt)
    run = tmp_path / "runs" / "r1"
    m.protect(str(run))
    m.protect(str(run) + os.sep)
    assert m.is_protected(str(run)) and m.is_protected(str(tmp_path / "runs" / ".." / "runs" / "r1"))
    assert not m.is_protected(str(tmp_path / "runs" / "r2")) and not m.is_protected(None)
    m.release(str(run))
    m.release(str(run))
    m.release(None)
    assert not m.is_protected(str(run)) and seen["protected"] == [True, True]
    # a dataset chosen for the Data view; loading and loaded
    assert m.choose_data("builtin:shapes:64", 16) == DataChoice("builtin:shapes:64", 16, False, True)
    m.choose_data("/data/pets", load=False)
    assert seen["chosen"] == [DataChoice("builtin:shapes:64", 16), DataChoice("/data/pets", None, False, False)]
    m.set_loading("builtin:shapes:64")
    m.set_loading("builtin:shapes:64?shortcut=colour")  # another load replaces it: still loading
    assert m.loading and m.loading_spec == "builtin:shapes:64?shortcut=colour" and seen["loading"] == [True]
    m.set_loading(None)
    assert not m.loading and m.loading_spec is None and seen["loading"] == [True, False]
    m.choose_image(7)
    assert m.image == 7 and seen["image"] == [7]
    ds = SimpleNamespace(spec="builtin:shapes:64")
    m.set_dataset(ds)
    assert m.dataset is ds and m.image is None and seen["dataset"] == [ds]  # a new dataset: no image chosen


def test_run_model_passes_the_views_requests_on(qapp):
    from app.models.run_model import RunModel

    m = RunModel()
    got = []
    m.startRequested.connect(lambda cfg: got.append(("start", cfg)))
    m.resumeRequested.connect(lambda d: got.append(("resume", d)))
    m.openRequested.connect(lambda d, live: got.append(("open", d, live)))
    m.overlayRequested.connect(lambda d, live: got.append(("overlay", d, live)))
    m.notice.connect(lambda text, error: got.append(("notice", text, error)))
    cfg = {"method": "simclr"}
    m.request_start(cfg)
    m.request_resume()
    m.request_resume("/runs/a")
    m.request_open("/runs/b")
    m.request_open("/runs/c", live=True)
    m.request_overlay("/runs/d", 1)
    m.tell("Could not start: disk full", error=True)
    assert got == [("start", cfg), ("resume", ""), ("resume", "/runs/a"), ("open", "/runs/b", None),
                   ("open", "/runs/c", True), ("overlay", "/runs/d", True),
                   ("notice", "Could not start: disk full", True)]
    assert got[0][1] is not cfg  # the view's dict is not shared with the window


def _info(path, state="finished", live=False, step=10, knn=None):
    return SimpleNamespace(path=str(path), state=state, live=live, step=step, knn_top1=knn)


def test_run_listing_roots_changes_and_what_may_be_resumed_or_deleted(tmp_path):
    from app.history.model import RunListing, deletable, resumable

    ls = RunListing()
    assert ls.set_roots([str(tmp_path / "runs"), ""]) and not ls.set_roots([str(tmp_path / "runs")])
    assert ls.add_folder(str(tmp_path / "more")) and not ls.add_folder(str(tmp_path / "more" / ".." / "more"))
    assert ls.all_roots() == [str(tmp_path / "runs"), str((tmp_path / "more").resolve())]
    assert ls.lists(str(tmp_path / "runs" / "r1")) and ls.lists(str(tmp_path / "more"))
    assert not ls.lists(str(tmp_path / "elsewhere" / "r1"))
    a, b = _info(tmp_path / "runs" / "a"), _info(tmp_path / "runs" / "b", state="stopped")
    assert ls.update([a, b]) and not ls.update([a, b])
    assert ls.update([a, _info(b.path, state="stopped", step=11)])  # a step later: the row changes
    assert ls.info(a.path) is a and ls.info(None) is None and ls.info("/nowhere") is None
    # resume: a stopped run with a checkpoint; delete: nothing writes it
    stopped = tmp_path / "runs" / "b"
    (stopped / "checkpoints").mkdir(parents=True)
    assert not resumable(_info(stopped, state="stopped"))
    (stopped / "checkpoints" / "last.pt").write_bytes(b"x")
    assert resumable(_info(stopped, state="stopped")) and not resumable(_info(stopped, state="finished"))
    assert not resumable(_info(stopped, state="stopped", live=True)) and not resumable(None)
    assert deletable(a, protected=False) and not deletable(a, protected=True)
    assert not deletable(_info(a.path, live=True), protected=False) and not deletable(None, protected=False)


def test_inspector_model_opens_a_run_for_its_tabs(tmp_path):
    from app.inspector.model import InspectorModel

    run = tmp_path / "r1"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "mae", "data": {"spec": "builtin:shapes:64"}}))
    cat = {"mae": {"reconstruct_captions": ["original", "masked", "reconstruction"]}}
    m = InspectorModel(client=None, runs_roots=(str(tmp_path),), roots=lambda: [str(tmp_path), "/more"],
                       method_info=cat.get)
    assert m.header().startswith("No run open: press Start in the Run panel") and m.captions() == []
    assert m.all_roots() == [str(tmp_path), "/more"]
    assert m.open(str(run), live=True)
    assert m.method == "mae" and m.header() == "r1 · mae on builtin:shapes:64 · training"
    assert m.captions() == ["original", "masked", "reconstruction"]
    assert m.first_show("FiltersTab") and not m.first_show("FiltersTab")
    assert not m.open(str(run))  # the same run again: loaded tabs load again, the header drops "training"
    assert m.first_show("FiltersTab") and m.header() == "r1 · mae on builtin:shapes:64"
    assert m.open(None) and m.header().startswith("No run open:")


@pytest.mark.gui
def test_the_window_acts_on_the_run_models_requests(qtbot, tmp_path, monkeypatch):
    """Views ask through the run model; the window opens, refuses and protects runs, and the Run history's
    Delete follows the runs training here."""
    monkeypatch.setenv("SSLWB_CONFIG_DIR", str(tmp_path / "cfg"))
    from app.window.main_window import MainWindow

    win = MainWindow(start_service=False)
    win.confirm_quit = False
    qtbot.addWidget(win)
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"method": "rotnet", "data": {"spec": "builtin:shapes:50"}}))
    win.run_model.request_open(str(run_dir), False)
    assert win.run_model.run.run_dir == str(run_dir) and win.run_model.run.origin == "opened"
    win.run_model.request_open(str(tmp_path))  # not a run folder: the banner says so, nothing else changes
    assert "not a run folder" in win.banner.text.text() and win.run_model.run.run_dir == str(run_dir)
    # the history refuses to delete a run the window protects, and offers it again once released
    hist = win.view("history")
    hist.set_roots([str(tmp_path / "runs")])
    qtbot.waitUntil(lambda: len(hist.infos) == 1 and not hist.busy, timeout=20_000)
    assert hist.select(str(run_dir)) and hist.delete_btn.isEnabled()
    win.run_model.protect(str(run_dir))
    assert not hist.delete_btn.isEnabled() and not hist.delete_selected() and run_dir.exists()
    win.run_model.release(str(run_dir))
    assert hist.delete_btn.isEnabled()
    # a resume the engine cannot do lands on the Run view's state line
    run_view = win.view("run")
    monkeypatch.setattr(win.engine, "start", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    win.run_model.request_resume(str(run_dir))
    assert run_view.controls.state_label.text() == "Could not resume: disk full"
    assert run_view.controls.state_label.property("error") is True
    win.close()


@pytest.mark.gui
def test_the_data_view_follows_the_run_model(qtbot):
    """The Data view loads what the run model is asked for, says it is loading, and puts the dataset and the
    chosen image into the run model (the Pretext preview follows those)."""
    from PySide6.QtCore import QObject, Signal
    from test_app_panels import FakeService

    from app.common.view import ViewContext
    from app.data.panel import data_view
    from app.models.config_model import ConfigModel
    from app.models.run_model import RunModel

    class Service(FakeService, QObject):
        restarted = Signal()

        def __init__(self):
            FakeService.__init__(self)
            QObject.__init__(self)

    run = RunModel()
    ctx = ViewContext(run=run, config=ConfigModel(), engine=None, service=Service(), analysis=None,
                      status=lambda _t: None, show_view=lambda _k: None)
    panel = data_view(ctx)
    qtbot.addWidget(panel)
    loading = []
    run.loadingChanged.connect(loading.append)
    run.choose_data("builtin:shapes:300", 16, load=False)
    assert panel.spec_from_ui() == "builtin:shapes:300" and panel.size.value() == 16 and not run.loading
    with qtbot.waitSignal(run.datasetChanged, timeout=30_000):
        run.choose_data("builtin:shapes:64", 16)
        assert run.loading and run.loading_spec == "builtin:shapes:64"
    assert run.dataset.spec == "builtin:shapes:64" and len(run.dataset) == 64 and not run.loading
    assert loading == [True, False]
    images = []
    run.imageChosen.connect(images.append)
    panel.choose_random()
    assert images and set(images) == {panel.chosen_index} and run.image == panel.chosen_index
