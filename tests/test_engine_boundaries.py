"""The engine never imports Qt; the GUI-side modules of the engine never import torch."""

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    return set(out.stdout.split())


def test_engine_imports_without_qt():
    mods = _modules_after("import engine.session, engine.cli, engine.preview, engine.methods, engine.data, engine.eval")
    assert "torch" in mods
    assert not {m for m in mods if m.startswith(("PySide6", "pyqtgraph", "app"))}


def test_light_engine_modules_do_not_pull_torch():
    # the GUI process reads configs, messages and run folders without paying for torch
    mods = _modules_after("import engine.config, engine.params, engine.messages, engine.runs")
    assert "torch" not in mods
