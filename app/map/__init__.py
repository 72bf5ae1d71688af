"""The Embedding map room: a run's embeddings as a 2-D map with its timeline, legend, neighbours,
selection and exports (``panel.py`` is the view; ``model.py`` the map's state without Qt)."""
