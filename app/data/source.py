"""The Data panel's Source box: the kind of dataset (built-in shapes, image folder, torchvision, clips) and its
fields, the image size, Load and Cancel, and how a load goes (progress bar, status line). The dataset
spec both ways (``parse_spec``, ``build_spec``) is app/data/model.py's, without Qt."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.data.model import (
    CLIPS_KIND,
    DEFAULT_CLIPS,
    KINDS,
    TV_FALLBACK,
    build_spec,
    kind_of_loaded,
    parse_spec,
)


class SourceBox(QGroupBox):
    def __init__(self, parent=None):
        super().__init__("Source", parent)
        self.kind = QComboBox()
        self.kind.addItems(KINDS)
        self.kind.setToolTip("Where the images come from")
        # the kinds' pages in a plain layout (only the shown one takes room): a stacked widget would
        # not pass its wrapped hint's height on, and the hint would overlap the rows below
        self.pages = QWidget()
        pages_lay = QVBoxLayout(self.pages)
        pages_lay.setContentsMargins(0, 0, 0, 0)
        self.count = QSpinBox()
        self.count.setRange(16, 500_000)
        self.count.setSingleStep(500)
        self.count.setValue(2000)
        self.count.setToolTip("How many shapes to generate (8 classes: circle, ring, triangle, ...)")
        p0 = QWidget()
        f0 = QFormLayout(p0)
        f0.setContentsMargins(0, 0, 0, 0)
        f0.addRow("Images", self.count)
        self.shortcut = QCheckBox("Colour shortcut (lesson)")
        self.shortcut.setToolTip("Give every image its own colours, so colour alone tells two views of an image "
                                 "apart: the colour shortcut of the user guide's lesson (builtin:shapes?shortcut=colour)")
        f0.addRow("", self.shortcut)
        self.light = QCheckBox("Light shortcut (lesson)")
        self.light.setToolTip("Light every image from above, so brightness alone says where \"up\" is: RotNet "
                              "then predicts rotations from the light, not the shape "
                              "(builtin:shapes?shortcut=light)")
        f0.addRow("", self.light)
        self.typical = QCheckBox("Colours follow the shape (lesson)")
        self.typical.setToolTip("Give each shape typical colours, as grass is usually green: colour then depends on "
                                "what the object is, so predicting colour from lightness (colorization, split-brain) "
                                "has something to learn (builtin:shapes?colours=typical)")
        f0.addRow("", self.typical)
        # one shortcut at a time; every image its own colours cannot go with colours that follow the shape
        self.shortcut.toggled.connect(lambda on: on and (self.light.setChecked(False), self.typical.setChecked(False)))
        self.light.toggled.connect(lambda on: on and self.shortcut.setChecked(False))
        self.typical.toggled.connect(lambda on: on and self.shortcut.setChecked(False))
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("a folder of images (class sub-folders give labels)")
        self.browse_btn = QPushButton("Browse…")
        p1 = QWidget()
        v1 = QVBoxLayout(p1)
        v1.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(self.browse_btn)
        v1.addLayout(row)
        self.folder_hint = hint = QLabel("Or drop a folder on the window (or type its path and press Enter). "
                                         "Sub-folders are classes; a flat folder is unlabeled; a folder with "
                                         "train/ and val/ uses both.")
        hint.setWordWrap(True)
        hint.setObjectName("hint")
        v1.addWidget(hint)
        self.tv_name = QComboBox()
        self.tv_split = QComboBox()
        self.tv_root = QLineEdit()
        self.tv_root.setPlaceholderText("default: ~/.cache/ssl-workbench/torchvision")
        self.tv_download = QCheckBox("Download when missing (needs internet)")
        p2 = QWidget()
        f2 = QFormLayout(p2)
        f2.setContentsMargins(0, 0, 0, 0)
        f2.addRow("Dataset", self.tv_name)
        f2.addRow("Split", self.tv_split)
        f2.addRow("Folder", self.tv_root)
        f2.addRow("", self.tv_download)
        self.clips_builtin = QRadioButton("Built-in clips (shapes that move)")
        self.clips_builtin.setChecked(True)
        self.clips_count = QSpinBox()
        self.clips_count.setRange(16, 100_000)
        self.clips_count.setSingleStep(100)
        self.clips_count.setValue(DEFAULT_CLIPS)
        self.clips_count.setToolTip("How many clips to generate (builtin:clips:N)")
        self.clips_folder_choice = QRadioButton("A folder of clips")
        self.clips_folder = QLineEdit()
        self.clips_folder.setPlaceholderText("videos, or one sub-folder of frames per clip")
        self.clips_folder.textEdited.connect(lambda _t: self.clips_folder_choice.setChecked(True))
        self.clips_browse_btn = QPushButton("Browse…")
        p3 = QWidget()
        f3 = QFormLayout(p3)
        f3.setContentsMargins(0, 0, 0, 0)
        f3.addRow(self.clips_builtin)
        f3.addRow("    Clips", self.clips_count)
        f3.addRow(self.clips_folder_choice)
        row3 = QHBoxLayout()
        row3.addWidget(self.clips_folder, 1)
        row3.addWidget(self.clips_browse_btn)
        f3.addRow(row3)
        clips_hint = QLabel("Methods on clips (shuffle and learn, tracking, video colourisation) train on these; "
                            "class folders above the clips give labels.")
        clips_hint.setWordWrap(True)
        clips_hint.setObjectName("hint")
        f3.addRow(clips_hint)
        self._page_widgets = (p0, p1, p2, p3)
        for p in self._page_widgets:
            pages_lay.addWidget(p)
        self.kind.currentIndexChanged.connect(self._page)
        self.tv_name.currentIndexChanged.connect(self._fill_splits)
        self.set_tv_datasets(TV_FALLBACK)
        self._page(0)

        self.size = QSpinBox()
        self.size.setRange(8, 512)
        self.size.setValue(32)
        self.size.setSuffix(" px")
        self.size.setToolTip("Images are resized (shorter side) and centre-cropped to this size for training")
        self.load_btn = QPushButton("Load")
        self.load_btn.setObjectName("primary")
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        fs = QFormLayout(self)
        fs.addRow("Kind", self.kind)
        fs.addRow(self.pages)
        fs.addRow("Image size", self.size)
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_btn)
        buttons.addWidget(self.cancel_btn)
        fs.addRow(buttons)
        fs.addRow(self.bar)
        fs.addRow(self.status)

    # -- the fields ------------------------------------------------------------------------
    def _page(self, i: int) -> None:
        for k, page in enumerate(self._page_widgets):
            page.setVisible(k == i)

    def set_tv_datasets(self, datasets: list[dict]) -> None:
        current = self.tv_name.currentData()
        self.tv_name.blockSignals(True)
        self.tv_name.clear()
        for d in datasets:
            self.tv_name.addItem(d["name"], d)
        self.tv_name.blockSignals(False)
        i = self.tv_name.findText(current["name"]) if current else -1
        self.tv_name.setCurrentIndex(max(0, i))
        self._fill_splits()

    def _fill_splits(self) -> None:
        d = self.tv_name.currentData() or {"splits": ["train"]}
        keep = self.tv_split.currentText()
        self.tv_split.clear()
        self.tv_split.addItems(d.get("splits", ["train"]))
        i = self.tv_split.findText(keep)
        if i >= 0:
            self.tv_split.setCurrentIndex(i)

    def spec(self) -> str:
        kind = self.kind.currentIndex()
        if kind == CLIPS_KIND:
            return build_spec(kind, self.clips_count.value(), folder=self.clips_folder.text(),
                              clips_builtin=self.clips_builtin.isChecked())
        return build_spec(kind, self.count.value(), self.shortcut.isChecked(), self.folder.text(),
                          self.tv_name.currentText(), self.tv_split.currentText(), self.tv_root.text(),
                          light=self.light.isChecked(), typical=self.typical.isChecked())

    def download(self) -> bool:
        return self.kind.currentIndex() == 2 and self.tv_download.isChecked()

    def set_spec(self, spec: str, image_size: int | None = None, is_clips: bool = False) -> None:
        """Show ``spec`` in the fields (``is_clips``: the dataset loaded from it holds clips, so a folder of
        videos shows as Clips)."""
        p = kind_of_loaded(spec, is_clips) if is_clips else parse_spec(spec)
        self.kind.setCurrentIndex(p["kind"])
        if p["kind"] == CLIPS_KIND:
            if p["clips_builtin"]:
                self.clips_builtin.setChecked(True)
                self.clips_count.setValue(int(p["count"]))
            else:
                self.clips_folder_choice.setChecked(True)
                self.clips_folder.setText(p["folder"])
        elif p["kind"] == 0:
            self.count.setValue(int(p["count"]))
            self.shortcut.setChecked(bool(p["shortcut"]))
            self.light.setChecked(bool(p["light"]) and not p["shortcut"])
            self.typical.setChecked(bool(p["typical"]) and not p["shortcut"])
        elif p["kind"] == 1:
            self.folder.setText(p["folder"])
        else:
            i = self.tv_name.findText(p["tv_name"])
            if i < 0:
                self.tv_name.addItem(p["tv_name"], {"name": p["tv_name"], "splits": [p["tv_split"] or "train"]})
                i = self.tv_name.count() - 1
            self.tv_name.setCurrentIndex(i)
            if p["tv_split"]:
                j = self.tv_split.findText(p["tv_split"])
                if j >= 0:
                    self.tv_split.setCurrentIndex(j)
            self.tv_root.setText(p["tv_root"])
        if image_size:
            self.size.setValue(int(image_size))

    # -- how a load goes -------------------------------------------------------------------
    def set_loading(self, loading: bool) -> None:
        self.cancel_btn.setEnabled(loading)
        self.load_btn.setEnabled(not loading)

    def show_started(self, text: str) -> None:
        self.bar.setRange(0, 0)  # busy until the first progress report
        self.bar.setFormat("")
        self.status.setText(text)
        self.status.setStyleSheet("")

    def show_progress(self, p, spec: str) -> None:
        if p.total > 0:
            self.bar.setRange(0, p.total)
            self.bar.setValue(p.done)
            self.bar.setFormat(f"%v / %m  {p.detail}")
        else:
            self.bar.setRange(0, 0)
        self.status.setText(f"Loading {spec}: {p.detail}")

    def show_result(self, text: str, loaded: bool = False, error: bool = False) -> None:
        """The load ended: the bar full (``loaded``) or empty, and the status line (red for an ``error``)."""
        self.bar.setRange(0, 1)
        self.bar.setValue(1 if loaded else 0)
        self.bar.setFormat("loaded" if loaded else "")
        self.status.setText(text)
        if error:
            self.status.setStyleSheet("color: #c0392b;")
