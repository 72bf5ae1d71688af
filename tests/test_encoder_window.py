"""Any encoder in the window: File > Open encoder…, the encoder entry of the Run history, its map, the Inspector's
Attention tab (heads, their mean, the top-X%-of-the-mass threshold; a point clicked on the map) and "Train from this
encoder". The analysis process's ops run in this process (small random-weight models saved to files, no internet)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QTimer

from engine.analysis import AnalysisWorker, Request
from engine.encoders.loader import state_target
from engine.models import build_backbone

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_thread")]

VIT = "timm:vit_tiny_patch16_224?depth=2&img_size=32&patch_size=8"  # 3 heads, a 4 x 4 grid of patches
DATA = "builtin:shapes:40"


class InProcessAnalysis:
    """The analysis client's ``request`` answered by an AnalysisWorker of this process: the op runs at once, its
    replies reach the callbacks from the event loop, as the client's do."""

    def __init__(self, worker: AnalysisWorker):
        self.worker = worker
        self.calls: list = []

    def request(self, op, args=None, *, kind=None, on_progress=None, on_partial=None, on_done=None, on_error=None,
                on_cancelled=None, **_):
        self.calls.append((op, dict(args or {})))
        rid = len(self.calls)
        out: list = []
        self.worker.emit = out.append
        self.worker.handle(Request(rid, op, dict(args or {})))

        def deliver():
            for r in out:
                fn = {"progress": on_progress, "partial": on_partial, "result": on_done, "error": on_error}.get(r.kind)
                if fn is not None:
                    fn(r if r.kind == "progress" else r.data)

        QTimer.singleShot(0, deliver)
        return rid

    def cancel(self, rid):
        pass

    def ops(self) -> list[str]:
        return [op for op, _ in self.calls]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A ViT in DINO's checkpoint layout and a torchvision ResNet-18's state dict, random weights."""
    torch.manual_seed(3)
    d = tmp_path_factory.mktemp("weights")
    vit = build_backbone(VIT).eval()
    sd = state_target(vit).state_dict()
    torch.save({"teacher": {f"backbone.{k}": v for k, v in sd.items()}}, d / "dino_vit.pth")
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), d / "r18.pth")
    return {"vit": str(d / "dino_vit.pth"), "cnn": str(d / "r18.pth")}


@pytest.fixture(scope="module")
def worker():
    w = AnalysisWorker(lambda r: None, "cpu")
    w.warm.set()
    return w


@pytest.fixture(scope="module")
def opened(worker, files, tmp_path_factory):
    """Both encoders opened in a runs folder (the op the dialog sends)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for key, arch in (("vit", VIT), ("cnn", "torchvision:resnet18")):
        replies: list = []
        worker.emit = replies.append
        worker.handle(Request(1, "open_encoder", {"spec": files[key], "arch": arch, "data": DATA,
                                                  "runs_root": str(root), "image_size": 32}))
        assert replies[-1].kind == "result", replies[-1]
        out[key] = replies[-1].data["run_dir"]
    return root, out


# -- the rules, without Qt ---------------------------------------------------------------------------------------
def test_what_the_open_encoder_form_sends_and_refuses(tmp_path):
    from app.models.encoders import EncoderChoice, downloads

    f = tmp_path / "w.pth"
    f.write_bytes(b"x")
    assert "needs its architecture" in EncoderChoice(str(f)).problem()
    assert "Give an encoder" in EncoderChoice("  ").problem()
    assert "leave the architecture empty" in EncoderChoice("timm:vit_tiny_patch16_224", arch="small_cnn").problem()
    ok = EncoderChoice(str(f), " torchvision:resnet18 ", "teacher", DATA, 64)
    assert ok.problem() == ""
    assert ok.args("/r") == {"spec": str(f), "arch": "torchvision:resnet18", "select": "teacher", "data": DATA,
                             "image_size": 64, "runs_root": "/r"}
    assert "image_size" not in EncoderChoice("torchvision:resnet18").args()
    assert downloads("torchvision:resnet50:IMAGENET1K_V2") and downloads("timm:vit_small_patch16_224.dino")
    assert not downloads("torchvision:resnet50") and not downloads("timm:vit_small_patch16_224:random")
    assert "internet" in EncoderChoice("timm:vit_small_patch16_224").note()
    assert "offline" in EncoderChoice("torchvision:resnet18").note()


def test_the_top_mass_mask_keeps_the_fewest_cells_that_hold_the_share():
    from app.inspector.overlay import keep_only, overlay, parse_indices, top_mass_mask

    rng = np.random.default_rng(0)
    maps = rng.random((5, 2, 4, 4)) ** 3
    maps /= maps.sum(axis=(-2, -1), keepdims=True)
    for keep in (0.1, 0.6, 0.95):
        mask = top_mass_mask(maps, keep)
        for m, k in zip(maps.reshape(-1, 16), mask.reshape(-1, 16)):
            assert m[k].sum() >= keep - 1e-9  # holds the share
            smallest_kept = m[k].min()
            assert m[k].sum() - smallest_kept < keep  # and one cell fewer would not
            assert (m[~k] <= smallest_kept + 1e-12).all()  # the largest cells are the ones kept
    img = np.full((32, 32, 3), 200, np.uint8)
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    kept = keep_only(img, mask)
    assert (kept[:8, :8] == 200).all() and (kept[8:, 8:] < 100).all()
    hot = np.zeros((4, 4))
    hot[3, 3] = 1
    o = overlay(np.zeros((32, 32, 3), np.uint8), hot)
    assert o[28, 28].sum() > o[2, 2].sum()
    assert parse_indices("0, 5 17") == [0, 5, 17] and parse_indices("3-6") == [3, 4, 5, 6]
    for bad in ("a", "-2", "", "7-3"):
        with pytest.raises(ValueError):
            parse_indices(bad)


# -- File > Open encoder… ----------------------------------------------------------------------------------------
def test_the_dialog_opens_an_encoder_and_says_each_problem_in_one_line(qtbot, worker, files, tmp_path):
    from app.window.encoder_dialog import OpenEncoderDialog

    client = InProcessAnalysis(worker)
    root = tmp_path / "runs"
    dlg = OpenEncoderDialog(client, lambda: str(root), DATA, ["small_cnn", "vit_tiny"])
    qtbot.addWidget(dlg)
    dlg.spec.setText("timm:vit_small_patch16_224")
    assert not dlg.arch.isEnabled() and "internet" in dlg.note.text()  # a name names its architecture
    dlg.spec.setText(files["vit"])
    assert dlg.arch.isEnabled()
    dlg.submit()  # no architecture for a file: said at once, nothing asked
    assert "needs its architecture" in dlg.line.text() and client.calls == []
    dlg.arch.setCurrentText("torchvision:resnet18")  # the wrong one: the engine's one line, no folder
    dlg.submit()
    qtbot.waitUntil(lambda: not dlg.busy and "does not fit" in dlg.line.text(), timeout=30_000)
    assert "\n" not in dlg.line.text()
    assert not root.exists() or not any(root.iterdir())  # nothing written for a refused encoder
    dlg.arch.setCurrentText(VIT)
    dlg.size.setValue(32)
    with qtbot.waitSignal(dlg.opened, timeout=60_000) as got:
        dlg.submit()
    reply = got.args[0]
    assert client.calls[-1] == ("open_encoder", {"spec": files["vit"], "arch": VIT, "select": "", "data": DATA,
                                                 "image_size": 32, "runs_root": str(root)})
    assert reply["kind"] == "vit" and (root / reply["run_dir"].split("/")[-1] / "encoder.json").exists()
    assert dlg.result() == dlg.DialogCode.Accepted


def test_the_window_has_file_open_encoder(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("SSLWB_CONFIG_DIR", str(tmp_path / "cfg"))
    from app.window.main_window import MainWindow

    win = MainWindow(start_service=False)
    win.confirm_quit = False
    qtbot.addWidget(win)
    file_menu = win.menuBar().actions()[0].menu()
    (action,) = [a for a in file_menu.actions() if a.text() == "Open encoder…"]
    assert action.shortcut().toString() == "Ctrl+Shift+I"
    keys = [a.shortcut().toString() for m in win.menuBar().actions() for a in m.menu().actions()
            if a.shortcut().toString()]
    assert len(keys) == len(set(keys)), keys  # no shortcut answers two entries
    win.model.set("runs_root", str(tmp_path / "myruns"))
    action.trigger()
    dlg = win.encoder_dialog
    assert dlg.isVisible() and dlg.runs_root() == str(tmp_path / "myruns")
    assert dlg.data.text() == win.model.get("data.spec")  # the data shown is the one it looks at
    dlg.reject()
    win.close()


# -- the Run history and "Train from this encoder" -----------------------------------------------------------------
def test_the_history_lists_an_encoder_entry_that_trains_from_its_weights(qtbot, opened, files):
    from app.history.panel import HistoryPanel
    from app.models.config_model import ConfigModel
    from app.models.encoders import train_from_encoder

    root, dirs = opened
    panel = HistoryPanel()
    qtbot.addWidget(panel)
    panel.set_roots([str(root)])
    qtbot.waitUntil(lambda: panel.table.rowCount() == 2 and not panel.busy, timeout=20_000)
    assert panel.select(dirs["vit"])
    row = next(r for r in range(2) if panel.table.item(r, 0).data(256) == dirs["vit"])
    assert not panel.table.item(row, 0).icon().isNull() and panel.table.item(row, 1).text() == "encoder"
    assert "opened encoder" in panel.table.item(row, 0).toolTip()
    assert not panel.train_btn.isHidden() and panel.train_btn.isEnabled()
    assert panel.resume_btn.isHidden() and not panel.use_btn.isEnabled() and not panel.overlay_btn.isEnabled()
    texts = [a.text() for a in panel.context_menu().actions()]
    assert texts[:2] == ["Open", "Train from this encoder"] and "Use its config" not in texts
    with qtbot.waitSignal(panel.train_from_requested, timeout=10_000) as got:
        panel.train_from_selected()
    cfg = got.args[0]
    assert cfg["init"] == files["vit"] and cfg["init_arch"] == VIT

    model = ConfigModel()
    model.set("method", "byol")
    model.set("data.spec", "builtin:shapes:500")
    text = train_from_encoder(model.set, cfg)
    c = model.config()
    assert (c["init"], c["init_arch"], c["backbone"], c["data"]["image_size"]) == (files["vit"], VIT, VIT, 32)
    assert (c["method"], c["data"]["spec"]) == ("byol", "builtin:shapes:500")  # the user's method and data stay
    assert files["vit"] in text and "Start" in text
    with pytest.raises(ValueError, match="no init"):
        train_from_encoder(model.set, {"backbone": "small_cnn"})


# -- the Inspector's Attention tab and the map ------------------------------------------------------------------------
def inspector(qtbot, worker, run_dir):
    from app.inspector.panel import InspectorPanel

    client = InProcessAnalysis(worker)
    panel = InspectorPanel(client)
    qtbot.addWidget(panel)
    panel.resize(1000, 700)
    panel.set_run(run_dir)
    return panel, client


def test_the_attention_tab_shows_each_head_their_mean_and_the_kept_mass(qtbot, worker, opened):
    _, dirs = opened
    panel, client = inspector(qtbot, worker, dirs["vit"])
    assert "encoder dino_vit.pth" in panel.header.text() and not panel.train_btn.isHidden()
    tab = panel.attention
    panel.tabs.setCurrentWidget(tab)  # it loads when first shown
    qtbot.waitUntil(lambda: tab.result is not None, timeout=30_000)
    assert client.calls[-1][0] == "attention" and client.calls[-1][1]["indices"] == list(range(8))
    assert [tab.head.itemText(i) for i in range(tab.head.count())] == ["mean of heads", "all heads", "head 1",
                                                                       "head 2", "head 3"]
    assert tab.tiles_shown() == 8 * 3 and "3 heads" in tab.status.text()
    mean_tile = tab.grid.images[1].toImage()
    tab.head.setCurrentIndex(tab.head.findText("head 2"))  # redrawn here, nothing asked again
    asked = len(client.calls)
    assert tab.grid.images[1].toImage() != mean_tile and len(client.calls) == asked
    tab.head.setCurrentIndex(tab.head.findText("all heads"))
    assert not tab.keep.isEnabled()  # the threshold picture is the single map's
    assert tab.tiles_shown() == 8 * (2 + 3) and tab.grid.captions[:5] == [tab.grid.captions[0], "mean", "head 1",
                                                                          "head 2", "head 3"]
    tab.head.setCurrentIndex(0)
    assert tab.keep.isEnabled()

    def kept_pixels(i=2):
        img = tab.grid.images[i].toImage()
        arr = np.array([[img.pixelColor(x, y).value() for x in range(0, img.width(), 4)]
                        for y in range(0, img.height(), 4)])
        return int((arr > 0.3 * 255 * 0.2 + 1).sum())

    tab.keep.setValue(20)
    few = kept_pixels()
    tab.keep.setValue(95)
    assert kept_pixels() > few and len(client.calls) == asked  # more of the mass: more of the image kept
    tab.indices.setText("nine")
    tab.refresh()
    assert "not an image number" in tab.status.text() and len(client.calls) == asked


def test_a_cnn_shows_one_feature_map(qtbot, worker, opened):
    _, dirs = opened
    panel, client = inspector(qtbot, worker, dirs["cnn"])
    tab = panel.attention
    tab.indices.setText("1, 4")
    tab.refresh()
    qtbot.waitUntil(lambda: tab.result is not None, timeout=30_000)
    assert tab.result["kind"] == "feature norm" and tab.tiles_shown() == 2 * 3
    assert tab.head.count() == 1 and not tab.head.isEnabled() and "feature-norm" in tab.head.itemText(0)


def test_a_point_clicked_on_the_encoder_s_map_shows_its_attention(qtbot, worker, opened):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from app.map.panel import EmbeddingPanel
    from app.models.run_model import RunModel

    _, dirs = opened
    run = RunModel()
    client = InProcessAnalysis(worker)
    emb = EmbeddingPanel(client)
    qtbot.addWidget(emb)
    emb.resize(1100, 700)
    emb.projection.setCurrentIndex(emb.projection.findData("pca"))
    emb.show()
    qtbot.waitExposed(emb)
    emb.imagePicked.connect(run.choose_point)  # as map_view wires it
    panel, pclient = inspector(qtbot, worker, dirs["vit"])
    run.pointChosen.connect(panel.show_point)  # as inspector_view wires it
    emb.set_run(dirs["vit"])  # the map of the opened encoder, as of a run
    qtbot.waitUntil(lambda: emb.current is not None and emb.request_id is None, timeout=60_000)
    qtbot.waitUntil(lambda: not emb.map.animating, timeout=5_000)
    assert emb.map.count == len(emb.current.indices) > 0 and "map" in client.ops()

    # the Attention tab is not shown: the point waits for it
    row = 7
    vp = emb.map.plot.viewport()
    pos = emb.map.view_pos_of(row)
    QTest.mouseMove(vp, pos)
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
    qtbot.waitUntil(lambda: run.point is not None, timeout=3_000)
    index = int(emb.current.indices[emb.clicked_row])
    assert run.point.run_dir == dirs["vit"] and run.point.index == index
    assert "attention" not in pclient.ops() and panel.attention.indices.text() == str(index)
    panel.tabs.setCurrentWidget(panel.attention)
    qtbot.waitUntil(lambda: panel.attention.result is not None, timeout=30_000)
    assert pclient.calls[-1][1]["indices"] == [index] and list(panel.attention.result["indices"]) == [index]
    # the tab open: a click shows the image at once
    other = next(r for r in range(emb.map.count) if int(emb.current.indices[r]) != index)
    run.choose_point(dirs["vit"], int(emb.current.indices[other]))
    qtbot.waitUntil(lambda: list(panel.attention.result["indices"]) == [int(emb.current.indices[other])],
                    timeout=30_000)
    run.choose_point(dirs["cnn"], 3)  # another run's point is not this one's
    assert panel.attention.indices.text() == str(int(emb.current.indices[other]))


def test_an_opened_encoder_is_shown_like_a_run_in_the_window(qtbot, worker, files, tmp_path, monkeypatch):
    """File > Open encoder… to the end: the map is the view shown, the Run history lists and selects the encoder
    entry, the Inspector says it is an encoder and offers Train from this encoder."""
    monkeypatch.setenv("SSLWB_CONFIG_DIR", str(tmp_path / "cfg"))
    from app.window.main_window import MainWindow

    win = MainWindow(start_service=False)
    win.confirm_quit = False
    qtbot.addWidget(win)
    root = tmp_path / "runs"
    win.model.set("runs_root", str(root))
    real, win.analysis = win.analysis, InProcessAnalysis(worker)  # what the dialog asks (views keep the client)
    try:
        dlg = win.open_encoder_dialog()
    finally:
        win.analysis = real
    dlg.spec.setText(files["cnn"])
    dlg.arch.setCurrentText("torchvision:resnet18")
    dlg.data.setText(DATA)
    dlg.size.setValue(32)
    with qtbot.waitSignal(win.run_model.runChanged, timeout=60_000) as got:
        dlg.submit()
    ref = got.args[0]
    assert ref.origin == "opened" and ref.run_dir.startswith(str(root)) and "encoder-r18.pth" in ref.name
    assert win.tabs.currentWidget() is win.view("embedding")
    assert "Opened r18.pth: loaded" in win.statusBar().currentMessage()
    history, inspector = win.view("history"), win.view("inspector")
    qtbot.waitUntil(lambda: history.selected() == ref.run_dir, timeout=20_000)
    assert not history.train_btn.isHidden()
    assert "encoder r18.pth (torchvision:resnet18)" in inspector.header.text() and not inspector.train_btn.isHidden()
    inspector.train_btn.click()  # Train from this encoder: the Run panel's config starts from its weights
    assert win.tabs.currentWidget() is win.view("run")
    assert (win.model.get("init"), win.model.get("init_arch"), win.model.get("backbone")) == \
        (files["cnn"], "torchvision:resnet18", "torchvision:resnet18")
    assert "press Start" in win.statusBar().currentMessage()
    win.close()


def test_train_from_a_random_weights_name_starts_from_the_weights_the_folder_shows(tmp_path):
    """A random-weights name draws new weights on every load: "Train from this encoder" starts from the folder
    (whose saved weights are the ones the map and the evaluations showed), a named pretrained spec stays a name."""
    import torch

    from app.models.encoders import encoder_init
    from engine.encoders.entry import open_encoder
    from engine.encoders.loader import load_encoder
    from engine.runs import read_json

    folder, le = open_encoder("torchvision:resnet18", runs_root=tmp_path, data="builtin:shapes:64")
    cfg = {**read_json(str(folder / "config.json")), "run_dir": str(folder)}
    init = encoder_init(cfg)
    assert init["init"] == str(folder) and init["init_arch"] == ""
    shown = le.module.state_dict()
    again = load_encoder(init["init"]).module.state_dict()
    fresh = load_encoder("torchvision:resnet18").module.state_dict()
    key = next(k for k, v in shown.items() if v.dtype.is_floating_point and v.numel() > 1000)
    assert torch.equal(again[key], shown[key]) and not torch.equal(fresh[key], shown[key])
    named = encoder_init({**cfg, "init": "torchvision:resnet18:IMAGENET1K_V1"})
    assert named["init"] == "torchvision:resnet18:IMAGENET1K_V1"  # pretrained weights: the name says them all
