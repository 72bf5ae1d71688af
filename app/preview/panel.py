"""The Pretext preview panel: what a method's training step does to the chosen images.

The service process calls the method's own ``make_batch`` (through ``engine.preview``) on the
images shown here, so the tiles are exactly what training sees, labels included. Option changes
(MAE's mask ratio, the augmentation strengths of contrastive methods) are written to the shared
run config: what you preview is what you train. One request is in flight at a time; while a
slider moves, only the latest setting is sent next.

``preview_view(ctx)`` makes the window's view: it previews the run model's dataset and chosen image, and
"Use for the run" makes its method the config's method.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.common.view import View, ViewContext
from app.models.config_model import method_note
from app.preview.model import ImagePicker, preview_request, views_base
from app.preview.options import AugmentGroup, MethodOptions
from app.preview.tiles import TileView
from engine.specs import method_about


class PreviewPanel(QWidget, View):
    preview_shown = Signal(dict)  # the result as drawn
    train_method = Signal(str)  # "Train this method" was pressed

    def __init__(self, service, config_model, parent=None):
        super().__init__(parent)
        self.service = service
        self.model = config_model
        self.images = ImagePicker()  # the dataset and the rows shown
        self.result: dict | None = None
        self.last_request: dict | None = None
        self._inflight: int | None = None
        self._pending = False
        self.errors = 0

        # -- top bar ---------------------------------------------------------------------
        self.method = QComboBox()
        self.method.setMinimumWidth(220)
        self.method.currentIndexChanged.connect(self._method_picked)
        self.count = QSpinBox()
        self.count.setRange(1, 8)
        self.count.setValue(4)
        self.count.setToolTip("How many images to preview at once")
        self.count.valueChanged.connect(self._count_changed)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("The random seed of the pretext batch: the same seed shows the same view")
        self.seed.valueChanged.connect(lambda _v: self.request())
        self.reseed_btn = QPushButton("Reseed")
        self.reseed_btn.setToolTip("Draw new random transformations (a new seed)")
        self.reseed_btn.clicked.connect(self.reseed)
        self.random_btn = QPushButton("Random images")
        self.random_btn.setToolTip("Preview other images of the dataset")
        self.random_btn.clicked.connect(self.random_images)
        self.zoom = QSlider(Qt.Orientation.Horizontal)
        self.zoom.setRange(48, 320)
        self.zoom.setValue(136)
        self.zoom.setFixedWidth(120)
        self.zoom.setToolTip("Tile size (moving it turns Fit off)")
        self.fit = QCheckBox("Fit")
        self.fit.setChecked(True)
        self.fit.setToolTip("Tiles as large as the space allows")
        self.fit.toggled.connect(lambda on: self._fit() if on else None)
        self.train_btn = QPushButton("Use for the run")
        self.train_btn.setToolTip("Make this method the Run panel's method")
        self.train_btn.clicked.connect(lambda: self.train_method.emit(self.current_method() or ""))
        top = QHBoxLayout()
        top.addWidget(QLabel("Method"))
        top.addWidget(self.method)
        top.addWidget(QLabel("Images"))
        top.addWidget(self.count)
        top.addWidget(QLabel("Seed"))
        top.addWidget(self.seed)
        top.addWidget(self.reseed_btn)
        top.addWidget(self.random_btn)
        top.addStretch(1)
        top.addWidget(QLabel("Zoom"))
        top.addWidget(self.zoom)
        top.addWidget(self.fit)

        # -- left: explanation and options -----------------------------------------------
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        self.options_box = MethodOptions()
        self.options_box.edited.connect(self._option_edited)
        self.options_box.show_all.toggled.connect(lambda _v: self._build_options())
        self.augment = AugmentGroup()
        self.augment.changed.connect(self._augment_changed)
        self.augment.reset_requested.connect(lambda: self.model.reset_options(self.current_method(), ["augment"]))
        side = QWidget()
        vs = QVBoxLayout(side)
        vs.addWidget(self.info)
        vs.addWidget(self.train_btn)
        vs.addWidget(self.options_box)
        vs.addWidget(self.augment)
        vs.addStretch(1)
        side_scroll = QScrollArea()
        side_scroll.setWidgetResizable(True)
        side_scroll.setWidget(side)
        side_scroll.setMinimumWidth(320)

        # -- right: the tiles -------------------------------------------------------------
        self.tiles = TileView()
        self.zoom.valueChanged.connect(self._zoomed)
        self.tiles.set_tile_px(self.zoom.value())
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.tiles)
        self.tiles_scroll = scroll
        self._fit_timer = QTimer(self, singleShot=True, interval=0)
        self._fit_timer.timeout.connect(self._fit)
        scroll.viewport().installEventFilter(self)
        self.status = QLabel("Waiting for a dataset …")
        self.status.setWordWrap(True)
        right = QWidget()
        vr = QVBoxLayout(right)
        vr.setContentsMargins(0, 0, 0, 0)
        vr.addWidget(scroll, 1)
        vr.addWidget(self.status)

        split = QSplitter()
        split.addWidget(side_scroll)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([360, 900])
        self.splitter = split
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(split, 1)

        self.model.catalogue_changed.connect(self._fill_methods)
        self.model.options_changed.connect(self._options_changed)
        self._fill_methods()

    dataset = property(lambda self: self.images.dataset)
    indices = property(lambda self: self.images.indices)  # the dataset rows shown
    option_controls = property(lambda self: self.options_box.controls)

    # -- methods ---------------------------------------------------------------------------
    def current_method(self) -> str | None:
        return self.method.currentData()

    def _fill_methods(self) -> None:
        keep = self.current_method() or self.model.method
        with QSignalBlocker(self.method):
            self.method.clear()
            for m in self.model.methods():
                self.method.addItem(f"{m['title'] or m['name']}", m["name"])
            i = self.method.findData(keep)
            self.method.setCurrentIndex(max(0, i))
        self._mark_methods()
        if self.model.catalogue is not None:
            self.augment.build(self.model.catalogue.get("augment", []))
        self._method_picked()

    def _mark_methods(self) -> None:
        """Methods that train on clips say so in the picker while the data are single images."""
        images_only = self.dataset is not None and getattr(self.dataset, "clips", None) is None
        for i in range(self.method.count()):
            info = self.model.method_info(self.method.itemData(i)) or {}
            title = info.get("title") or info.get("name") or self.method.itemText(i)
            needs = images_only and info.get("input_kind") == "clips"
            self.method.setItemText(i, f"{title} (needs clips)" if needs else title)

    def set_method(self, name: str) -> None:
        i = self.method.findData(name)
        if i >= 0:
            self.method.setCurrentIndex(i)

    def _method_picked(self, *_):
        name = self.current_method()
        info = self.model.method_info(name) if name else None
        if info is None:
            self.info.setText("<i>Starting the engine …</i>")
            return
        with QSignalBlocker(self.count):
            self.count.setValue(4 if info.get("preview_kind") == "views" else 2)
        self.info.setText(f"<b>{info['title']}</b><br>{info['summary']}<br><br>"
                          f"<span style='color:#555'>{method_about(info)}</span>")
        self._build_options()
        self._pick_indices(keep_first=True)
        self.request()

    def _build_options(self) -> None:
        name = self.current_method()
        has_augment = self.options_box.build(self.model.option_specs(name) if name else [],
                                             self.model.options_for(name) if name else {})
        self.augment.setVisible(has_augment)
        if has_augment:
            self._refresh_augment()

    def _refresh_augment(self) -> None:
        """The sliders show what the run trains with: the method's views, what the dataset recommends (its
        recipe: the built-in shapes' strong colour jitter), then the user's changes (bold)."""
        name = self.current_method()
        options = self.model.options_for(name) if name else {}
        preset = views_base(self.model.catalogue, options.get("views", "simclr") if name else "simclr",
                            int(self.model.get("data.image_size") or (self.dataset.image_size if self.dataset else 32)))
        recipe = (self.model.recipe_for(name).get("augment") if name else None) or {}
        self.augment.set_effective({**preset, **recipe}, {**preset, **((options.get("augment") if name else {}) or {})})
        spec = self.model.get("data.spec") or ""
        said = ", ".join(f"{k.replace('_', ' ')} {v:g}" if isinstance(v, float) else f"{k.replace('_', ' ')} {v}"
                         for k, v in recipe.items())
        self.augment.set_recipe_note(f"{spec} recommends {said} to every method with views" if recipe else "")

    def _option_edited(self, option: str, value) -> None:
        self.model.set_option(self.current_method(), option, value)

    def _augment_changed(self, overrides: dict) -> None:
        """``overrides`` of the views and the dataset's recipe -> the method's ``augment`` option (which replaces
        the recipe's as a whole: it keeps the recipe's values the user did not change)."""
        name = self.current_method()
        recipe = self.model.recipe_for(name).get("augment") or {}
        full = {**recipe, **overrides}
        if full == recipe:
            self.model.reset_options(name, ["augment"])  # nothing of the user's: the recipe applies, and follows the data
        else:
            self.model.set_option(name, "augment", full)

    def _options_changed(self, method: str, option: str) -> None:
        if method != self.current_method():
            return
        self.options_box.set_values(self.model.options_for(method))
        if self.augment.isVisible() or option in ("augment", "views", ""):
            self._refresh_augment()
        self.request()

    # -- the view protocol -----------------------------------------------------------------
    def save_state(self):
        return self.splitter.saveState()

    def restore_state(self, state) -> None:
        self.splitter.restoreState(state)

    def retry(self) -> None:
        """Ask again (the service restarted: the request in flight is lost)."""
        self._inflight = None
        self.request()

    # -- images (app/preview/model.py chooses them) ------------------------------------------
    def set_dataset(self, ds) -> None:
        self.images.set_dataset(ds, self.count.value())
        self._mark_methods()
        if self.augment.isVisible():
            self._refresh_augment()
        self.request()

    def _pick_indices(self, keep_first: bool) -> None:
        self.images.pick(self.count.value(), keep_first)

    def choose_image(self, i: int) -> None:
        """The image clicked in the Data panel's grid goes first."""
        self.images.choose(i, self.count.value())
        self.request()

    def random_images(self) -> None:
        if self.images.shuffle(self.count.value()):
            self.request()

    def _count_changed(self, n: int) -> None:
        if self.images.resize(n):
            self.request()

    def reseed(self) -> None:
        self.seed.setValue(int(np.random.default_rng().integers(0, 100_000)))

    # -- requests --------------------------------------------------------------------------
    def request(self) -> None:
        name = self.current_method()
        if self.dataset is None or name is None or not self.indices or self.model.method_info(name) is None:
            return
        if self._inflight is not None:
            self._pending = True
            return
        self._pending = False
        try:
            args, shown = preview_request(name, self.model.method_info(name), self.model.options_for(name),
                                          self.seed.value(), self._preview_backbone(name), self.dataset, self.indices)
        except ValueError as exc:  # a clip method on single images
            self.result = None
            self.tiles.set_result(None)
            self.status.setText(str(exc))
            self.status.setStyleSheet("color: #c0392b;")
            return
        self.last_request = shown
        self.status.setText("Drawing the pretext batch …")
        self._inflight = self.service.request("preview", args, on_done=self._shown, on_error=self._failed)

    # -- the tiles' size -------------------------------------------------------------------
    def _zoomed(self, px: int) -> None:
        """The user moved Zoom: that size, not a fitted one."""
        self.fit.setChecked(False)
        self.tiles.set_tile_px(px)

    def _fit(self) -> None:
        """With Fit: tiles as large as the space shown allows (Zoom follows)."""
        if not self.fit.isChecked() or not self.tiles.rows:
            return
        vp = self.tiles_scroll.viewport()
        px = self.tiles.best_px(vp.width(), vp.height())
        with QSignalBlocker(self.zoom):
            self.zoom.setValue(px)
        if px != self.tiles.tile_px:
            self.tiles.set_tile_px(px)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Resize and obj is self.tiles_scroll.viewport():
            self._fit_timer.start()
        return super().eventFilter(obj, event)

    def _preview_backbone(self, method: str) -> str:
        # the run's backbone when it suits the method (a ViT patch grid for MAE), else auto
        bb = self.model.get("backbone") if method == self.model.method else "auto"
        return bb or "auto"

    def _shown(self, res: dict) -> None:
        self._inflight = None
        if self._pending:
            self.request()
            return
        self.result = res
        self.tiles.set_result(res)
        self._fit()
        names = ", ".join(f"#{i}" for i in self.last_request["indices"])
        what = "clips" if (self.model.method_info(res.get("method")) or {}).get("input_kind") == "clips" else "images"
        self.status.setText(f"{res['kind']} preview of {what} {names} with seed {res['seed']} "
                            f"(drawn in {1000 * res.get('seconds', 0):.0f} ms). The same seed shows the same batch.")
        self.status.setStyleSheet("")
        self.preview_shown.emit(res)

    def _failed(self, err: dict) -> None:
        self._inflight = None
        self.errors += 1
        if self._pending:
            self.request()
            return
        self.status.setText(f"The preview failed: {err.get('message', err)}")
        self.status.setStyleSheet("color: #c0392b;")

    def is_ready(self) -> bool:
        return self.result is not None and self._inflight is None


def preview_view(ctx: ViewContext) -> PreviewPanel:
    """The window's Pretext preview: it shows the run model's dataset (the image chosen in the Data view
    first); "Use for the run" switches the run config's method and shows the Run view."""
    panel = PreviewPanel(ctx.service, ctx.config)
    ctx.run.datasetChanged.connect(panel.set_dataset)
    ctx.run.imageChosen.connect(panel.choose_image)
    ctx.service.restarted.connect(panel.retry)

    def use_for_the_run(name: str) -> None:
        if name:
            note = method_note(name, ctx.config.set_method(name))
            if note:
                ctx.status(note)
            ctx.show_view("run")

    panel.train_method.connect(use_for_the_run)
    return panel
