"""What a view of the window is: its entry in the view list, what it gets, what the window asks of it.

A view is a QWidget that also derives from :class:`View`. There is one way to make one: the factory of
its :class:`ViewSpec` (``app/views.py`` holds the list), a function that takes the window's
:class:`ViewContext` (the run model, the config model, the three process clients, ``status`` and
``show_view``) and returns the view. The factory builds the widget from narrow inputs and connects it
to what it needs (``ctx.run.runChanged``, ``ctx.engine.message``, ...); the window then only calls the
methods below, all of which have defaults.

    class MyPanel(QWidget, View):
        def __init__(self, analysis):               # narrow inputs: testable without a window
            super().__init__()
            self.analysis = analysis

        def show_run(self, ref) -> None: ...

    def my_view(ctx: ViewContext) -> MyPanel:
        panel = MyPanel(ctx.analysis)
        ctx.run.runChanged.connect(panel.show_run)
        return panel

    # app/views.py
    ViewSpec("mine", "My view", my_view),
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

    run: RunModel  # the workflow: the run shown, the runs training here, the dataset, the chosen image; requests
    config: ConfigModel  # the run config being edited and the engine's method catalogue
    engine: EngineClient  # the training process
    service: WorkerClient  # the service process (catalogue, validation, datasets, previews)
    analysis: AnalysisClient  # the analysis process (maps, evaluation, retrieval, exports)
    status: Callable[[str], None]  # a line in the window's status bar
    show_view: Callable[[str], None]  # bring the view with this key to the front

    def train_from_encoder(self, encoder_config: dict) -> None:
        """Train from this encoder: the Run panel's config starts from the opened encoder's weights (its
        ``config.json``), the Run view comes to the front and the status bar says what changed."""
        from app.models.encoders import train_from_encoder

        try:
            text = train_from_encoder(self.config.set, encoder_config)
        except ValueError as exc:
            self.status(str(exc))
            return
        self.show_view("run")
        self.status(text)


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
    """One entry of the view list: a key (``--view KEY``), a tab title and a factory (ViewContext -> View)."""

    key: str
    title: str
    factory: Callable[[ViewContext], View]
