"""What the window keeps between sessions (QSettings, see app/settings.py): its geometry and layout, the tab
shown, each view's splitters, the run config, the data last shown and the folders added to the Run
history; and the method catalogue of the last session, so the forms fill before the service answers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray

from app.common import settings as S

if TYPE_CHECKING:
    from app.history.panel import HistoryPanel
    from app.models.config_model import ConfigModel
    from app.window.main_window import MainWindow


def restore_config(model: ConfigModel, history: HistoryPanel) -> None:
    """The cached catalogue, the run config being edited and the Run history's added folders."""
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
    history.set_extra([p for p in (S.get_json("history/folders") or []) if isinstance(p, str)])


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


def restore_layout(w: MainWindow) -> None:
    """Geometry, dock state, each view's splitters and the tab shown."""
    s = S.settings()
    geo = s.value("window/geometry")
    if isinstance(geo, QByteArray) and not geo.isEmpty():
        w.restoreGeometry(geo)
    else:
        w.resize(1360, 860)
    st = s.value("window/state")
    if isinstance(st, QByteArray) and not st.isEmpty():
        w.restoreState(st)
    for key, view in w.views.items():
        state = s.value(f"splitters/{key}")
        if state is not None and not (isinstance(state, QByteArray) and state.isEmpty()):
            view.restore_state(state)
    tab = s.value("window/tab")  # its title
    for spec in w.specs:
        if spec.title == tab:
            w.show_view(spec.key)


def save_window(w: MainWindow) -> None:
    s = S.settings()
    s.setValue("window/geometry", w.saveGeometry())
    s.setValue("window/state", w.saveState())
    s.setValue("window/tab", w.tabs.tabText(w.tabs.currentIndex()))
    for key, view in w.views.items():
        state = view.save_state()
        if state is not None:
            s.setValue(f"splitters/{key}", state)
    s.setValue("config/state", json.dumps(w.model.state()))
    s.setValue("history/folders", json.dumps(w.history.extra))
    s.sync()
