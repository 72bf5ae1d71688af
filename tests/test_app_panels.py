"""The panels one by one (offscreen), with an in-process stand-in for the service process."""

from __future__ import annotations

import json
import os
import shlex
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent

pytestmark = pytest.mark.gui


class FakeService:
    """Answers like app.common.worker_client.WorkerClient, by calling engine.worker in this process."""

    is_ready = True

    def __init__(self):
        self.calls = []
        self._n = 0

    def request(self, name, args=None, *, kind=None, on_done=None, on_error=None, on_progress=None, on_cancelled=None):
        import threading

        from engine import worker
        from engine.params import ConfigError

        self._n += 1
        args = args or {}
        self.calls.append((name, args))

        class Reply:
            def progress(self, done, total, detail="", task=""):
                from engine.messages import Progress

                if on_progress:
                    on_progress(Progress(task, done, total, detail))

        def answer():
            try:
                reply()
            except RuntimeError as exc:  # the panel that asked was deleted (its test ended) before this reply
                if "already deleted" not in str(exc):  # came; in the window views live as long as the clients
                    raise

        def reply():
            try:
                if name == "catalogue":
                    res = worker.catalogue()
                elif name == "validate_config":
                    res = worker.validate_config(args["config"])
                elif name == "load_dataset":
                    res = worker.load_dataset_for_view(args, Reply(), threading.Event())
                elif name == "preview":
                    res = worker.preview_plain(args, {})
                else:
                    raise ValueError(f"unknown request {name}")
            except ConfigError as exc:
                on_error and on_error({"message": exc.message, "path": exc.path, "traceback": ""})
                return
            except ValueError as exc:
                on_error and on_error({"message": str(exc), "path": "", "traceback": ""})
                return
            on_done and on_done(res)

        QTimer.singleShot(0, answer)
        return self._n

    def cancel(self, rid):
        pass


@pytest.fixture(scope="module")
def catalogue():
    from engine.worker import catalogue

    return catalogue()


@pytest.fixture
def model(qapp, catalogue):
    from app.models.config_model import ConfigModel

    m = ConfigModel()
    m.set_catalogue(catalogue)
    return m


def _shown_run_panel(qtbot, model):
    """A Run view over ``model``, shown at a laptop's size (what is hidden or visible counts)."""
    from app.run.panel import RunPanel

    panel = RunPanel(FakeService(), model)
    qtbot.addWidget(panel)
    panel.resize(1280, 720)
    panel.show()
    return panel


# -- run panel ---------------------------------------------------------------------------------------
def test_run_form_checks_fields_as_typed(qtbot, model):
    from app.run.panel import RunPanel

    panel = RunPanel(FakeService(), model)
    qtbot.addWidget(panel)
    panel.show()
    row = panel.form.rows["optim.lr"]
    editor = row.editor
    editor.selectAll()
    qtbot.keyClicks(editor, "abc")
    assert row.error.isVisible() and "expected a float" in row.error.text()
    assert model.get("optim.lr") == pytest.approx(2e-3)  # the bad value never reaches the config
    assert not panel.start_btn.isEnabled()
    editor.selectAll()
    qtbot.keyClicks(editor, "-1")
    assert "below the minimum" in row.error.text()
    editor.selectAll()
    qtbot.keyClicks(editor, "0.01")
    assert not row.error.isVisible()
    assert model.get("optim.lr") == pytest.approx(0.01)
    # an int field refuses a fraction; a bound is named
    bs = panel.form.rows["optim.batch_size"]
    bs.editor.selectAll()
    qtbot.keyClicks(bs.editor, "1.5")
    assert bs.error.isVisible()
    bs.editor.selectAll()
    qtbot.keyClicks(bs.editor, "1")
    assert "below the minimum 2" in bs.error.text()
    assert "(or 0: auto)" in bs.error.text()
    bs.editor.selectAll()
    qtbot.keyClicks(bs.editor, "auto")  # the word for 0: the method's batch for the device
    assert not bs.error.isVisible() and model.get("optim.batch_size") == 0
    assert "--batch-size" not in panel.commands.command_line()  # auto is the command line's default
    model.set("optim.batch_size", 48)
    assert bs.editor.text() == "48" and "--batch-size 48" in panel.commands.command_line()
    model.set("optim.batch_size", 0)
    assert bs.editor.text() == "auto"
    bs.editor.selectAll()
    qtbot.keyClicks(bs.editor, "32")
    assert model.get("optim.batch_size") == 32
    qtbot.waitUntil(lambda: panel.start_btn.isEnabled(), timeout=10_000)


def test_switching_method_takes_the_batch_its_tables_were_measured_at(qtbot, model):
    """The window's run of a method is the command line's: its batch size becomes auto (its CPU batch),
    as ``main.py train --method NAME`` leaves it, and the Method defaults button restores auto too."""
    from app.run.panel import RunPanel
    from engine.config import default_config
    from engine.methods import get_method_class
    from engine.training.batch import cpu_batch

    panel = RunPanel(FakeService(), model)
    qtbot.addWidget(panel)
    assert model.get("optim.batch_size") == 64  # the default first run: SimCLR, a small batch
    notes = model.set_method("context")
    assert "batch size auto" in notes and model.get("optim.batch_size") == 0
    cli = default_config("context", data={"spec": model.get("data.spec")}).to_dict()
    assert model.config()["optim"] == cli["optim"]
    assert cpu_batch(get_method_class("context")) == 128  # what auto trains with on a CPU
    assert "--batch-size" not in panel.commands.command_line()  # the CLI's default: nothing to spell out
    model.set("optim.batch_size", 32)
    panel.reset_to_defaults()
    assert model.get("optim.batch_size") == 0
    model.set("optim.batch_size", 32)
    model.set_method("counting")
    assert model.get("optim.batch_size") == 0 and model.get("optim.lr") == cli["optim"]["lr"]


def test_run_view_offers_the_recipe_that_learns_and_applies_it(qtbot, model):
    """Colorization on the default shapes: before Start the Run view says why and what would change, and its
    button sets the data spec (keeping the count) through the config model; the offer goes once the config
    follows it, and a method without a recipe shows none."""
    panel = _shown_run_panel(qtbot, model)
    box = panel.picker.recipe
    assert model.method == "simclr" and not box.isVisible()
    panel.select_method("colorization")
    assert box.isVisible() and "builtin:shapes:2000?colours=typical" in box.text.text()
    assert "learns" in box.button.text() and box.button.isEnabled()
    assert box.button.width() >= box.button.sizeHint().width()  # its words fit
    with qtbot.waitSignal(panel.message) as sig:
        qtbot.mouseClick(box.button, Qt.MouseButton.LeftButton)
    assert model.get("data.spec") == "builtin:shapes:2000?colours=typical"
    recipe = model.method_info()["recipe"]["overrides"]
    for path, value in recipe.items():
        if path != "data.spec":
            assert model.get(path) == value
    assert "builtin:shapes:2000" in sig.args[0] and "was" in sig.args[0]  # it says what it was
    assert panel.form.rows["data.spec"].editor.text() == "builtin:shapes:2000?colours=typical"
    assert "colours=typical" in panel.commands.command_line()
    assert not box.isVisible()
    model.set("data.spec", "builtin:shapes:500")
    assert box.isVisible()  # another dataset: offered again
    panel.select_method("simclr")
    assert not box.isVisible()
    panel.select_method("colorization")
    assert box.isVisible()
    model.set("data.spec", "shapes:500?colors=typical")
    model.set("minutes", 30.0)
    assert not box.isVisible()  # already follows it, in other words (and a longer budget is fine)


def test_a_recipe_in_epochs_brings_the_batch_it_was_measured_at(qtbot, model, tmp_path):
    """CPC's recipe on photographs counts epochs: the Run view shows the batch going from auto to the one it was
    measured at (a GPU's auto batch would give fewer updates) and its button sets it."""
    panel = _shown_run_panel(qtbot, model)
    box = panel.picker.recipe
    panel.select_method("cpc")
    model.set("data.spec", str(tmp_path / "photos"))
    assert model.get("optim.batch_size") == 0 and box.isVisible()
    assert "optim.batch_size: auto" in box.text.text() and "<b>64</b>" in box.text.text()
    qtbot.mouseClick(box.button, Qt.MouseButton.LeftButton)
    assert (model.get("epochs"), model.get("optim.batch_size"), model.get("minutes")) == (2, 64, 0.0)
    assert "--batch-size 64" in panel.commands.command_line() and not box.isVisible()


def test_run_view_offers_the_photo_recipe_on_photographs(qtbot, model, tmp_path):
    """A method whose defaults fall short on photographs offers its photo recipe when the data is a folder of
    images, and not on the built-in shapes; colorization on photographs offers its photo recipe where it has one,
    never the built-in set (the user's photographs stay)."""
    photo = next(m["name"] for m in model.methods() if m.get("photo_recipe") and not m.get("recipe"))
    panel = _shown_run_panel(qtbot, model)
    box = panel.picker.recipe
    panel.select_method(photo)
    model.set("data.spec", "builtin:shapes:500")
    assert not box.isVisible()
    folder = str(tmp_path / "photos")
    model.set("data.spec", folder)
    assert box.isVisible()
    wanted = model.method_info()["photo_recipe"]
    assert wanted["why"][:40] in box.text.text()
    qtbot.mouseClick(box.button, Qt.MouseButton.LeftButton)
    for path, value in wanted["overrides"].items():
        assert model.get(path) == value
    assert model.get("data.spec") == folder and not box.isVisible()
    panel.select_method("colorization")  # on photographs: its photo recipe, or its built-in one where it has none
    assert ("colours=typical" in box.text.text()) is not bool(model.method_info().get("photo_recipe"))


def test_a_recipe_short_of_the_aim_is_offered_as_such_and_sets_the_method_options(qtbot, model, tmp_path):
    """Counting on photographs: nothing reaches the aim, but its recipe beats random init; the Run view offers it,
    headed as short of the aim, with the measured line saying so, and its button sets the method's own options."""
    panel = _shown_run_panel(qtbot, model)
    box = panel.picker.recipe
    panel.select_method("counting")
    model.set("data.spec", str(tmp_path / "photos"))
    assert box.isVisible() and "short of the aim" in box.text.text() and "train_last_block" in box.text.text()
    assert "beats random init, short of the aim" in panel.picker.measured.text()
    qtbot.mouseClick(box.button, Qt.MouseButton.LeftButton)
    assert model.get("method_options.train_last_block") is False and model.get("epochs") == 6
    assert "train_last_block=false" in panel.commands.command_line().lower() and not box.isVisible()
    panel.select_method("mae")  # its recipe there changes the backbone: the form shows the new one
    assert box.isVisible() and "vit_mini_patch8" in box.text.text() and "short of the aim" in box.text.text()
    qtbot.mouseClick(box.button, Qt.MouseButton.LeftButton)
    assert model.get("backbone") == "vit_mini_patch8" and model.get("epochs") == 8 and not box.isVisible()
    assert panel.form.rows["backbone"].editor.currentText() == "vit_mini_patch8"
    assert "--backbone vit_mini_patch8" in panel.commands.command_line()


def test_run_view_says_how_the_defaults_did_on_data_like_the_configs(qtbot, model, tmp_path):
    """Before Start, under the description: the measured kNN of the chosen method's defaults on data like the
    config's, against an untrained encoder; it follows the method and the data, and goes where nothing was
    measured."""
    panel = _shown_run_panel(qtbot, model)
    line = panel.picker.measured
    panel.select_method("counting")
    model.set("data.spec", "builtin:shapes:500")
    shapes = model.method_info()["measured"]["shapes"]
    assert line.isVisible() and "the built-in shapes" in line.text()
    assert f"{shapes['knn']:.3f} against {shapes['random_init']:.3f}" in line.text()
    model.set("data.spec", str(tmp_path / "photos"))
    assert "cifar10-small" in line.text()
    panel.select_method("simclr")
    assert f"{model.method_info()['measured']['photos']['knn']:.3f}" in line.text()
    model.set("data.spec", "builtin:shapes?colours=typical")
    assert not line.isVisible()  # nothing measured on that set



def test_the_method_list_marks_each_methods_measured_gain_on_the_data(qtbot, model):
    """Each method in the list carries its defaults' measured kNN gain on data like the config's, ticked where it
    meets the aim; it follows the data, and goes where nothing was measured."""
    from app.run.method_picker import BADGE
    panel = _shown_run_panel(qtbot, model)
    items = {panel.picker.methods.item(k).data(Qt.ItemDataRole.UserRole): panel.picker.methods.item(k)
             for k in range(panel.picker.methods.count())}

    def badge(name):
        return items[name].data(BADGE) or ""

    model.set("data.spec", "builtin:shapes:500")
    simclr, split = model.method_info("simclr")["measured"], model.method_info("split_brain")["measured"]
    assert badge("simclr").startswith(f"{simclr['shapes']['knn'] - simclr['shapes']['random_init']:+.2f} \u2713")
    assert badge("split_brain").startswith("-") and "\u2713" not in badge("split_brain")
    assert "against" in items["counting"].toolTip()  # the tooltip says it in words
    model.set("data.spec", "/data/photos")
    assert badge("simclr").startswith(f"{simclr['photos']['knn'] - simclr['photos']['random_init']:+.2f}")
    assert badge("split_brain").startswith(f"{split['photos']['knn'] - split['photos']['random_init']:+.2f}")
    model.set("data.spec", "builtin:shapes?colours=typical")
    assert badge("simclr") == "" and badge("supervised") == ""


def test_engine_validation_lands_next_to_the_field(qtbot, model):
    from app.run.panel import RunPanel

    panel = RunPanel(FakeService(), model)
    qtbot.addWidget(panel)
    panel.show()
    panel.select_method("mae")
    model.set("backbone", "small_cnn")  # MAE needs a ViT
    qtbot.waitUntil(lambda: panel.form.rows["backbone"].error.isVisible(), timeout=10_000)
    assert "ViT" in panel.form.rows["backbone"].error.text().replace("VIT", "ViT")
    assert not panel.start_btn.isEnabled()
    model.set("backbone", "auto")
    qtbot.waitUntil(lambda: not panel.form.rows["backbone"].error.isVisible(), timeout=10_000)
    qtbot.waitUntil(lambda: panel.start_btn.isEnabled(), timeout=10_000)
    # method options get their own fields from the engine's specs
    assert "method_options.mask_ratio" in panel.form.rows
    row = panel.form.rows["method_options.mask_ratio"]
    row.editor.selectAll()
    qtbot.keyClicks(row.editor, "0.99")
    assert "above the maximum" in row.error.text()


def test_start_emits_a_validated_config(qtbot, model):
    from app.run.panel import RunPanel

    panel = RunPanel(FakeService(), model)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.start_requested, timeout=10_000) as sig:
        qtbot.mouseClick(panel.start_btn, Qt.MouseButton.LeftButton)
    cfg = sig.args[0]
    from engine.config import RunConfig

    assert RunConfig.from_dict(cfg).to_dict() == cfg == model.config()


def test_copy_as_command_reproduces_the_config(qtbot, model, qapp):
    from app.run.panel import RunPanel
    from engine.cli import build_parser, config_from_args

    panel = RunPanel(FakeService(), model)
    qtbot.addWidget(panel)
    panel.select_method("rotnet")
    model.set("optim.batch_size", 48)
    model.set("name", "my first run")
    model.set("eval.knn_k", 7)
    model.set_option("rotnet", "crop_scale_min", 0.3)
    model.set("minutes", 0.0)
    model.set("epochs", 4)
    panel.copy_command()
    text = qapp.clipboard().text()
    assert text == panel.command.toPlainText()
    argv = shlex.split(text)
    assert argv[:3] == ["python", "main.py", "train"]
    got = config_from_args(build_parser().parse_args(argv[2:])).to_dict()
    assert got == model.config()


def test_save_and_load_config(qtbot, model, tmp_path):
    from app.run.panel import RunPanel

    panel = RunPanel(FakeService(), model)
    qtbot.addWidget(panel)
    model.set("optim.lr", 0.005)
    model.set_option("simclr", "temperature", 0.3)
    path = tmp_path / "cfg.json"
    panel.save_config(str(path))
    saved = model.config()
    assert json.loads(path.read_text()) == saved
    model.set("optim.lr", 0.1)
    model.set_method("rotnet")
    assert panel.load_config(str(path))
    assert model.config() == saved
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert not panel.load_config(str(bad))
    assert "Could not read" in panel.general_error.text() and not panel.general_error.isHidden()


# -- data panel --------------------------------------------------------------------------------------
def _image_folder(root: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    (root / "dogs" / "broken.jpg").write_bytes(b"not an image at all")
    return root


def test_data_panel_drop_folder_lists_classes_and_skipped_files(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("SSLWB_CACHE_DIR", str(tmp_path / "cache"))
    from app.data.panel import DataPanel

    folder = _image_folder(tmp_path / "imgs")
    panel = DataPanel(FakeService())
    qtbot.addWidget(panel)
    panel.show()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(panel.dataset_loaded, timeout=30_000) as sig:
        panel.dropEvent(ev)
    ds = sig.args[0]
    assert ds.spec == str(folder) and len(ds) == 6
    assert [panel.classes.item(r, 0).text() for r in range(panel.classes.rowCount())] == ["cats", "dogs"]
    assert [panel.classes.item(r, 1).text() for r in range(2)] == ["3", "3"]
    assert not panel.skipped_box.isHidden() and panel.skipped.rowCount() == 1
    assert panel.skipped.item(0, 0).text() == "broken.jpg" and panel.skipped.item(0, 1).text()
    assert panel.grid.model_.rowCount() == 6
    # a missing folder is a clear message, and the shown dataset stays
    panel.folder.setText(str(tmp_path / "missing"))
    panel.load_from_ui()
    qtbot.waitUntil(lambda: "does not exist" in panel.status.text(), timeout=10_000)
    assert panel.dataset is ds and panel.load_btn.isEnabled()


def test_data_panel_offers_colours_that_follow_the_shape(qtbot):
    """The Data panel's third lesson switch writes ``colours=typical``; with the light lesson it combines, the
    colour shortcut (every image its own colours) turns it off; a spec shows in the switches."""
    from app.data.panel import DataPanel

    panel = DataPanel(FakeService())
    qtbot.addWidget(panel)
    panel.count.setValue(800)
    panel.typical.setChecked(True)
    assert panel.spec_from_ui() == "builtin:shapes:800?colours=typical"
    panel.light.setChecked(True)
    assert panel.spec_from_ui() == "builtin:shapes:800?shortcut=light&colours=typical"
    panel.shortcut.setChecked(True)
    assert not panel.typical.isChecked() and panel.spec_from_ui() == "builtin:shapes:800?shortcut=colour"
    panel.set_spec("builtin:shapes:300?colours=typical")
    assert panel.typical.isChecked() and not panel.shortcut.isChecked() and panel.count.value() == 300


def test_thumbnail_grid_stays_quick_at_50k(qtbot, tmp_path):
    from app.data.thumbnails import ThumbnailView
    from app.models.dataset import ViewDataset

    n = 50_000
    path = tmp_path / "big.npy"
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 32, 32, 3))
    arr[:] = (np.arange(n, dtype=np.uint32)[:, None, None, None] % 251).astype(np.uint8)
    arr.flush()
    del arr
    labels = np.arange(n) % 10
    ds = ViewDataset(spec="big", image_size=32, images=np.load(path, mmap_mode="r"), labels=labels,
                     class_names=[f"c{i}" for i in range(10)])
    view = ThumbnailView()
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    t0 = time.perf_counter()
    view.model_.set_dataset(ds)
    qtbot.waitUntil(lambda: view.visualRect(view.model_.index(0)).isValid(), timeout=10_000)
    view.grab()
    first = time.perf_counter() - t0
    # scroll through: every frame only touches the visible rows
    bar = view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=20_000)
    frames = []
    for pos in np.linspace(0, bar.maximum(), 12).astype(int):
        bar.setValue(int(pos))
        t = time.perf_counter()
        view.viewport().grab()
        frames.append(time.perf_counter() - t)
    assert len(view.model_._cache) <= view.model_._cache_size
    img = view.model_.data(view.model_.index(n - 1), Qt.ItemDataRole.DecorationRole)
    assert img.pixelColor(0, 0).red() == (n - 1) % 251
    assert first < 5.0 and np.median(frames) < 0.25, (first, frames)  # generous: the machine is shared
    view.model_.set_filter(np.flatnonzero(labels == 3))
    assert view.model_.rowCount() == n // 10


# -- curves --------------------------------------------------------------------------------------------
def test_curves_append_redraw_and_export(qtbot, tmp_path):
    from app.curves.model import ema
    from app.curves.panel import CurvesPanel
    from engine import messages as M

    panel = CurvesPanel()
    qtbot.addWidget(panel)
    panel.resize(1200, 700)
    panel.show()
    panel.start_live("test run")
    n = 100_000
    run = panel.runs["main"]
    steps = np.arange(1, n + 1, dtype=np.float64)
    block = np.stack([steps, steps / 100, steps / 10, 5 * np.exp(-steps / 30000) + 0.01 * np.sin(steps)])
    run.series("loss", "step").extend(block)
    run.dirty.add("loss")
    panel._redraw()
    # appends stay cheap at 100k points: one message + one redraw
    times = []
    for k in range(20):
        t = time.perf_counter()
        panel.on_engine_message(M.StepMetrics(n + k + 1, (n + k + 1) / 100, {"loss": 1.0, "lr": 0.1}, 0.0))
        panel._redraw()
        times.append(time.perf_counter() - t)
    assert panel.point_count("loss") == n + 20
    assert np.median(times) < 0.1, times
    panel.on_engine_message(M.EvalResult("knn_monitor", 10, 1.0, {"knn_top1": 0.5, "knn_top5": 0.9,
                                                                  "collapse_std": 0.7}))
    panel.on_engine_message(M.EvalResult("final", 20, 2.0, {"knn_top1": 0.61, "linear_top1": 0.66}))
    panel._redraw()
    # top-1 and top-5 share the kNN plot, told apart by a legend
    assert {("main", "knn_top1", "line"), ("main", "knn_top5", "line")} <= set(panel.items)
    assert panel.plots["knn_top1"].legend.isVisible()
    assert "61.0%" in panel.final_label.text() and "66.0%" in panel.final_label.text()
    # smoothing is TensorBoard's debiased EMA
    y = np.array([1.0, 3.0, 2.0, 5.0])
    ref, s = [], 0.0
    for i, v in enumerate(y):
        s = 0.6 * s + 0.4 * v
        ref.append(s / (1 - 0.6 ** (i + 1)))
    np.testing.assert_allclose(ema(y, 0.6), ref)
    panel.log_loss.setChecked(True)
    panel._redraw()
    csv_path = tmp_path / "curves.csv"
    rows = panel.export_csv(str(csv_path))
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "run,metric,step,epoch,time_s,value" and len(lines) == rows + 1
    assert rows == (n + 20) + 20 + 3  # loss, lr, the kNN top-1, top-5 and collapse points
    assert panel.export_png(str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_curves_x_range_grows_in_steps_and_stops_following_after_a_zoom(qtbot):
    """A range that changes with every point redraws every axis every frame (2.5x the paint time)."""
    from app.curves.model import round_up
    from app.curves.panel import CurvesPanel
    from engine import messages as M

    assert [round_up(v) for v in (9, 10, 580, 1000, 0.3)] == [10, 15, 800, 1500, 0.4]
    panel = CurvesPanel()
    qtbot.addWidget(panel)
    panel.resize(1000, 600)
    panel.show()
    panel.start_live("test run")
    ranges = []
    for step in range(1, 401):
        panel.on_engine_message(M.StepMetrics(step, step / 100, {"loss": 2.0 - step / 1000, "lr": 0.1}, step * 0.1))
        panel._redraw()
        ranges.append(tuple(round(v, 6) for v in panel.plots["loss"].vb.viewRange()[0]))
    assert len(set(ranges)) <= 20  # 400 points: at most 8 ranges a decade (1, 1.5, 2, 3, ... 400 -> 500)
    left, right = ranges[-1]
    assert left <= 1 and 400 <= right <= 500
    # every plot shares it
    assert all(abs(p.vb.viewRange()[0][1] - right) < 1e-6 for p in panel.plots.values())
    # a zoom by the user: the range stays where the user put it
    panel.plots["loss"].vb.setXRange(100, 200, padding=0)
    panel.plots["loss"].vb.sigRangeChangedManually.emit([True, False])
    for step in range(401, 900):
        panel.on_engine_message(M.StepMetrics(step, step / 100, {"loss": 1.0, "lr": 0.1}, step * 0.1))
    panel._redraw()
    assert panel.plots["loss"].vb.viewRange()[0] == pytest.approx([100, 200])
    # the auto-range button: following again
    panel.plots["loss"].vb.enableAutoRange(x=True)
    panel.on_engine_message(M.StepMetrics(900, 9.0, {"loss": 1.0, "lr": 0.1}, 90.0))
    panel._redraw()
    lo, hi = panel.plots["loss"].vb.viewRange()[0]
    assert lo <= 1 and 900 <= hi <= 1000


def _fake_headless_run(root: Path, steps: int) -> tuple[Path, object]:
    """A run folder as `main.py train` writes it (same writer classes), still running."""
    from engine.config import RunConfig
    from engine.runs import MetricsLog, write_json

    d = root / "20990101-000000-rotnet-shapes"
    d.mkdir(parents=True)
    cfg = RunConfig(method="rotnet")
    cfg.save(d / "config.json")
    write_json(d / "status.json", {"state": "running", "pid": os.getpid(), "host": socket.gethostname(),
                                   "updated": time.time(), "started": time.time(), "step": steps, "epoch": 0,
                                   "elapsed_s": 1.0, "last_knn": None})
    log = MetricsLog(d / "metrics.jsonl", flush_every_s=0)
    for s in range(1, steps + 1):
        log.write({"type": "step", "step": s, "epoch": s / 10, "time": s * 0.1, "loss": 2.0 - s * 0.01,
                   "lr": 0.001, "images_per_s": 100.0, "pretext_acc": 0.25})
    log.flush()
    return d, log


def test_history_follows_a_run_written_elsewhere(qtbot, tmp_path):
    from app.curves.panel import CurvesPanel
    from app.history.panel import HistoryPanel
    from engine.runs import write_json

    run_dir, log = _fake_headless_run(tmp_path / "runs", 5)
    hist = HistoryPanel()
    curves = CurvesPanel()
    qtbot.addWidget(hist)
    qtbot.addWidget(curves)
    hist.open_requested.connect(lambda p, live: curves.open_run(p, live=live))
    hist.set_roots([str(tmp_path / "runs")])
    qtbot.waitUntil(lambda: len(hist.infos) == 1, timeout=10_000)
    assert hist.infos[0].live and hist.table.item(0, 5).text().startswith("live")
    assert hist.select(str(run_dir))
    assert not hist.delete_btn.isEnabled()  # never delete a run that is being written
    hist.open_selected()
    qtbot.waitUntil(lambda: curves.point_count("loss") == 5, timeout=10_000)
    for s in range(6, 16):  # the other process writes on
        log.write({"type": "step", "step": s, "epoch": s / 10, "time": s * 0.1, "loss": 1.0, "lr": 0.001,
                   "images_per_s": 100.0})
    log.write({"type": "eval", "kind": "knn_monitor", "step": 15, "epoch": 1, "knn_top1": 0.4})
    log.flush()
    qtbot.waitUntil(lambda: curves.point_count("loss") == 15 and curves.point_count("knn_top1") == 1,
                    timeout=10_000)
    # it finishes: the history shows it, the final numbers appear
    log.write({"type": "eval", "kind": "final", "step": 15, "epoch": 1, "knn_top1": 0.5})
    log.close()
    write_json(run_dir / "status.json", {"state": "finished", "pid": os.getpid(), "updated": time.time(),
                                         "step": 15, "epoch": 1, "elapsed_s": 2.0})
    write_json(run_dir / "results.json", {"knn_top1": 0.5})
    hist.refresh()
    qtbot.waitUntil(lambda: hist.infos and hist.infos[0].state == "finished", timeout=10_000)
    assert hist.table.item(0, 7).text() == "50.0%"


def test_an_empty_history_says_how_to_make_a_run(qtbot, tmp_path):
    from app.history.panel import HistoryPanel

    hist = HistoryPanel()
    qtbot.addWidget(hist)
    hist.set_roots([str(tmp_path / "runs")])
    qtbot.waitUntil(lambda: "No runs there yet" in hist.where.text(), timeout=10_000)
    assert hist.where.text().startswith(f"Runs from: {tmp_path / 'runs'}")
    assert "press Start in the Run panel" in hist.where.text() and "Add folder" in hist.where.text()
    _fake_headless_run(tmp_path / "runs", 3)
    hist.refresh()
    qtbot.waitUntil(lambda: len(hist.infos) == 1, timeout=10_000)
    assert hist.where.text() == f"Runs from: {tmp_path / 'runs'}"  # a run there: only where they come from


def test_history_deletes_only_after_confirmation(qtbot, tmp_path):
    from app.history.panel import HistoryPanel
    from engine.runs import write_json

    run_dir, log = _fake_headless_run(tmp_path / "runs", 3)
    log.close()
    write_json(run_dir / "status.json", {"state": "stopped", "updated": time.time(), "step": 3})
    hist = HistoryPanel()
    qtbot.addWidget(hist)
    hist.set_roots([str(tmp_path / "runs")])
    qtbot.waitUntil(lambda: len(hist.infos) == 1, timeout=10_000)
    assert hist.select(str(run_dir))
    asked = []
    hist.confirm = lambda parent, text: asked.append(text) or False
    assert not hist.delete_selected()
    assert run_dir.exists() and str(run_dir) in asked[0]
    hist.confirm = lambda parent, text: True
    assert hist.delete_selected()
    qtbot.waitUntil(lambda: not run_dir.exists() and not hist.infos, timeout=10_000)
    assert hist.table.rowCount() == 0


# -- the preview's tiles ---------------------------------------------------------------------------------
def test_tile_view_draws_any_method_rows(qtbot):
    """A method the GUI has never heard of (issue 5 adds many) draws from its tiles alone."""
    from app.preview.tiles import TileView

    img = np.zeros((16, 16, 3), np.uint8)
    img[:, 8:] = 255
    res = {"rows": [{"title": "image 1", "tiles": [
        {"image": img, "caption": "centre patch", "grid": 3, "boxes": [(0, 0, 8, 8, "#ff0000", "7")],
         "highlight": True},
        {"image": img[:8], "caption": "neighbour 7 of 8 (a long caption that wraps onto the next line)",
         "grid": 0, "boxes": [], "highlight": False}]}] * 3}
    view = TileView()
    qtbot.addWidget(view)
    view.resize(500, 400)
    view.set_tile_px(96)
    view.set_result(res)
    view.show()
    assert view.tile_count() == 6
    shot = view.grab().toImage()
    # the highlight frame (orange) and the red box are drawn
    colors = {shot.pixelColor(x, y).name() for x in range(0, shot.width(), 2) for y in range(0, shot.height(), 2)}
    assert "#ff8c00" in colors and "#ff0000" in colors
    # three blocks of two tiles flow into two columns at this width: two block rows
    assert 2 * 96 < view.minimumHeight() < 3 * 96 + 3 * view._caption_h()


def test_curves_overlay_runs_for_comparison(qtbot, tmp_path):
    from app.curves.panel import CurvesPanel

    a, log_a = _fake_headless_run(tmp_path / "a", 8)
    b, log_b = _fake_headless_run(tmp_path / "b", 5)
    log_a.close()
    log_b.close()
    curves = CurvesPanel()
    qtbot.addWidget(curves)
    curves.show()
    curves.open_run(str(a))
    other = curves.open_run(str(b), overlay=True)
    assert curves.open_run(str(b), overlay=True) == other  # the same run is overlaid once
    qtbot.waitUntil(lambda: curves.point_count("loss") == 8 and curves.point_count("loss", other) == 5,
                    timeout=10_000)
    qtbot.waitUntil(lambda: curves.is_ready(), timeout=10_000)
    loss_items = [k for k in curves.items if k[1] == "loss" and k[2] == "line"]
    assert {k[0] for k in loss_items} == {"main", other}
    assert curves.plots["loss"].legend.isVisible()  # two runs: a legend tells them apart
    rows = curves.export_csv(str(tmp_path / "both.csv"))
    assert rows == 8 * 4 + 5 * 4  # loss, lr, images/s, pretext acc of both runs
    curves.clear_overlays()
    assert curves.overlay_ids() == [] and curves.point_count("loss") == 8


def test_settings_survive_a_relaunch(qtbot, tmp_path, monkeypatch, catalogue):
    """Layout, last dataset and last config come back (QSettings under SSLWB_CONFIG_DIR)."""
    monkeypatch.setenv("SSLWB_CONFIG_DIR", str(tmp_path / "cfg"))
    from app.common import settings as S
    from app.window.main_window import MainWindow

    win = MainWindow(start_service=False)
    qtbot.addWidget(win)
    win.model.set_catalogue(catalogue)
    win.model.set_method("rotnet")
    win.model.set("optim.lr", 0.0042)
    win.model.set_option("mae", "mask_ratio", 0.6)  # another method's option is kept too
    S.settings().setValue("data/spec", "builtin:shapes:321")
    win.resize(700, 500)  # inside the offscreen screen (800x600): restoring clamps to the screen
    win.show_view("history")
    win.confirm_quit = False
    win.save_settings()
    assert (tmp_path / "cfg" / "ssl-workbench.ini").exists()

    again = MainWindow(start_service=False)
    qtbot.addWidget(again)
    assert again.model.method == "rotnet" and again.model.get("optim.lr") == pytest.approx(0.0042)
    assert again.model.options_for("mae")["mask_ratio"] == pytest.approx(0.6)
    assert again.view("data").spec_from_ui() == "builtin:shapes:321"
    assert again.tabs.tabText(again.tabs.currentIndex()) == "Run history"
    assert (again.width(), again.height()) == (700, 500)


def test_copy_torchrun_and_save_slurm_script(qtbot, qapp, model, tmp_path):
    """'Copy as command' also offers the torchrun line and writes a Slurm script for the current config."""
    import shlex

    from app.run.panel import RunPanel
    from engine.cli import build_parser, config_from_args

    panel = RunPanel(FakeService(), model)
    qtbot.addWidget(panel)
    panel.select_method("simclr")
    model.set("epochs", 3)
    model.set("minutes", 0.0)
    assert [a.text() for a in panel.copy_btn.menu().actions()][1:] == [
        "Copy torchrun line (every GPU of one machine)", "Copy torchrun line (several nodes, c10d rendezvous)",
        "Save Slurm script…"]
    for nnodes in (1, 2):
        text = panel.copy_torchrun(nnodes)
        assert qapp.clipboard().text() == text and text.startswith("torchrun ")
        argv = shlex.split(text.replace("$", ""))
        got = config_from_args(build_parser().parse_args(argv[argv.index("main.py") + 1:])).to_dict()
        assert got == model.config()
    path = tmp_path / "job.sh"
    panel.save_slurm(str(path))
    script = path.read_text()
    assert script.startswith("#!/bin/bash") and "srun torchrun" in script and "--rdzv-backend c10d" in script
    panel._validate_timer.stop()  # no validation answer may arrive after the panel is gone
    qtbot.wait(50)


def test_the_chosen_method_stays_in_sight_beside_a_long_description(qtbot):
    """The method's description (with what it needs, measured) scrolls in its own share of the picker: the
    list keeps its height and shows the chosen method, at a 1280x720 window's height as at any."""
    from app.models.config_model import ConfigModel
    from app.run.method_picker import MethodPicker
    from engine.worker import catalogue

    model = ConfigModel()
    model.set_catalogue(catalogue())
    picker = MethodPicker(model)
    qtbot.addWidget(picker)
    picker.resize(290, 620)
    picker.show()
    picker.fill()
    for name in ("simclr", "tracking"):
        model.set_method(name)
        picker.sync()
        qtbot.wait(20)
        item = picker.methods.currentItem()
        assert item.data(Qt.ItemDataRole.UserRole) == name
        assert picker.methods.viewport().rect().intersects(picker.methods.visualItemRect(item)), name
        assert picker.methods.height() >= picker.description_area.height()


def test_the_method_texts_put_what_it_learns_before_what_was_measured(qtbot, model):
    """The Pretext preview says what the method learns, not the measurement log; the Run view's description
    gives that log after the paper, and the list's tooltip is what it learns."""
    from app.preview.panel import PreviewPanel
    from app.run.panel import RunPanel

    info = model.method_info("counting")
    assert info["needs"] and info["about"] and info["needs"] not in info["about"]
    preview = PreviewPanel(FakeService(), model)
    qtbot.addWidget(preview)
    preview.set_method("counting")
    assert info["about"][:60] in preview.info.text() and info["needs"][:60] not in preview.info.text()
    run = RunPanel(FakeService(), model)
    qtbot.addWidget(run)
    run.select_method("counting")
    text = run.picker.description.text()
    assert text.index(info["about"][:60]) < text.index(info["paper"]) < text.index(info["needs"][:60])
    tip = run.picker.methods.currentItem().toolTip()
    assert tip.startswith(info["about"]) and info["needs"][:60] not in tip
