"""The window: start-up (``launch.py``), the main window that wires the models, the clients and the
views (``main_window.py``), its menus, status bar and saved state."""
