"""What every room of the app shares: the view protocol (``view.py``), the helper-process clients
(``process_client.py`` and the training, service and analysis clients), settings, small background jobs,
and the widgets more than one room draws with (banner, parameter controls, charts, image conversion).
Nothing here imports a feature room or the window."""
