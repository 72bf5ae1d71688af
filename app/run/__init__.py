"""The Run room: the method picker, the config form, "copy as command" and the run controls
(``panel.py`` is the view; ``model.py`` the button rules and the command line's base, without Qt)."""
