"""A guard against a reference-counting bug of PySide6 6.12.0 on Python < 3.12.

With that build every call of a void Qt method (``label.setText``, ``app.processEvents``, ...)
releases one reference to ``None`` it never took, and every ``Signal.emit`` one to ``True``. On
Python 3.12+ these objects are immortal and nothing happens; on 3.10/3.11 the counts reach zero
after some ten thousand calls and the interpreter aborts ("deallocating None"). pyproject.toml
excludes 6.12.0; where it is installed anyway we make the three objects as good as immortal, as
Python 3.12 does, by raising their reference counts far out of reach.
"""

from __future__ import annotations

import ctypes
import sys

AFFECTED = ("6.12.0",)
_applied = False


def affected() -> bool:
    if sys.version_info >= (3, 12) or getattr(sys, "gettotalrefcount", None) is not None:
        return False  # immortal singletons (3.12+); a debug build has another object layout
    try:
        import PySide6
    except ImportError:
        return False
    return PySide6.__version__ in AFFECTED


def apply() -> bool:
    """Apply the guard once if this PySide6 needs it; returns whether it is active."""
    global _applied
    if _applied:
        return True
    if not affected():
        return False
    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40  # ob_refcnt is the first field
    _applied = True
    return True
