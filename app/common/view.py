"""What a view of the window is: its entry in the view list, what it gets, what the window asks of it.

A view is a QWidget that also derives from :class:`View`. The window makes it with the factory of
its :class:`ViewSpec` (``app/views.py`` holds the list), passing a :class:`ViewContext`: the three
process clients, the run model and the config model. The factory connects the view to what it
needs (``ctx.run.runChanged``, ``ctx.engine.message``, ...); the window then only calls the
methods below, all of which have defaults.

    class MyView(QWidget, View):
        def __init__(self, ctx: ViewContext):
            super().__init__()
            ctx.run.runChanged.connect(self.show_run)

    # app/views.py
    ViewSpec("mine", "My view", MyView),
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the types only: this module imports no Qt, no panel
    from app.common.analysis_client import AnalysisClient
    from app.common.engine_client import EngineClient
    from app.common.worker_client import WorkerClient
    from app.models.config_model import ConfigModel
    from app.models.run_model import RunModel


@dataclass(frozen=True)
class MenuEntry:
    """An entry a view adds to one of the window's menus ("File", "Run" or "View")."""

    menu: str
    text: str
    slot: Callable[[], Any]
    shortcut: Any = None  # a string ("Ctrl+E") or a QKeySequence.StandardKey
    tip: str = ""


@dataclass
class ViewContext:
    """Everything a view may use. The window owns all of it; a view never reaches into another view."""

    run: RunModel  # the run shown (started, resumed or opened), live or not; the dataset loaded
    config: ConfigModel  # the run config being edited and the engine's method catalogue
    engine: EngineClient  # the training process
    service: WorkerClient  # the service process (catalogue, validation, datasets, previews)
    analysis: AnalysisClient  # the analysis process (maps, evaluation, retrieval, exports)
    status: Callable[[str], None]  # a line in the window's status bar
    show_view: Callable[[str], None]  # bring the view with this key to the front


class View:
    """The small protocol of a view. Mix it into a QWidget (``class V(QWidget, View)``)."""

    def is_ready(self) -> bool:
        """Has the view drawn what it should show? (``main.py --screenshot`` waits for it.)"""
        return True

    def menu_entries(self) -> list[MenuEntry]:
        """Menu entries (with shortcuts) the window adds for this view."""
        return []

    def save_state(self) -> Any:
        """Layout to remember between sessions (e.g. a splitter's ``saveState()``), or None."""
        return None

    def restore_state(self, state: Any) -> None:
        """Gets back what :meth:`save_state` returned in the last session."""

    def shutdown(self) -> None:
        """The window closes: stop timers, cancel requests."""


@dataclass(frozen=True)
class ViewSpec:
    """One entry of the view list: a key (``--view KEY``), a tab title and a factory."""

    key: str
    title: str
    factory: Callable[[ViewContext], View]
