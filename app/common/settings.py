"""Persistent settings (QSettings, INI format) and the app's config folder.

``SSLWB_CONFIG_DIR`` moves the settings file (tests keep every run isolated with it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from PySide6.QtCore import QSettings

ORG = "SSLWorkbench"
APP = "SSL Workbench"


def settings() -> QSettings:
    folder = os.environ.get("SSLWB_CONFIG_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return QSettings(str(Path(folder) / "ssl-workbench.ini"), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORG, APP)


def config_dir() -> Path:
    """The folder of the settings file (small caches such as the method catalogue live there)."""
    folder = os.environ.get("SSLWB_CONFIG_DIR")
    if folder:
        return Path(folder)
    return Path(settings().fileName()).parent


def get_json(key: str, default=None):
    raw = settings().value(key)
    if raw in (None, ""):
        return default
    try:
        return json.loads(str(raw))
    except ValueError:
        return default


def set_json(key: str, value) -> None:
    s = settings()
    s.setValue(key, json.dumps(value))
    s.sync()


def read_cache(name: str):
    try:
        return json.loads((config_dir() / name).read_text())
    except (OSError, ValueError):
        return None


def write_cache(name: str, value) -> None:
    try:
        path = config_dir() / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value, default=str))
        os.replace(tmp, path)
    except OSError:
        pass  # a cache only
