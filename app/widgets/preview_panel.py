"""The Pretext preview panel: what a method's training step does to the chosen images.

The service process calls the method's own ``make_batch`` (through ``engine.preview``) on the
images shown here, so the tiles are exactly what training sees, labels included. Option changes
(MAE's mask ratio, the augmentation strengths of contrastive methods) are written to the shared
run config: what you preview is what you train. One request is in flight at a time; while a
slider moves, only the latest setting is sent next.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
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

from app.view import View, ViewContext
from app.widgets import discard
from app.widgets.controls import ParamControl
from app.widgets.tiles import TileView

# augmentation operations: (title, switch field, strength fields)
AUG_OPS = (
    ("Random resized crop", "crop", ("crop_scale_min", "crop_scale_max")),
    ("Horizontal flip", "flip_p", ()),
    ("Colour jitter", "jitter_p", ("brightness", "contrast", "saturation", "hue")),
    ("Grayscale", "gray_p", ()),
    ("Gaussian blur", "blur_p", ("blur_sigma_min", "blur_sigma_max")),
    ("Solarize", "solarize_p", ("solarize_threshold",)),
)
PROB_ON = 0.5  # a probability switched back on without a remembered value


ASYMMETRY_CANDIDATES = 16  # images scored for the first preview image
ASYMMETRIC = 0.25  # a subject this rotation-asymmetric (a heart scores ~0.3, a ring ~0.1) may go first


def rotation_asymmetry(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 -> how much each image's subject changes under its least-changing quarter turn
    (90, 180 or 270 degrees about the subject's own box), as the mismatched fraction of its area: about
    0 for a circle, ring, square or cross, large for a heart, crescent or triangle. The subject is what
    differs from the image's border colour (the whole image when nothing stands out)."""
    x = np.asarray(images, dtype=np.float32)
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)  # (N, P, C)
    diff = np.abs(x - np.median(border, axis=1)[:, None, None, :]).max(-1)  # (N, H, W)
    out = np.zeros(len(x), dtype=np.float32)
    for i, d in enumerate(diff):
        m = (d > 40).astype(np.float32)
        if m.sum() < 4 or m.mean() > 0.9:
            m = d / max(float(d.max()), 1.0)  # nothing stands out: compare the whole image
        ys, xs = np.nonzero(m > 0)
        c = m[ys.min():ys.max() + 1, xs.min():xs.max() + 1] if len(ys) else m
        h, w = c.shape
        side = max(h, w)
        sq = np.zeros((side, side), np.float32)
        sq[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = c
        out[i] = min(np.abs(sq - np.rot90(sq, k)).sum() for k in (1, 2, 3)) / max(float(sq.sum()), 1.0)
    return out


class AugmentGroup(QGroupBox):
    """A switch and strength sliders per augmentation operation, writing overrides into the
    method's ``augment`` option (the recipe's values show until the user changes one)."""

    changed = Signal(dict)  # the full overrides dict

    def __init__(self, parent=None):
        super().__init__("Augmentations (both views)", parent)
        self.specs: dict[str, dict] = {}
        self.base: dict = {}
        self.overrides: dict = {}
        self.switches: dict[str, QCheckBox] = {}
        self.controls: dict[str, ParamControl] = {}
        self._remember: dict[str, float] = {}
        self._lay = QVBoxLayout(self)
        self._body = QWidget()
        self._lay.addWidget(self._body)
        reset = QPushButton("Reset to the recipe")
        reset.setToolTip("Forget the changes made here: the method's augmentation recipe applies")
        reset.clicked.connect(self.reset)
        self._lay.addWidget(reset)

    def build(self, specs: list[dict]) -> None:
        self.specs = {s["name"]: s for s in specs}
        self._lay.removeWidget(self._body)
        discard(self._body)
        self._body = QWidget()
        form = QFormLayout(self._body)
        form.setContentsMargins(0, 0, 0, 0)
        self.switches, self.controls = {}, {}
        used = set()
        for title, switch, strengths in AUG_OPS:
            if switch not in self.specs:
                continue
            box = QCheckBox(title)
            box.setToolTip(self.specs[switch].get("help", ""))
            box.toggled.connect(lambda on, s=switch: self._switched(s, on))
            self.switches[switch] = box
            form.addRow(box)
            used.add(switch)
            fields = ([switch] if self.specs[switch]["type"] == "float" else []) + list(strengths)
            for name in fields:
                spec = self.specs.get(name)
                if spec is None:
                    continue
                ctl = ParamControl(spec)
                ctl.changed.connect(lambda v, n=name: self._set(n, v))
                self.controls[name] = ctl
                label = "probability" if name == switch else spec["label"]
                form.addRow(f"    {label}", ctl)
                used.add(name)
        for name, spec in self.specs.items():  # fields a future engine adds
            if name in used or spec.get("advanced") or spec["type"] not in ("float", "bool", "int"):
                continue
            ctl = ParamControl(spec)
            ctl.changed.connect(lambda v, n=name: self._set(n, v))
            self.controls[name] = ctl
            form.addRow(spec["label"], ctl)
        self._lay.insertWidget(0, self._body)
        self.refresh()

    def set_state(self, base: dict, overrides: dict) -> None:
        self.base, self.overrides = dict(base or {}), dict(overrides or {})
        self.refresh()

    def value(self, name: str):
        return self.overrides.get(name, self.base.get(name, (self.specs.get(name) or {}).get("default")))

    def refresh(self) -> None:
        for name, box in self.switches.items():
            v = self.value(name)
            with QSignalBlocker(box):
                box.setChecked(bool(v) if isinstance(v, bool) else float(v or 0) > 0)
            f = box.font()
            f.setBold(name in self.overrides)
            box.setFont(f)
        for name, ctl in self.controls.items():
            ctl.set_value(self.value(name))
            ctl.setEnabled(self._op_enabled(name))

    def _op_enabled(self, name: str) -> bool:
        for _title, switch, strengths in AUG_OPS:
            if name in strengths:
                v = self.value(switch)
                return bool(v) if isinstance(v, bool) else float(v or 0) > 0
        return True

    def _switched(self, switch: str, on: bool) -> None:
        spec = self.specs[switch]
        if spec["type"] == "bool":
            self._set(switch, bool(on))
            return
        if on:
            v = self._remember.get(switch) or self.base.get(switch) or PROB_ON
            self._set(switch, float(v) if float(v) > 0 else PROB_ON)
        else:
            cur = float(self.value(switch) or 0)
            if cur > 0:
                self._remember[switch] = cur
            self._set(switch, 0.0)

    def _set(self, name: str, value) -> None:
        if self.base.get(name) == value:
            self.overrides.pop(name, None)
        else:
            self.overrides[name] = value
        lo_hi = (("crop_scale_min", "crop_scale_max"), ("blur_sigma_min", "blur_sigma_max"))
        for lo, hi in lo_hi:  # keep ranges valid while a slider moves
            if name in (lo, hi) and float(self.value(lo)) > float(self.value(hi)):
                other = hi if name == lo else lo
                self.overrides[other] = value
        self.refresh()
        self.changed.emit(dict(self.overrides))

    def reset(self) -> None:
        self.overrides = {}
        self._remember = {}
        self.refresh()
        self.changed.emit({})


class PreviewPanel(QWidget, View):
    preview_shown = Signal(dict)  # the result as drawn
    train_method = Signal(str)  # "Train this method" was pressed

    def __init__(self, service, config_model, parent=None):
        super().__init__(parent)
        self.service = service
        self.model = config_model
        self.dataset = None
        self.indices: list[int] = []
        self.result: dict | None = None
        self.last_request: dict | None = None
        self._inflight: int | None = None
        self._pending = False
        self._rng = np.random.default_rng(0)
        self._order = np.zeros(0, dtype=np.int64)
        self.option_controls: dict[str, ParamControl] = {}
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
        self.zoom.setRange(48, 256)
        self.zoom.setValue(136)
        self.zoom.setFixedWidth(120)
        self.zoom.setToolTip("Tile size")
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

        # -- left: explanation and options -----------------------------------------------
        self.info = QLabel("")
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        self.options_box = QGroupBox("Method options (shared with the Run panel)")
        self._options_lay = QVBoxLayout(self.options_box)
        self._options_body = QWidget()
        self.options_form = QFormLayout(self._options_body)
        self._options_lay.addWidget(self._options_body)
        self.show_all = QCheckBox("Show advanced options")
        self.show_all.setToolTip("Options marked advanced (some matter only for training)")
        self._options_lay.addWidget(self.show_all)
        self.show_all.toggled.connect(lambda _v: self._build_options())
        self.augment = AugmentGroup()
        self.augment.changed.connect(self._augment_changed)
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
        self.zoom.valueChanged.connect(self.tiles.set_tile_px)
        self.tiles.set_tile_px(self.zoom.value())
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.tiles)
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
                          f"<span style='color:#555'>{info.get('description', '')}</span>")
        self._build_options()
        self._pick_indices(keep_first=True)
        self.request()

    def _build_options(self) -> None:
        self._options_lay.removeWidget(self._options_body)
        discard(self._options_body)
        self._options_body = QWidget()
        self.options_form = QFormLayout(self._options_body)
        self.options_form.setContentsMargins(0, 0, 0, 0)
        self._options_lay.insertWidget(0, self._options_body)
        self.option_controls = {}
        name = self.current_method()
        specs = self.model.option_specs(name) if name else []
        values = self.model.options_for(name) if name else {}
        has_augment = False
        for spec in specs:
            if spec["name"] == "augment" and spec["type"] == "dict":
                has_augment = True
                continue
            if spec["type"] in ("dict", "list"):
                continue
            if spec.get("advanced") and not self.show_all.isChecked():
                continue
            ctl = ParamControl(spec)
            ctl.set_value(values.get(spec["name"], spec["default"]))
            ctl.changed.connect(lambda v, n=spec["name"]: self._option_edited(n, v))
            self.option_controls[spec["name"]] = ctl
            self.options_form.addRow(spec["label"], ctl)
        if not self.option_controls:
            note = QLabel("This method has no options that change its preview." if specs else
                          "This method has no options.")
            note.setWordWrap(True)
            self.options_form.insertRow(0, note)
        self.augment.setVisible(has_augment)
        if has_augment:
            self._refresh_augment()

    def _views_base(self) -> dict:
        cat = self.model.catalogue or {}
        name = self.current_method()
        views = self.model.options_for(name).get("views", "simclr") if name else "simclr"
        size_key = "small" if (self.dataset.image_size if self.dataset else 32) <= 48 else "large"
        presets = (cat.get("augment_presets") or {}).get(size_key, {})
        pair = presets.get(views) or presets.get("simclr") or [{}]
        return dict(pair[0])

    def _refresh_augment(self) -> None:
        name = self.current_method()
        over = self.model.options_for(name).get("augment", {}) if name else {}
        self.augment.set_state(self._views_base(), over or {})

    def _option_edited(self, option: str, value) -> None:
        self.model.set_option(self.current_method(), option, value)

    def _augment_changed(self, overrides: dict) -> None:
        self.model.set_option(self.current_method(), "augment", overrides)

    def _options_changed(self, method: str, option: str) -> None:
        if method != self.current_method():
            return
        values = self.model.options_for(method)
        for name, ctl in self.option_controls.items():
            ctl.set_value(values.get(name))
        if self.augment.isVisible() or option in ("augment", "views", ""):
            self._refresh_augment()
        self.request()

    # -- the view protocol -----------------------------------------------------------------
    @classmethod
    def create(cls, ctx: ViewContext) -> PreviewPanel:
        panel = cls(ctx.service, ctx.config)
        ctx.run.datasetChanged.connect(panel.set_dataset)
        ctx.service.restarted.connect(panel.retry)
        return panel

    def save_state(self):
        return self.splitter.saveState()

    def restore_state(self, state) -> None:
        self.splitter.restoreState(state)

    def retry(self) -> None:
        """Ask again (the service restarted: the request in flight is lost)."""
        self._inflight = None
        self.request()

    # -- images ----------------------------------------------------------------------------
    def set_dataset(self, ds) -> None:
        self.dataset = ds
        self._mark_methods()
        self._rng = np.random.default_rng(len(ds))
        self._order = self._image_order()
        self.indices = []
        self._pick_indices(keep_first=False)
        if self.augment.isVisible():
            self._refresh_augment()
        self.request()

    def _image_order(self) -> np.ndarray:
        """The order the preview takes images in, fixed until "Random images": switching methods or the
        image count keeps the images, so the same seed shows the same batch. The first is the least
        rotation-symmetric of the first few (a rotation preview of a circle shows four equal tiles)."""
        n = len(self.dataset)
        order = self._rng.permutation(n)
        head = order[:min(n, ASYMMETRY_CANDIDATES)]
        if len(head) > 1:
            rows = np.sort(head)
            score = dict(zip(rows.tolist(), rotation_asymmetry(np.asarray(self.dataset.images[rows])).tolist()))
            clear = [int(i) for i in head if score[int(i)] >= ASYMMETRIC]
            best = clear[0] if clear else max(score, key=score.get)
            order = np.concatenate([[best], order[order != best]])
        return order

    def _pick_indices(self, keep_first: bool) -> None:
        if self.dataset is None or len(self.dataset) == 0:
            return
        n = min(self.count.value(), len(self.dataset))
        first = self.indices[:1] if keep_first and self.indices else []
        others = [int(i) for i in self._order[:n + 1] if int(i) not in first]
        self.indices = (first + others)[:n]

    def choose_image(self, i: int) -> None:
        """The image clicked in the Data panel's grid goes first."""
        rest = [j for j in self.indices if j != i]
        self.indices = ([i] + rest)[:max(1, self.count.value())]
        self.request()

    def random_images(self) -> None:
        if self.dataset is None:
            return
        self._order = self._image_order()
        self.indices = []
        self._pick_indices(keep_first=False)
        self.request()

    def _count_changed(self, n: int) -> None:
        if self.dataset is None:
            return
        if n < len(self.indices):
            self.indices = self.indices[:n]
        else:
            extra = [int(i) for i in self._order[:n + len(self.indices)] if int(i) not in self.indices]
            self.indices = self.indices + extra[:n - len(self.indices)]
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
        idx = np.asarray(self.indices, dtype=np.int64)
        args = {"method": name, "options": self.model.options_for(name), "seed": int(self.seed.value()),
                "backbone": self._preview_backbone(name)}
        clips = getattr(self.dataset, "clips", None)
        if (self.model.method_info(name) or {}).get("input_kind") == "clips":
            if clips is None:
                self.result = None
                self.tiles.set_result(None)
                self.status.setText(f"{name} trains on clips, and {self.dataset.spec} holds single images; "
                                    "choose builtin:clips, clips:FOLDER or a folder of videos")
                self.status.setStyleSheet("color: #c0392b;")
                return
            args["clips"] = np.ascontiguousarray(clips[idx])
        else:
            args["images"] = np.ascontiguousarray(self.dataset.images[idx])
        self.last_request = {k: v for k, v in args.items() if k not in ("images", "clips")} | \
            {"indices": idx.tolist()}
        self.status.setText("Drawing the pretext batch …")
        self._inflight = self.service.request("preview", args, on_done=self._shown, on_error=self._failed)

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
