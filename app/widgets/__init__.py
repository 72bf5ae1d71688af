"""The workbench's panels."""
