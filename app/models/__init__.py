"""The models several rooms share, without widgets: the run model (the run shown, the dataset, the
workflow's requests), the config model (the run config being edited, the method catalogue) and the
dataset the window shows. Nothing here imports a room, the common widgets or the window."""
