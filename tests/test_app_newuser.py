"""The new-user fixes of issue 10 (offscreen): the demo, the status bar, the Data panel, the curves'
reference lines, the previews and the inspector's captions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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
    from app.window.launch import make_app
    from app.window.main_window import MainWindow

    make_app()
    win = MainWindow(data_spec="builtin:shapes:64", start_service=False)
    win.confirm_quit = False
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


@pytest.fixture(scope="module")
def engine_catalogue():
    from engine.worker import catalogue

    return catalogue()


@pytest.fixture
def model(qapp, engine_catalogue):
    from app.models.config_model import ConfigModel

    m = ConfigModel()
    m.set_catalogue(engine_catalogue)
    return m


# -- the status bar -------------------------------------------------------------------------------
def test_eta_is_never_negative():
    from app.common.run_text import fmt_eta

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
    assert "120" in win.run_status.step.text() and win.run_status.eta.text() == "ETA 0:30"
    # the time budget ran one step over: never "ETA -1:59"
    e.step.emit(M.StepMetrics(180, 2.0, {"loss": 1.0, "images_per_s": 300.0}, 91.0, -1.0, 1.0))
    assert "-" not in win.run_status.eta.text()
    e.state = "finished"
    e.state_changed.emit("finished")
    assert win.run_status.eta.text() == "" and win.run_status.speed.text() == ""
    # another run is shown: the status bar shows nothing of run a's progress
    e.state = "running"
    e.state_changed.emit("running")
    e.step.emit(M.StepMetrics(200, 2.2, {"loss": 1.0, "images_per_s": 300.0}, 95.0, 20.0, 0.8))
    assert win.run_status.step.text()
    win.run_model.set_run(run_b, live=False, origin="opened")
    assert win.run_status.step.text() == "" and win.run_status.eta.text() == ""
    e.step.emit(M.StepMetrics(210, 2.3, {"loss": 1.0, "images_per_s": 300.0}, 96.0, 19.0, 0.81))
    assert win.run_status.step.text() == "" and win.run_status.eta.text() == ""
    # back to the live run: its progress comes back with its next step
    win.run_model.set_run(run_a, live=True, origin="resumed")
    e.step.emit(M.StepMetrics(220, 2.4, {"loss": 1.0, "images_per_s": 300.0}, 97.0, 18.0, 0.82))
    assert "220" in win.run_status.step.text()
    # a new run starts: the last run's step and ETA go
    e.state = "starting"
    e.state_changed.emit("starting")
    assert win.run_status.step.text() == "" and win.run_status.eta.text() == ""
    e.state = "idle"


# -- the Data panel --------------------------------------------------------------------------------
def test_data_panel_folder_page_layout_enter_and_shortcut_option(qtbot, tmp_path):
    from app.data.model import parse_spec
    from app.data.panel import DataPanel

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
    assert parse_spec("builtin:shapes:300?shortcut=colour") == {"kind": 0, "count": 300, "shortcut": True,
                                                                 "light": False, "typical": False}
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
    # and the light lesson (RotNet's), one lesson at a time
    panel.set_spec("builtin:shapes:300?shortcut=light", 16)
    assert panel.light.isChecked() and not panel.shortcut.isChecked()
    assert panel.spec_from_ui() == "builtin:shapes:300?shortcut=light"
    panel.shortcut.setChecked(True)
    assert not panel.light.isChecked() and panel.spec_from_ui() == "builtin:shapes:300?shortcut=colour"


# -- the demo --------------------------------------------------------------------------------------
def test_demo_flag_is_parsed():
    from app.window.launch import parse_args

    assert parse_args(["--demo"]).demo and not parse_args([]).demo


@pytest.mark.slow
def test_demo_loads_the_shapes_starts_the_default_run_and_shows_the_map(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("SSLWB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SSLWB_NICE", "0")
    from app.models.config_model import default_run_config
    from app.window.launch import make_app
    from app.window.main_window import MainWindow

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


# -- the curves' reference lines -------------------------------------------------------------------
def _run_folder(root: Path, random_init: bool = True) -> Path:
    d = root / "run"
    d.mkdir(parents=True)
    names = ["circle", "ring", "triangle", "square", "star", "cross", "crescent", "heart"]
    (d / "data.json").write_text(json.dumps({"class_names": names, "eval": {"class_names": names}}))
    (d / "config.json").write_text(json.dumps({"method": "simclr", "eval": {"linear_probe_epochs": 30}}))
    recs = [{"type": "step", "step": s, "epoch": s / 10, "time": s * 0.1, "loss": 5.0 - s / 10} for s in range(1, 31)]
    first = {"type": "eval", "kind": "knn_monitor", "step": 0, "epoch": 0, "knn_top1": 0.2, "collapse_std": 0.5}
    if random_init:
        first["random_init_knn"] = 0.27
    recs.insert(0, first)
    recs += [{"type": "eval", "kind": "knn_monitor", "step": s, "epoch": s / 10, "knn_top1": 0.3 + s / 100,
              "collapse_std": 0.52 + 0.01 * (s % 2)} for s in (10, 20, 30)]
    recs.append({"type": "eval", "kind": "final", "step": 30, "epoch": 3, "knn_top1": 0.6, "linear_top1": 0.66})
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return d


def test_curves_draw_chance_and_random_init_lines_and_a_steady_collapse_axis(qtbot, tmp_path):
    from app.curves.panel import CurvesPanel

    panel = CurvesPanel()
    qtbot.addWidget(panel)
    panel.resize(1200, 700)
    panel.show()
    panel.open_run(str(_run_folder(tmp_path)))
    qtbot.waitUntil(lambda: panel.chance_line.isVisible() and panel.point_count("knn_top1") == 4, timeout=10_000)
    panel._redraw(force=True)
    assert panel.chance_line.value() == pytest.approx(1 / 8)
    assert "chance" in panel.chance_line.label.format
    line = panel.ref_lines[("main", "random_init_knn")]
    assert line.isVisible() and line.value() == pytest.approx(0.27) and "random init" in line.label.format
    assert line in panel.plots["knn_top1"].items
    assert "random_init_knn" not in panel.plots  # a level line, not a plot of its own
    lo, hi = panel.plots["collapse_std"].viewRange()[1]
    assert lo <= 0.0 and hi >= 1.0  # noise of 0.01 around 0.5 is not zoomed into a cliff
    assert "30 probe epochs" in panel.final_label.text()
    # a run without the reference (older runs, the session not sending it) draws no such line
    panel.open_run(str(_run_folder(tmp_path / "old", random_init=False)))
    qtbot.waitUntil(lambda: panel.point_count("knn_top1") == 4, timeout=10_000)
    panel._redraw(force=True)
    assert not any(ln.isVisible() for ln in panel.ref_lines.values())
    qtbot.waitUntil(panel.chance_line.isVisible, timeout=10_000)
    # live: the value arrives in the step-0 eval record
    panel.start_live("live", str(tmp_path / "old" / "run"))
    panel.on_engine_message(M.EvalResult("knn_monitor", 0, 0.0, {"knn_top1": 0.2, "random_init_knn": 0.25}))
    panel._redraw(force=True)
    assert panel.ref_lines[("main", "random_init_knn")].value() == pytest.approx(0.25)


# -- the inspector ---------------------------------------------------------------------------------
def _inspected_run(root: Path, method: str) -> Path:
    d = root / method
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"method": method, "data": {"spec": "builtin:shapes:64"},
                                               "eval": {"linear_probe_epochs": 30}}))
    (d / "results.json").write_text(json.dumps({
        "method": method, "step": 12, "knn_top1": 0.5, "knn_top5": 0.9, "linear_top1": 0.41, "num_test": 8,
        "num_train": 8, "class_names": ["a", "b"], "knn_per_class": [0.5, 0.5], "knn_confusion": [[2, 2], [2, 2]],
        "linear_per_class": [0.5, 0.3], "linear_confusion": [[2, 2], [3, 1]]}))
    return d


def test_inspector_captions_come_from_the_catalogue_and_probe_epochs_are_said(qtbot, tmp_path, engine_catalogue):
    from app.inspector.panel import InspectorPanel
    from app.inspector.tabs import DEFAULT_RECON_CAPTIONS
    cat = {m["name"]: m for m in engine_catalogue["methods"]}
    generators = [n for n, m in cat.items() if any("generator" in c for c in m["reconstruct_captions"])]
    others = [n for n, m in cat.items() if m["reconstruct_captions"] and n not in generators]
    plain = [n for n, m in cat.items() if not m["reconstruct_captions"] and m["family"] == "reconstruction"]
    assert generators and others and plain
    ins = InspectorPanel(None, method_info=cat.get)
    qtbot.addWidget(ins)
    ins.resize(1000, 650)
    ins.show()
    imgs = np.zeros((2, 16, 16, 3), np.uint8)
    tab_title = lambda: ins.tabs.tabText(ins.tabs.indexOf(ins.reconstruction))  # noqa: E731
    for name in (generators[0], others[0], plain[0]):
        ins.set_run(str(_inspected_run(tmp_path, name)))
        ins.on_engine_message(M.Reconstruction(10, 1.0, imgs, imgs, imgs, name))
        want = tuple(cat[name]["reconstruct_captions"]) or DEFAULT_RECON_CAPTIONS
        assert [c.replace("\n", " ") for c in ins.reconstruction.grid.captions] == list(want) * 2
        assert ins.reconstruction.grid.tooltips == list(want) * 2
        assert tab_title() == ("Generator samples" if name in generators else "Reconstructions")
    # the final evaluation's linear probe says its epochs, and Evaluate starts from the same count
    ev = ins.evaluation
    assert "30 epochs" in ev.table.horizontalHeaderItem(3).text() and ev.probe_epochs.value() == 30
    assert ev.table.item(0, 3).text().startswith("41")


# -- the previews ----------------------------------------------------------------------------------
def test_mae_preview_masked_and_encoder_views_differ():
    from engine.preview import preview

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    res = preview("mae", imgs, seed=1)
    for row in res.rows:
        src, masked, sees = (t.image for t in row.tiles)
        assert masked.shape == src.shape and sees.shape != masked.shape  # packed: a smaller square
        assert sees.shape[0] == sees.shape[1] and row.tiles[2].grid > 0
        # every packed patch is a visible patch of the (cropped) input, in reading order
        grid = row.tiles[1].grid
        p = src.shape[0] // grid
        patches = [src[r * p:(r + 1) * p, c * p:(c + 1) * p] for r in range(grid) for c in range(grid)]
        visible = [q for q, m in zip(patches, [masked[r * p:(r + 1) * p, c * p:(c + 1) * p]
                                               for r in range(grid) for c in range(grid)]) if np.array_equal(q, m)]
        side = row.tiles[2].grid
        packed = [sees[r * p:(r + 1) * p, c * p:(c + 1) * p] for r in range(side) for c in range(side)]
        assert all(np.array_equal(a, b) for a, b in zip(visible, packed))
        assert len(visible) <= side * side < len(visible) + 2 * side + 1


def test_rotation_asymmetry_tells_a_ring_from_a_heart_like_shape():
    from app.preview.model import ASYMMETRIC, rotation_asymmetry

    yy, xx = np.mgrid[:32, :32]
    r = np.hypot(yy - 13.5, xx - 18.5)
    ring = np.where(((r > 5) & (r < 9))[..., None], [220, 200, 20], [40, 40, 60]).astype(np.uint8)
    ell = np.full((32, 32, 3), 40, np.uint8)
    ell[6:26, 8:13] = 230
    ell[21:26, 8:24] = 230  # an L: no quarter turn maps it onto itself
    s = rotation_asymmetry(np.stack([ring, ell]))
    assert s[0] < 0.15 and s[1] >= ASYMMETRIC


def test_preview_keeps_images_and_batch_across_method_switches(qtbot, model):
    from app.data.panel import DataPanel
    from app.preview.model import ASYMMETRIC, rotation_asymmetry
    from app.preview.panel import PreviewPanel

    svc = FakeService()
    data = DataPanel(svc)
    qtbot.addWidget(data)
    with qtbot.waitSignal(data.dataset_loaded, timeout=30_000) as sig:
        data.load("builtin:shapes:64", 32)
    ds = sig.args[0]
    panel = PreviewPanel(svc, model)
    qtbot.addWidget(panel)
    panel.show()
    panel.set_method("simclr")
    panel.set_dataset(ds)
    qtbot.waitUntil(panel.is_ready, timeout=30_000)
    first = (list(panel.indices), [t["image"].copy() for r in panel.result["rows"] for t in r["tiles"]])
    # the first image is not rotation-symmetric (a rotation preview of a ring shows four equal tiles)
    assert rotation_asymmetry(np.asarray(ds.images[first[0][:1]]))[0] >= ASYMMETRIC
    panel.set_method("rotnet")
    qtbot.waitUntil(lambda: panel.is_ready() and panel.result["method"] == "rotnet", timeout=30_000)
    assert panel.indices[0] == first[0][0]
    panel.set_method("simclr")
    qtbot.waitUntil(lambda: panel.is_ready() and panel.result["method"] == "simclr", timeout=30_000)
    again = [t["image"] for r in panel.result["rows"] for t in r["tiles"]]
    assert panel.indices == first[0]
    assert len(again) == len(first[1]) and all(np.array_equal(a, b) for a, b in zip(again, first[1]))


def test_a_folder_dropped_on_the_window_opens_in_the_data_view(bare_window, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    folder = tmp_path / "pets"
    folder.mkdir()
    bare_window.show_view("curves")
    chosen = []
    bare_window.run_model.choose_data = lambda spec, *a, **k: chosen.append(spec)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder / "a.png"))])  # a file stands for its folder
    (folder / "a.png").write_bytes(b"")
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(bare_window, enter)  # through Qt's dispatch: the window's own override answers
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(bare_window, drop)
    assert chosen == [str(folder)] and bare_window.tabs.currentWidget() is bare_window.view("data")
    empty = QMimeData()
    refused = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, empty, Qt.MouseButton.LeftButton,
                              Qt.KeyboardModifier.NoModifier)
    refused.ignore()
    QApplication.sendEvent(bare_window, refused)
    assert not refused.isAccepted()  # nothing to open: the drag is not taken
