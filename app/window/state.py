"""What the window keeps between sessions (QSettings, see app/common/settings.py): its geometry and layout,
the tab shown, each view's layout (``View.save_state``), the run config, the data last shown; and the
method catalogue of the last session, so the forms fill before the service answers. (The Run history
keeps the folders added to it itself.)

Every function takes what it reads or writes (the QMainWindow, the views, the config model), never the
window object."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from PySide6.QtCore import QByteArray
from PySide6.QtWidgets import QMainWindow

from app.common import settings as S
from app.common.view import View, ViewSpec
from app.models.config_model import ConfigModel


def restore_config(model: ConfigModel) -> None:
    """The cached catalogue and the run config being edited."""
    cat = S.read_cache("catalogue.json")
    if isinstance(cat, dict) and cat.get("methods"):
        model.catalogue = cat  # shown at once; the service's fresh one replaces it
    state = S.get_json("config/state")
    if state:
        try:
            model.restore(state)
        except (KeyError, TypeError, ValueError):
            pass
    if cat:
        model.set_catalogue(cat)


def initial_data(data_spec: str | None, model: ConfigModel) -> tuple[str, int, bool]:
    """The dataset to load first: (spec, image size, download); ``data_spec`` (``--data``) wins over the
    last session's."""
    s = S.settings()
    spec = data_spec or s.value("data/spec") or model.get("data.spec")
    size = int(s.value("data/image_size") or model.get("data.image_size") or 32) if not data_spec else \
        int(model.get("data.image_size") or 32)
    download = str(s.value("data/download", "false")).lower() == "true" and not data_spec
    return str(spec), size, download


def remember_dataset(ds) -> None:
    s = S.settings()
    s.setValue("data/spec", ds.spec)
    s.setValue("data/image_size", ds.image_size)
    s.setValue("data/download", bool(ds.download))


def restore_layout(window: QMainWindow, views: Mapping[str, View], specs: Sequence[ViewSpec],
                   show_view: Callable[[str], None]) -> None:
    """Geometry, dock state, each view's layout and the tab shown."""
    s = S.settings()
    geo = s.value("window/geometry")
    if isinstance(geo, QByteArray) and not geo.isEmpty():
        window.restoreGeometry(geo)
    else:
        window.resize(1360, 860)
    st = s.value("window/state")
    if isinstance(st, QByteArray) and not st.isEmpty():
        window.restoreState(st)
    for key, view in views.items():
        state = s.value(f"splitters/{key}")
        if state is not None and not (isinstance(state, QByteArray) and state.isEmpty()):
            view.restore_state(state)
    tab = s.value("window/tab")  # its title
    for spec in specs:
        if spec.title == tab:
            show_view(spec.key)


def save_window(window: QMainWindow, tab_title: str, views: Mapping[str, View], model: ConfigModel) -> None:
    s = S.settings()
    s.setValue("window/geometry", window.saveGeometry())
    s.setValue("window/state", window.saveState())
    s.setValue("window/tab", tab_title)
    for key, view in views.items():
        state = view.save_state()
        if state is not None:
            s.setValue(f"splitters/{key}", state)
    s.setValue("config/state", json.dumps(model.state()))
    s.sync()
