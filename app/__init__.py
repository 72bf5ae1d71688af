"""The Qt front end. Talks to the engine only through messages and plain data; never imports torch."""

from app import _pyside_fix

_pyside_fix.apply()  # PySide6 6.12.0 on Python < 3.12 over-releases None/True (see app/_pyside_fix.py)
