"""The Run panel's method picker: the registered methods as a list (title over a one-line summary) and
the chosen one's description; picking one switches the config model's method. Under the description, one line
says how the method's defaults did on data like the config's (measured: ``engine.specs.measured_text``); where
the method has a recipe that learns (its catalogue entry's ``recipe``) and the config does not follow it, a
box says why and what would change, with a button that applies it."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSignalBlocker, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter
from PySide6.QtWidgets import (
    QFrame,
    QGroupBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QStyle,
    QStyledItemDelegate,
    QVBoxLayout,
)

from app.models.config_model import method_note
from app.run.model import method_description, recipe_text
from engine.specs import measured_gain, measured_text, method_about, recipe_changes

BADGE = Qt.ItemDataRole.UserRole + 2  # "text|colour" of the measured gain on the config's data, or "" for none


def gain_badge(entry: dict | None, spec: str) -> str:
    """The list's badge for a method on data ``spec``: its defaults' measured kNN gain over an untrained encoder
    with a tick where it meets the aim, and a colour (green: meets it, amber: learns short of it, red: does not beat
    random init); "" where nothing was measured on such data. As "text|colour", which a list item keeps as is."""
    got = measured_gain(entry, spec)
    if got is None:
        return ""
    gain, aim = got
    if gain >= aim:
        return f"{gain:+.2f} \u2713|#2e7d32"
    return f"{gain:+.2f}|" + ("#b26a00" if gain > 0 else "#c62828")


class MethodDelegate(QStyledItemDelegate):
    """A method as its title (bold) over its one-line summary, wrapped to the list's width; at the title's right,
    the measured kNN gain of its defaults on the config's data (``BADGE``)."""

    PAD = 6

    def __init__(self, view):
        super().__init__(view)
        self.view = view

    def _texts(self, index):
        return index.data(Qt.ItemDataRole.DisplayRole) or "", index.data(Qt.ItemDataRole.UserRole + 1) or ""

    def _badge_width(self, option, index) -> int:
        badge = index.data(BADGE)
        return QFontMetrics(option.font).horizontalAdvance(badge.split("|")[0]) + self.PAD if badge else 0

    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        title, summary = self._texts(index)
        w = max(120, self.view.viewport().width() - 2 * self.PAD)
        bold = QFont(option.font)
        bold.setBold(True)
        tw = max(60, w - self._badge_width(option, index))
        h1 = QFontMetrics(bold).boundingRect(QRect(0, 0, tw, 1000), Qt.TextFlag.TextWordWrap, title).height()
        h2 = QFontMetrics(option.font).boundingRect(QRect(0, 0, w, 1000), Qt.TextFlag.TextWordWrap, summary).height()
        return QSize(w, h1 + h2 + 3 * self.PAD)

    def paint(self, painter: QPainter, option, index) -> None:
        title, summary = self._texts(index)
        r = option.rect
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(r, option.palette.highlight())
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.fillRect(r, option.palette.alternateBase())
        painter.setPen(option.palette.mid().color())
        painter.drawLine(r.bottomLeft(), r.bottomRight())
        color = option.palette.highlightedText().color() if selected else option.palette.text().color()
        inner = r.adjusted(self.PAD, self.PAD, -self.PAD, -self.PAD)
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(color)
        bw = self._badge_width(option, index)
        title_rect = inner.adjusted(0, 0, -bw, 0)
        tr = painter.boundingRect(title_rect, Qt.TextFlag.TextWordWrap, title)
        painter.drawText(title_rect, Qt.TextFlag.TextWordWrap, title)
        painter.setFont(option.font)
        badge = index.data(BADGE)
        if badge:
            text, hue = badge.split("|")
            painter.setPen(color if selected else QColor(hue))
            painter.drawText(inner, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop, text)
            painter.setPen(color)
        painter.drawText(inner.adjusted(0, tr.height() + self.PAD // 2, 0, 0), Qt.TextFlag.TextWordWrap, summary)


class MethodList(QListWidget):
    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.doItemsLayout()  # heights follow the width


class RecipeBox(QFrame):
    """The method's recipe that learns, offered before Start: why, what it changes, and a button that applies
    it through the config model (the form, the Data view and the command line show the new values)."""

    applied = Signal(str)  # a line for the status bar: what changed, and what it was

    def __init__(self, config_model, parent=None):
        super().__init__(parent)
        self.model = config_model
        self.setObjectName("recipeBox")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.text = QLabel("")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.button = QPushButton("Use the recipe that learns")
        self.button.clicked.connect(self.apply)
        v = QVBoxLayout(self)
        v.setContentsMargins(6, 6, 6, 6)
        v.addWidget(self.text)
        v.addWidget(self.button, 0, Qt.AlignmentFlag.AlignLeft)
        self.changes: dict = {}
        self.refresh()

    def refresh(self, *_args) -> None:
        info = self.model.method_info()
        self.changes = recipe_changes(info, self.model.config())
        if self.changes:
            self.text.setText(recipe_text(info, self.changes, str(self.model.get("data.spec") or "")))
            self.button.setToolTip("Sets " + "; ".join(f"{p} to {new}" for p, (_old, new) in self.changes.items()))
        self.setVisible(bool(self.changes))

    def apply(self) -> None:
        changes = recipe_changes(self.model.method_info(), self.model.config())
        for path, (_old, new) in changes.items():
            self.model.set(path, new)
        if changes:
            self.applied.emit(f"{self.model.method}: the recipe that learns applies ("
                              + "; ".join(f"{p} {new}, was {old}" for p, (old, new) in changes.items()) + ")")
        self.refresh()


class MethodPicker(QGroupBox):
    message = Signal(str)  # a line for the status bar

    def __init__(self, config_model, parent=None):
        super().__init__("Method", parent)
        self.model = config_model
        self.methods = MethodList()
        self.methods.setItemDelegate(MethodDelegate(self.methods))
        self.methods.setMouseTracking(True)
        self.methods.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.methods.currentItemChanged.connect(self._method_clicked)
        self.description = QLabel("Starting the engine …")
        self.description.setWordWrap(True)
        self.description.setTextFormat(Qt.TextFormat.RichText)
        self.description.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.description.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # the description scrolls in its share of the height: a long one (what the method needs, measured)
        # never squeezes the list until the chosen method is out of sight
        self.description_area = QScrollArea()
        self.description_area.setWidgetResizable(True)
        self.description_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.description_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.description_area.setWidget(self.description)
        # how the defaults did on data like the config's, before Start: follows the method and the data
        self.measured = QLabel("")
        self.measured.setObjectName("measuredLine")
        self.measured.setWordWrap(True)
        self.measured.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.recipe = RecipeBox(config_model)
        self.recipe.applied.connect(self.message)
        config_model.changed.connect(self.recipe.refresh)
        config_model.changed.connect(self.show_measured)
        config_model.changed.connect(self._data_changed)
        vp = QVBoxLayout(self)
        vp.addWidget(self.methods, 3)
        vp.addWidget(self.description_area, 2)
        vp.addWidget(self.measured)
        vp.addWidget(self.recipe)

    def fill(self) -> None:
        """The catalogue's methods, the model's one selected."""
        with QSignalBlocker(self.methods):
            self.methods.clear()
            for m in self.model.methods():
                item = QListWidgetItem(m["title"] or m["name"])
                item.setData(Qt.ItemDataRole.UserRole, m["name"])
                item.setData(Qt.ItemDataRole.UserRole + 1, m["summary"])
                self.methods.addItem(item)
                if m["name"] == self.model.method:
                    self.methods.setCurrentItem(item)
        self.show_badges()
        self.show_description()
        if self.methods.currentItem() is not None:
            self.methods.scrollToItem(self.methods.currentItem())

    def _data_changed(self, path: str) -> None:
        if path in ("", "data.spec"):  # the badges follow the data alone: not every keystroke in the form
            self.show_badges()

    def show_badges(self) -> None:
        """Each method's measured gain on data like the config's (the badge), and its tooltip: what it learns,
        then that measurement in words."""
        spec = str(self.model.get("data.spec") or "")
        for k in range(self.methods.count()):
            item = self.methods.item(k)
            entry = self.model.method_info(item.data(Qt.ItemDataRole.UserRole))
            badge = gain_badge(entry, spec)
            if (item.data(BADGE) or "") != badge:
                item.setData(BADGE, badge)
            about = method_about(entry)
            said = measured_text(entry, spec)
            item.setToolTip(f"{about}\n\n{said}" if said else about)

    def show_description(self) -> None:
        self.description.setText(method_description(self.model.method_info(), self.model.method))
        self.show_measured()
        self.recipe.refresh()

    def show_measured(self, *_args) -> None:
        text = measured_text(self.model.method_info(), str(self.model.get("data.spec") or ""))
        self.measured.setText(text)
        self.measured.setVisible(bool(text))

    def sync(self) -> None:
        """The model's method changed: select it (quietly) and describe it."""
        with QSignalBlocker(self.methods):
            for k in range(self.methods.count()):
                if self.methods.item(k).data(Qt.ItemDataRole.UserRole) == self.model.method:
                    self.methods.setCurrentRow(k)
                    self.methods.scrollToItem(self.methods.item(k))
        self.show_description()

    def _method_clicked(self, item, _prev=None) -> None:
        if item is None:
            return
        name = item.data(Qt.ItemDataRole.UserRole)
        note = method_note(name, self.model.set_method(name))
        if note:
            self.message.emit(note)

    def select(self, name: str) -> None:
        for k in range(self.methods.count()):
            if self.methods.item(k).data(Qt.ItemDataRole.UserRole) == name:
                self.methods.setCurrentRow(k)
                return
        self.model.set_method(name)
