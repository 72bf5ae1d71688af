"""The new-user fixes of issue 10 (offscreen): the demo, the status bar, the Data panel, the curves'
reference lines, the previews and the inspector's captions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from test_app_panels import FakeService, _image_folder

from engine import messages as M

pytestmark = pytest.mark.gui
WAIT = 120_000


@pytest.fixture
def bare_window(qtbot, tmp_path, monkeypatch):
    """The window without its helper processes (messages are fed to it by hand)."""
    monkeypatch.setenv("SSLWB_CONFIG_DIR", str(tmp_path / "config"))
    from app.launch import make_app
    from app.main_window import MainWindow

    make_app()
    win = MainWindow(data_spec="builtin:shapes:64", start_service=False)
    win.confirm_quit = False
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


# -- the status bar -------------------------------------------------------------------------------
def test_eta_is_never_negative():
    from app.run_report import fmt_eta

    assert fmt_eta(-1.0) == "0:00" and fmt_eta(-0.4) == "0:00"
    assert fmt_eta(125.2) == "2:05" and fmt_eta(3725) == "1:02:05" and fmt_eta(None) == "–"


def test_status_bar_forgets_a_finished_or_other_run(bare_window, tmp_path):
    win = bare_window
    e = win.engine
    run_a, run_b = str(tmp_path / "a"), str(tmp_path / "b")
    e.run_dir = run_a
    win.run_model.set_run(run_a, live=True, origin="started")
    e.state = "running"
    e.state_changed.emit("running")
    e.step.emit(M.StepMetrics(120, 1.5, {"loss": 1.0, "images_per_s": 300.0}, 60.0, 30.0, 0.67))
    assert "120" in win.st_step.text() and win.st_eta.text() == "ETA 0:30"
    # the time budget ran one step over: never "ETA -1:59"
    e.step.emit(M.StepMetrics(180, 2.0, {"loss": 1.0, "images_per_s": 300.0}, 91.0, -1.0, 1.0))
    assert "-" not in win.st_eta.text()
    e.state = "finished"
    e.state_changed.emit("finished")
    assert win.st_eta.text() == "" and win.st_speed.text() == ""
    # another run is shown: the status bar shows nothing of run a's progress
    e.state = "running"
    e.state_changed.emit("running")
    e.step.emit(M.StepMetrics(200, 2.2, {"loss": 1.0, "images_per_s": 300.0}, 95.0, 20.0, 0.8))
    assert win.st_step.text()
    win.run_model.set_run(run_b, live=False, origin="opened")
    assert win.st_step.text() == "" and win.st_eta.text() == ""
    e.step.emit(M.StepMetrics(210, 2.3, {"loss": 1.0, "images_per_s": 300.0}, 96.0, 19.0, 0.81))
    assert win.st_step.text() == "" and win.st_eta.text() == ""
    # back to the live run: its progress comes back with its next step
    win.run_model.set_run(run_a, live=True, origin="resumed")
    e.step.emit(M.StepMetrics(220, 2.4, {"loss": 1.0, "images_per_s": 300.0}, 97.0, 18.0, 0.82))
    assert "220" in win.st_step.text()
    # a new run starts: the last run's step and ETA go
    e.state = "starting"
    e.state_changed.emit("starting")
    assert win.st_step.text() == "" and win.st_eta.text() == ""
    e.state = "idle"


# -- the Data panel --------------------------------------------------------------------------------
def test_data_panel_folder_page_layout_enter_and_shortcut_option(qtbot, tmp_path):
    from app.widgets.data_panel import DataPanel, parse_spec

    svc = FakeService()
    panel = DataPanel(svc)
    qtbot.addWidget(panel)
    panel.resize(1000, 700)
    panel.show()
    qtbot.waitExposed(panel)
    # the folder page's wrapped help text sits above the Image size row, not over it
    panel.kind.setCurrentIndex(1)
    qtbot.wait(50)
    hint_bottom = panel.folder_hint.mapTo(panel, QPoint(0, panel.folder_hint.height())).y()
    size_top = panel.size.mapTo(panel, QPoint(0, 0)).y()
    assert hint_bottom <= size_top, (hint_bottom, size_top)
    assert panel.folder_hint.width() > 250  # the page is as wide as the form
    # Enter in the folder field loads the folder
    folder = _image_folder(tmp_path / "imgs")
    panel.folder.setText(str(folder))
    with qtbot.waitSignal(panel.dataset_loaded, timeout=30_000) as sig:
        qtbot.keyClick(panel.folder, Qt.Key.Key_Return)
    assert sig.args[0].spec == str(folder)
    # the built-in set keeps the colour-shortcut lesson option
    assert parse_spec("builtin:shapes:300?shortcut=colour") == {"kind": 0, "count": 300, "shortcut": True}
    assert parse_spec("shapes?shortcut=color")["shortcut"] and not parse_spec("builtin:shapes:300")["shortcut"]
    panel.set_spec("builtin:shapes:300?shortcut=colour", 16)
    assert panel.kind.currentIndex() == 0 and panel.shortcut.isChecked() and panel.count.value() == 300
    assert panel.spec_from_ui() == "builtin:shapes:300?shortcut=colour"
    with qtbot.waitSignal(panel.dataset_loaded, timeout=30_000) as sig:
        panel.load_from_ui()
    assert sig.args[0].spec == "builtin:shapes:300?shortcut=colour"
    assert panel.shortcut.isChecked()  # showing the loaded set does not drop it
    panel.shortcut.setChecked(False)
    assert panel.spec_from_ui() == "builtin:shapes:300"


# -- the demo --------------------------------------------------------------------------------------
def test_demo_flag_is_parsed():
    from app.launch import parse_args

    assert parse_args(["--demo"]).demo and not parse_args([]).demo


@pytest.mark.slow
def test_demo_loads_the_shapes_starts_the_default_run_and_shows_the_map(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("SSLWB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SSLWB_NICE", "0")
    from app.config_model import default_run_config
    from app.launch import make_app
    from app.main_window import MainWindow

    make_app()
    win = MainWindow(data_spec="builtin:shapes:64")  # a user who had another dataset open
    win.confirm_quit = False
    qtbot.addWidget(win)
    win.model.set("runs_root", str(tmp_path / "runs"))
    win.model.set("method", "byol")
    win.show()
    try:
        demo = [a for a in win.menuBar().actions() if a.text() == "&Help"][0].menu().actions()[0]
        assert "demo" in demo.text().lower()
        demo.trigger()
        assert win.tabs.currentWidget() is win.view("embedding")
        default = default_run_config()
        cfg = json.loads((Path(win.engine.run_dir) / "config.json").read_text()) \
            if (Path(win.engine.run_dir) / "config.json").exists() else win.engine.config
        assert cfg["method"] == default["method"] and cfg["data"]["spec"] == default["data"]["spec"]
        assert Path(win.engine.run_dir).parent == tmp_path / "runs"  # the user's folder of runs
        qtbot.waitUntil(lambda: win.dataset is not None and win.dataset.spec == default["data"]["spec"],
                        timeout=WAIT)
        qtbot.waitUntil(lambda: win.engine.last_step > 0, timeout=WAIT)
        assert win.run_model.live and win.run_model.run.same_run(win.engine.run_dir)
        # pressed again while it runs: no second run
        run_dir = win.engine.run_dir
        assert win.start_demo() is None and win.engine.run_dir == run_dir
    finally:
        win.engine.stop()
        win.engine.shutdown(timeout=15)
        win.close()
