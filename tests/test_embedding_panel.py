"""The embedding map and inspector panels, driven as a user would (pytest-qt, offscreen), against a real
analysis process and a tiny run trained by the engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest

from app.common.analysis_client import AnalysisClient
from app.inspector.panel import InspectorPanel
from app.map.geometry import GridIndex, points_in_polygon
from app.map.panel import EmbeddingPanel

sys.path.insert(0, str(Path(__file__).parent))
from test_analysis_worker import train_tiny_run  # noqa: E402  (the session's shared tiny run)

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def client(qapp):
    c = AnalysisClient(warm=False)
    yield c
    c.shutdown()


@pytest.fixture
def panel(qtbot, client, run):
    p = EmbeddingPanel(client)
    qtbot.addWidget(p)
    p.resize(1200, 760)
    p.projection.setCurrentIndex(p.projection.findData("pca"))
    p.show()
    qtbot.waitExposed(p)
    p.set_run(run[0])
    qtbot.waitUntil(lambda: p.current is not None and p.request_id is None, timeout=60_000)
    qtbot.waitUntil(lambda: not p.map.animating, timeout=5_000)
    return p


def screen_pos(p: EmbeddingPanel, row: int) -> QPoint:
    return p.map.view_pos_of(row)


def isolated_row(p: EmbeddingPanel) -> int:
    """A point whose nearest other point is far away on screen (hover and clicks are unambiguous)."""
    pts = np.array([[screen_pos(p, r).x(), screen_pos(p, r).y()] for r in range(p.map.count)], float)
    d = ((pts[:, None] - pts[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    inside = (pts[:, 0] > 30) & (pts[:, 1] > 30) & (pts[:, 0] < p.map.plot.width() - 150) & \
        (pts[:, 1] < p.map.plot.height() - 150)
    score = np.where(inside, d.min(1), -1)
    return int(np.argmax(score))


def test_map_appears_after_short_run(panel, qtbot, run):
    from engine.analysis import list_snapshots
    from engine.eval.projection import project

    snaps = list_snapshots(run[0])
    assert len(snaps) == 2, "one snapshot per epoch"
    assert len(panel.entries) == 2 and panel.timeline.maximum() == 1
    s = panel.current
    with np.load(snaps[-1]["path"]) as z:
        assert np.array_equal(s.indices, z["indices"])
        expected = project(z["features"], "pca")
    assert panel.map.count == len(s.indices) == 200
    assert np.allclose(panel.map.coords, expected, atol=1e-4)
    assert panel.legend.count() == 8 and "epoch 2" in panel.status.text()
    total = sum(int(panel.legend.item(i).text().split("(")[-1].rstrip(")")) for i in range(panel.legend.count()))
    assert total == 200
    assert panel.map.thumbs is not None and panel.map.thumbs.shape == (200, 32, 32, 3)
    # a run opened after it ended still says its kNN where the audience looks (from its metrics.jsonl)
    knn = [json.loads(line) for line in (Path(run[0]) / "metrics.jsonl").read_text().splitlines()]
    knn = [r for r in knn if r.get("kind") == "knn_monitor" and r["step"] <= s.step]
    assert knn and panel.map.headline.isVisible()
    assert panel.map.headline.text().startswith(f"kNN top-1 {knn[-1]['knn_top1']:.2f}")

    # stepping back through the timeline shows the first epoch's map (same images, other features)
    before = panel.map.coords.copy()
    panel.timeline.setValue(0)
    qtbot.waitUntil(lambda: panel.request_id is None and panel.current.key == f"step:{snaps[0]['step']}",
                    timeout=30_000)
    qtbot.waitUntil(lambda: not panel.map.animating, timeout=5_000)
    assert panel.map.count == 200 and not np.allclose(panel.map.coords, before)
    assert "epoch 1" in panel.timeline_label.text()


def test_hover_shows_the_right_thumbnail(panel, qtbot, run):
    from engine.session import resume_config
    from engine.training.rundata import prepare_data

    vp = panel.map.plot.viewport()
    row = isolated_row(panel)
    changes = []
    panel.map.hoveredChanged.connect(changes.append)
    pos = screen_pos(panel, row)
    QTest.mouseMove(vp, pos)
    qtbot.waitUntil(lambda: panel.map.card.isVisible(), timeout=3_000)
    assert panel.map.hovered == row and panel.map.card.index == row
    # the thumbnail is the dataset image the point stands for
    src = prepare_data(resume_config(run[0])).embed_source
    image = src.get([int(panel.current.indices[row])])[0].permute(1, 2, 0).numpy()
    assert np.array_equal(panel.map.thumbs[row], image)
    shown = panel.map.card.image.pixmap().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w = shown.width()
    arr = np.frombuffer(shown.constBits(), np.uint8).reshape(shown.height(), shown.bytesPerLine())[:, :w * 3]
    arr = arr.reshape(shown.height(), w, 3)
    centres = ((np.arange(32) + 0.5) * w / 32).astype(int)
    assert np.abs(arr[centres][:, centres].astype(int) - image.astype(int)).mean() < 4
    label = src.class_names[int(src.labels[int(panel.current.indices[row])])]
    assert label in panel.map.card.text.text() and f"#{int(panel.current.indices[row])}" in panel.map.card.text.text()
    # moving within the same point fires no new hover callback; empty space hides the card
    n = len(changes)
    for dp in (QPoint(1, 0), QPoint(0, 1), QPoint(-1, -1)):
        QTest.mouseMove(vp, pos + dp)
        qtbot.wait(30)  # QTest drops moves that follow each other without an event loop turn
    assert len(changes) == n and panel.map.hovered == row
    QTest.mouseMove(vp, QPoint(3, 3))
    qtbot.waitUntil(lambda: not panel.map.card.isVisible(), timeout=2_000)
    assert panel.map.hovered == -1 and changes[-1] == -1


def test_click_gives_the_nearest_neighbours_in_feature_space(panel, qtbot):
    vp = panel.map.plot.viewport()
    row = isolated_row(panel)
    QTest.mouseMove(vp, screen_pos(panel, row))
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, screen_pos(panel, row))
    qtbot.waitUntil(lambda: panel.clicked_row == row, timeout=3_000)
    k = panel.k.value()
    f = panel.current.features.astype(np.float64)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    sims = f @ f[row]
    sims[row] = -np.inf
    brute = np.argsort(-sims)[:k]
    assert list(panel.neighbor_rows) == list(brute)
    assert panel.neighbors.count() == k
    for cap, r in zip(panel.neighbors.captions, brute):
        assert float(cap.split("\n")[0]) == pytest.approx(sims[r], abs=6e-4)
    # the 2-D map is not what decides: neighbours in the plane differ from neighbours in feature space
    assert np.array_equal(panel.map.focus.getData()[0], [panel.map.coords[row, 0]])


def test_box_and_lasso_selection(panel, qtbot):
    vp = panel.map.plot.viewport()
    panel.mode_buttons["rect"].trigger()
    assert panel.map.vb.mode == "rect"
    c = panel.map.coords
    x0, x1 = np.percentile(c[:, 0], [20, 70])
    y0, y1 = np.percentile(c[:, 1], [30, 80])
    from PySide6.QtCore import QPointF

    def to_screen(x, y):
        return panel.map.plot.mapFromScene(panel.map.vb.mapViewToScene(QPointF(float(x), float(y))))

    a, b = to_screen(x0, y1), to_screen(x1, y0)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    for t in np.linspace(0, 1, 6)[1:]:
        QTest.mouseMove(vp, QPoint(int(a.x() + t * (b.x() - a.x())), int(a.y() + t * (b.y() - a.y()))))
        qtbot.wait(20)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    qtbot.waitUntil(lambda: len(panel.selected_rows) > 0, timeout=3_000)
    lo = panel.map.vb.mapSceneToView(panel.map.plot.mapToScene(a))
    hi = panel.map.vb.mapSceneToView(panel.map.plot.mapToScene(b))
    xs, ys = sorted([lo.x(), hi.x()]), sorted([lo.y(), hi.y()])
    want = np.flatnonzero((c[:, 0] >= xs[0]) & (c[:, 0] <= xs[1]) & (c[:, 1] >= ys[0]) & (c[:, 1] <= ys[1]))
    assert set(panel.selected_rows.tolist()) == set(want.tolist())
    assert panel.sel_grid.count() == len(want)
    assert sum(panel.histogram.series[0][1]) == len(want)
    labels = panel.current.labels[want]
    top = panel.current.class_names[np.bincount(labels).argmax()]
    assert panel.histogram.labels[0] == top

    # lasso: a triangle through the map
    panel.mode_buttons["lasso"].trigger()
    tri = np.array([[c[:, 0].min(), c[:, 1].min()], [c[:, 0].max(), c[:, 1].min()],
                    [c[:, 0].mean(), c[:, 1].max()]])
    panel.map.vb.sigSelection.emit(tri)
    want = points_in_polygon(c, tri)
    assert set(panel.selected_rows.tolist()) == set(np.flatnonzero(want).tolist())
    assert 0 < want.sum() < len(c)


def test_export_files_load_back(panel, qtbot, tmp_path, run):
    from engine.eval.export import read_embedding_csv

    done = []
    panel.export_embedding(str(tmp_path / "map.csv"), done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=20_000)
    assert done[-1].kind == "result", done[-1].data
    s = panel.current
    for part, want in (("features", s.features), ("coords", panel.map.coords), ("labels", s.labels),
                       ("indices", s.indices)):
        assert np.array_equal(np.load(tmp_path / f"map_{part}.npy"), want), part
    back = read_embedding_csv(tmp_path / "map.csv")
    assert np.array_equal(back["features"], s.features) and np.array_equal(back["coords"], panel.map.coords)
    assert back["classes"][0] == s.class_names[int(s.labels[0])]
    assert panel.save_png(str(tmp_path / "map.png"))
    img = QImage(str(tmp_path / "map.png"))
    assert img.width() > 300 and img.height() > 200

    out = []
    panel.export_encoder(str(tmp_path / "enc.safetensors"), callback=out.append, show=False)
    qtbot.waitUntil(lambda: bool(out), timeout=20_000)
    ns: dict = {}
    exec(out[-1].data["example"], ns)
    import torch

    from engine.training.checkpoints import load_run_encoder

    enc, _, _ = load_run_encoder(run[0])
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ns["encoder"].eval()(x), enc(x), atol=1e-5)


def test_live_snapshots_extend_the_timeline_and_move_the_map(panel, qtbot, run):
    from engine import messages as M

    live = [m for m in run[1] if isinstance(m, M.Embedding)][-1]
    rng = np.random.default_rng(0)
    feats = live.features + 0.3 * rng.normal(size=live.features.shape).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    before = panel.map.coords.copy()
    shown = []
    panel.mapShown.connect(shown.append)
    panel.on_engine_message(M.Embedding(live.step + 100, 3.0, feats, live.labels, live.indices))
    assert len(panel.entries) == 3 and panel.timeline.value() == 2
    qtbot.waitUntil(lambda: panel.request_id is None and "step:" + str(live.step + 100) in shown, timeout=20_000)
    qtbot.waitUntil(lambda: not panel.map.animating, timeout=5_000)
    assert panel.map.count == 200 and not np.allclose(panel.map.coords, before)
    assert "epoch 3" in panel.timeline_label.text()
    # back to a saved epoch: its layout is cached and shown without a new request
    panel.timeline.setValue(1)
    assert panel.request_id is None
    qtbot.waitUntil(lambda: not panel.map.animating, timeout=5_000)
    assert np.allclose(panel.map.coords, before, atol=1e-5)


def test_umap_replaces_the_first_map(panel, qtbot):
    finished = []
    panel.layoutFinished.connect(finished.append)
    pca = panel.map.coords.copy()
    panel.projection.setCurrentIndex(panel.projection.findData("umap"))
    qtbot.waitUntil(lambda: "umap" in finished, timeout=120_000)
    qtbot.waitUntil(lambda: not panel.map.animating, timeout=5_000)
    assert "umap" in panel.current.layouts and "UMAP" in panel.status.text()
    assert not np.allclose(panel.map.coords, pca)
    assert np.allclose(panel.map.coords, panel.current.layouts["umap"])
    panel.projection.setCurrentIndex(panel.projection.findData("pca"))  # cached: no request
    assert panel.request_id is None


def test_inspector_evaluates_and_shows_its_views(qtbot, client, run, tmp_path):
    import engine.messages as M

    ins = InspectorPanel(client)
    qtbot.addWidget(ins)
    ins.resize(1100, 700)
    ins.show()
    ins.set_run(run[0])
    ev = ins.evaluation
    ev.probe_epochs.setValue(3)
    ev.evaluate(supervised="none")
    qtbot.waitUntil(lambda: ev.request_id is None, timeout=60_000)
    assert ev.table.rowCount() == 2, ev.status.text()
    assert ev.table.item(0, 0).text().startswith("this run") and ev.table.item(1, 0).text().startswith("random")
    assert ev.table.item(0, 1).text().endswith("%") and len(ev.per_class.labels) == 8
    assert ev.confusion.matrix.sum() == ev.result["num_test"]

    ins.tabs.setCurrentWidget(ins.filters)  # loads on first show
    qtbot.waitUntil(lambda: ins.filters.trained.count() == 32, timeout=20_000)
    ins.tabs.setCurrentWidget(ins.pretext)
    ins.pretext.analyse()
    qtbot.waitUntil(lambda: ins.pretext.request_id is None, timeout=30_000)
    assert "Rotation accuracy" in ins.pretext.status.text() and ins.pretext.confusion.matrix.shape == (4, 4)
    ins.retrieval.k.setValue(5)
    ins.retrieval.search(index=3)
    qtbot.waitUntil(lambda: ins.retrieval.request_id is None, timeout=20_000)
    assert ins.retrieval.grid.count() == 5 and 3 not in ins.retrieval.result["indices"]
    ins.tabs.setCurrentWidget(ins.export)
    qtbot.waitUntil(lambda: "build_backbone('small_cnn', 32)" in ins.export.example.toPlainText(), timeout=20_000)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    ins.on_engine_message(M.Reconstruction(10, 2.0, imgs, imgs, imgs, "mae"))
    assert ins.reconstruction.grid.count() == 12 and "epoch 2" in ins.reconstruction.status.text()
    assert ins.save_png(str(tmp_path / "insp.png"))


def test_analysis_process_crash_leaves_the_gui_alive(qtbot, client):
    crashed, replies = [], []
    client.died.connect(crashed.append)
    client.request("ping", on_reply=replies.append)
    qtbot.waitUntil(lambda: bool(replies), timeout=30_000)
    client._proc.kill()
    qtbot.waitUntil(lambda: bool(crashed), timeout=10_000)
    assert "stopped unexpectedly" in crashed[0] and client.state == "crashed"
    replies.clear()
    client.request("ping", on_reply=replies.append)  # restarts the process
    qtbot.waitUntil(lambda: any(r.kind == "result" for r in replies), timeout=60_000)
    assert client.alive


def test_grid_index_and_polygon_match_brute_force():
    rng = np.random.default_rng(5)
    pts = rng.normal(size=(3000, 2)) * [3.0, 1.0]
    idx = GridIndex(pts)
    for _ in range(200):
        x, y = rng.normal(size=2) * [3.0, 1.0]
        rx, ry = rng.uniform(0.01, 0.5, size=2)
        d = ((pts[:, 0] - x) / rx) ** 2 + ((pts[:, 1] - y) / ry) ** 2
        want = int(np.argmin(d)) if d.min() <= 1 else -1
        assert idx.nearest(x, y, rx, ry) == want
    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
    inside = points_in_polygon(pts, square)
    assert np.array_equal(inside, (np.abs(pts) < 1).all(1))


def test_gui_modules_never_import_torch():
    code = ("import sys; import app.common.analysis_client, app.map.panel, app.inspector.panel; "
            "bad = [m for m in ('torch', 'umap', 'sklearn', 'numba') if m in sys.modules]; print(bad); "
            "sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                       text=True, timeout=120, env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stdout + r.stderr


def test_window_shows_both_views_and_opens_runs_in_them(qtbot, run, monkeypatch, tmp_path):
    monkeypatch.setenv("SSLWB_ANALYSIS_WARMUP", "0")
    monkeypatch.setenv("SSLWB_CONFIG_DIR", str(tmp_path / "config"))
    from app.inspector.panel import InspectorPanel
    from app.map.panel import EmbeddingPanel
    from app.window.main_window import MainWindow

    win = MainWindow(start_service=False)
    win.confirm_quit = False
    qtbot.addWidget(win)
    win.show()
    emb, ins = win.view("embedding"), win.view("inspector")
    assert isinstance(emb, EmbeddingPanel) and isinstance(ins, InspectorPanel)
    assert emb.client is ins.client is win.analysis
    emb.projection.setCurrentIndex(emb.projection.findData("pca"))
    win.open_run(run[0], live=False)
    assert emb.run_dir == ins.run_dir == run[0]
    win.show_view("embedding")
    qtbot.waitUntil(lambda: win.is_view_ready("embedding") and emb.current is not None, timeout=60_000)
    assert emb.map.count == 200 and "rotnet" in ins.header.text()
    proc = win.analysis._proc
    win.close()
    qtbot.waitUntil(lambda: proc is None or not proc.is_alive(), timeout=10_000)


def test_map_from_checkpoint_says_how_many_images_it_shows(panel, qtbot):
    """The tiny run's evaluation set has fewer images than the box asks for: the box then says how many."""
    panel.sample.setValue(5000)
    panel.refresh()  # Map from checkpoint
    qtbot.waitUntil(lambda: panel.request_id is None and panel.current is not None
                    and panel.current.key.startswith("ckpt:") and "#" not in panel.current.key, timeout=120_000)
    assert panel.map.count == len(panel.current.indices) < 5000
    assert panel.sample.value() == panel.map.count


def test_the_headline_fits_a_narrow_map_on_one_line(qtbot):
    """On a narrow map the headline shrinks to fit ("chance 0.12" is not cut off at the map's edge); on a wide one
    it keeps its full size, and it grows back when the map widens."""
    from app.map.map_widget import HEADLINE_MIN_PT, HEADLINE_PT, EmbeddingMap

    m = EmbeddingMap()
    qtbot.addWidget(m)
    m.resize(1200, 600)
    m.show()
    text = "kNN top-1 0.81  ·  random init 0.16  ·  chance 0.12"
    m.set_headline(text, "the final evaluation")
    assert m._headline_pt == HEADLINE_PT and m.headline.width() <= m.width()
    m.resize(600, 600)
    qtbot.waitUntil(lambda: m.headline.width() <= m.width() - 8, timeout=2000)
    assert HEADLINE_MIN_PT <= m._headline_pt < HEADLINE_PT and m.headline.text() == text
    assert m.headline_detail.y() >= m.headline.y() + m.headline.height()  # the detail stays under it
    m.resize(1200, 600)
    qtbot.waitUntil(lambda: m._headline_pt == HEADLINE_PT, timeout=2000)
