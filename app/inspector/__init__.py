"""The Inspector room: what the encoder learned, one tab per question (``panel.py`` is the view;
``tab.py`` the base every tab derives from; ``model.py`` the run the tabs work on, without Qt)."""
