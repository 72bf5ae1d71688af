"""The Run history room: the run folders of the runs directory and of added folders (``panel.py`` is
the view; ``details.py`` a run folder's summary and ``model.py`` the listing's rules, without Qt)."""
