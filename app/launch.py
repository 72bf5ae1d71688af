"""Start-up of the workbench window (placeholder until the window lands: runs a short headless demo)."""

from __future__ import annotations


def launch(argv: list[str]) -> int:
    print("The workbench window is not built yet: running a 1-minute headless SimCLR demo on the built-in "
          "shapes instead.")
    from engine.cli import main

    return main(["train", "--method", "simclr", "--data", "builtin:shapes", "--minutes", "1"])
