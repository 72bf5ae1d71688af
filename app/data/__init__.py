"""The Data room: choose a dataset, load it off the GUI thread and browse it (``panel.py`` is the view;
``model.py`` the dataset spec both ways, without Qt)."""
