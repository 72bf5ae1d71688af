"""The window's view list and run model: a view is one factory plus one line in app/views.py."""

from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

pytestmark = pytest.mark.gui


def make_dummy_view():
    from app.common.view import MenuEntry, View

    class DummyView(QWidget, View):
        """What a contributor writes: a widget that takes the context and subscribes to the run model."""

        def __init__(self, ctx):
            super().__init__()
            self.ctx = ctx
            self.runs: list = []
            self.live: list = []
            self.datasets: list = []
            self.saved: list = []
            self.label = QLabel("no run")
            QVBoxLayout(self).addWidget(self.label)
            ctx.run.runChanged.connect(self.show_run)
            ctx.run.liveChanged.connect(self.live.append)
            ctx.run.datasetChanged.connect(self.datasets.append)

        def show_run(self, ref) -> None:
            self.runs.append(ref)
            self.label.setText(ref.name)

        def is_ready(self) -> bool:
            return bool(self.runs)

        def menu_entries(self):
            return [MenuEntry("View", "Dummy: say hello", lambda: self.ctx.status("hello from the dummy view"),
                              "Ctrl+Shift+Y")]

        def save_state(self):
            return "dummy-state"

        def restore_state(self, state) -> None:
            self.saved.append(state)

    return DummyView


def test_a_registered_view_is_shown_and_follows_the_run(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("SSLWB_CONFIG_DIR", str(tmp_path / "cfg"))
    from app import views
    from app.common.view import ViewSpec
    from app.window.launch import parse_args
    from app.window.main_window import MainWindow

    dummy = make_dummy_view()
    monkeypatch.setattr(views, "VIEWS", views.VIEWS + (ViewSpec("dummy", "Dummy", dummy),))  # the one line
    assert parse_args(["--screenshot", "x.png", "--view", "dummy"]).view == "dummy"

    win = MainWindow(start_service=False)
    win.confirm_quit = False
    qtbot.addWidget(win)
    win.resize(700, 500)
    win.show()
    view = win.view("dummy")
    assert isinstance(view, dummy)
    i = win.tabs.indexOf(view)
    assert i == win.tabs.count() - 1 and win.tabs.tabText(i) == "Dummy"
    # the window's clients and models, not copies
    ctx = view.ctx
    assert ctx.engine is win.engine and ctx.service is win.service and ctx.analysis is win.analysis
    assert ctx.run is win.run_model and ctx.config is win.model
    # shown from the View menu, with the shortcut the view asked for
    menu = {a.text(): a for m in win.menuBar().actions() for a in m.menu().actions()}
    menu["Dummy"].trigger()
    assert win.tabs.currentWidget() is view
    assert menu["Dummy: say hello"].shortcut().toString() == "Ctrl+Shift+Y"
    menu["Dummy: say hello"].trigger()
    assert win.statusBar().currentMessage() == "hello from the dummy view"
    # the screenshot command waits for the view's own is_ready
    assert not win.is_view_ready("dummy")

    # opening a run reaches the view through the run model
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"method": "rotnet", "data": {"spec": "builtin:shapes:50"}}))
    win.open_run(str(run_dir), live=False)
    assert [(r.run_dir, r.origin, r.live) for r in view.runs] == [(str(run_dir), "opened", False)]
    assert view.label.text() == "r1" and win.is_view_ready("dummy")
    # a folder that is not a run says so and changes nothing
    win.open_run(str(tmp_path))
    assert len(view.runs) == 1 and "not a run folder" in win.banner.text.text()

    # its state is saved with the window's settings and given back next time
    win.save_settings()
    again = MainWindow(start_service=False)
    qtbot.addWidget(again)
    again.confirm_quit = False
    assert again.view("dummy").saved == ["dummy-state"]
    win.close()
    again.close()


def test_two_views_with_one_key_are_refused(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("SSLWB_CONFIG_DIR", str(tmp_path / "cfg"))
    from app.common.view import ViewSpec
    from app.views import VIEWS
    from app.window.main_window import MainWindow

    dummy = make_dummy_view()
    with pytest.raises(ValueError, match="two views have the key 'curves'"):
        MainWindow(start_service=False, views=VIEWS + (ViewSpec("curves", "Curves again", dummy),))


def test_run_model_signals(qtbot):
    from app.models.run_model import RunModel, RunRef

    m = RunModel()
    runs, live, roots = [], [], []
    m.runChanged.connect(runs.append)
    m.liveChanged.connect(live.append)
    m.rootsChanged.connect(roots.append)
    assert m.run is None and not m.live and m.run_dir is None
    m.set_live(True)  # no run: nothing to change
    assert live == []
    ref = m.set_run("/tmp/runs/a", live=True, name="simclr on shapes", origin="started")
    assert runs == [ref] and ref.owned and m.live and m.owns_live("/tmp/runs/a/")
    assert not m.owns_live("/tmp/runs/b")
    m.set_live(True)
    assert live == []  # unchanged: no signal
    m.set_live(False)
    assert live == [False] and not m.live and not m.owns_live("/tmp/runs/a") and m.run.name == "simclr on shapes"
    opened = m.set_run("/tmp/runs/b", live=True)
    assert opened.name == "b" and opened.origin == "opened" and not opened.owned
    assert not m.owns_live("/tmp/runs/b")  # live, but a headless job's: this window cannot snapshot it
    m.set_roots(["/r1", "/r2", "/r1"])
    m.set_roots(["/r1", "/r2"])
    assert roots == [["/r1", "/r2"]] and m.roots == ["/r1", "/r2"]
    with pytest.raises(ValueError, match="origin must be one of"):
        RunRef("/tmp/x", origin="borrowed")
