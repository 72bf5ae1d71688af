"""The Pretext preview room: what a method's training step does to the chosen images (``panel.py`` is
the view; ``model.py`` the images shown and the preview request, without Qt)."""
