"""The Curves room: live training curves of one run and its overlays (``panel.py`` is the view;
``model.py`` the runs' series without Qt; ``feed.py`` reads run folders for them off the GUI thread)."""
