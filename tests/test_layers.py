"""The layering of docs/architecture.md, enforced: import-linter's contracts in pyproject.toml are kept (the
engine's layers; the app's rooms: the window on top, rooms that never import each other or their panel,
no cycle), an upward import breaks them, the app's import graph has no cycle (TYPE_CHECKING imports
count), and no module outside engine/methods asks a method its name."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run the contracts of ``root``/pyproject.toml on the packages under ``root`` (first on the path, so an
    installed copy of the project does not stand in for them)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-c", LINT, "--no-cache", str(root / "pyproject.toml")], cwd=str(root),
                          env=env, capture_output=True, text=True, timeout=120)


def test_import_contracts_are_kept():
    out = lint_imports(ROOT)
    text = out.stdout + out.stderr
    assert "No module named" not in text, "import-linter is missing: pip install -e '.[test]'"
    contracts = (ROOT / "pyproject.toml").read_text().count("[[tool.importlinter.contracts]]")
    assert contracts >= 9
    assert out.returncode == 0, text
    assert f"Contracts: {contracts} kept, 0 broken." in text, text


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """A scratch copy of the packages and the contracts, to break on purpose."""
    root = tmp_path_factory.mktemp("layers")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in ("engine", "app"):
        shutil.copytree(ROOT / pkg, root / pkg, ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize("path, code, broken", [
    # a read-out that reaches up to the training session
    ("engine/eval/_upward.py", "from engine.session import Session\n",
     ["Engine layers: imports only point down BROKEN",
      "Read-outs, methods and generators never import the session or its parts BROKEN"]),
    # a method that borrows a helper of the command line
    ("engine/methods/_upward.py", "def f():\n    from engine.cli import build_parser\n",
     ["Engine layers: imports only point down BROKEN", "Nothing in the engine imports the command line BROKEN"]),
    # the run-folder format importing a method
    ("engine/_unplaced.py", "import engine.methods\n", ["Engine layers: imports only point down BROKEN"]),
    # the engine importing Qt
    ("engine/data/_qt.py", "import PySide6.QtCore\n", ["The engine never imports Qt BROKEN"]),
])
def test_an_upward_import_is_caught(copy, path, code, broken):
    text = lint_planted(copy, path, code)
    for line in broken:
        assert line in text, text
    name = path[:-3].replace("/", ".")
    assert name in text, text  # the report names the offending module


def lint_planted(copy: Path, path: str, code: str) -> str:
    """lint-imports on ``copy`` with ``code`` written to ``path`` (or appended to it, if it exists); the module
    is put back as it was afterwards. Returns the report, which must say the contracts are broken."""
    bad = copy / path
    before = bad.read_text() if bad.exists() else None
    bad.write_text((before or "") + code)
    try:
        out = lint_imports(copy)
    finally:
        if before is None:
            bad.unlink()
        else:
            bad.write_text(before)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    return text


ROOMS = "Feature rooms never import each other BROKEN"
APP_LAYERS = "App layers: the window, the view list, the rooms, common, models BROKEN"
PANELS = "A room's parts never import its panel (only the view list does) BROKEN"
NO_WINDOW = "Nothing but the window imports the window BROKEN"
ACYCLIC = "No import cycle in app (TYPE_CHECKING imports count) BROKEN"


@pytest.mark.parametrize("path, code, broken, named", [
    # the map borrows a widget of the curves' room
    ("app/map/_peek.py", "from app.curves.plots import CurvePlots\n", [ROOMS], "app.map._peek -> app.curves.plots"),
    # a part of the map reaches for its panel, hidden behind TYPE_CHECKING: a circle (the panel imports the legend)
    ("app/map/legend.py", "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from app.map.panel import X\n",
     [PANELS, ACYCLIC], "app.map.legend -> app.map.panel"),
    # a part of the Run room pokes the window
    ("app/run/_up.py", "def f():\n    from app.window.main_window import MainWindow\n", [APP_LAYERS, NO_WINDOW],
     "app.run._up -> app.window.main_window"),
    # a shared widget that knows a room
    ("app/common/_up.py", "import app.map.model\n", [APP_LAYERS], "app.common._up -> app.map.model"),
    # a module of app/ outside every layer
    ("app/_stray.py", "import app.common.settings\n", [APP_LAYERS], "app._stray"),
])
def test_a_bad_import_in_the_app_is_caught(copy, path, code, broken, named):
    text = lint_planted(copy, path, code)
    for line in broken:
        assert line in text, text
    assert named in text, text  # the report names the import (or the module)


# -- the app's import graph, with TYPE_CHECKING imports ------------------------------------------------------------
def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, package: str = "app") -> dict[str, set[str]]:
    """Every module of ``package`` under ``root`` -> the modules of the package it imports anywhere in its
    text: at the top, in functions, and under ``if TYPE_CHECKING:``. ``from pkg import name`` counts as an
    import of ``pkg.name`` when that is a module, else of ``pkg``."""
    modules = {module_name(f, root): f for f in sorted((root / package).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, f in modules.items():
        deps: set[str] = set()
        is_pkg = f.name == "__init__.py"
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # import a.b.c: the deepest module of the package
                    target = target.rpartition(".")[0]
                if target and target != name and target.split(".")[0] == package:
                    deps.add(target)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph (its modules in import order, the first again at the end), or None."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_app_has_no_import_cycle():
    graph = import_graph(ROOT)
    assert len(graph) > 60 and graph["app.views"]  # it sees the modules and their imports
    assert "app.map.panel" in graph["app.views"] and "app.map.model" in graph["app.map.panel"]
    cycle = find_cycle(graph)
    assert cycle is None, "an import cycle in app/: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_a_type_checking_import(tmp_path):
    pkg = tmp_path / "app"
    (pkg / "room").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "room" / "__init__.py").write_text("")
    (pkg / "room" / "panel.py").write_text("from app.room import part\n")
    (pkg / "room" / "part.py").write_text("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                                          "    from .panel import Panel\n")
    (pkg / "room" / "other.py").write_text("def f():\n    import app.room.part\n")
    graph = import_graph(tmp_path)
    assert graph["app.room.other"] == {"app.room.part"}
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and sorted(set(cycle)) == ["app.room.panel", "app.room.part"]
    (pkg / "room" / "part.py").write_text("X = 1\n")
    assert find_cycle(import_graph(tmp_path)) is None


def _method_names() -> set[str]:
    from engine.methods import METHODS

    return set(METHODS)


def _names_compared(tree: ast.AST, names: set[str]):
    """Comparisons of something that names a method (``cfg.method``, ``d["method"]``, ``method.name``) with
    a literal method name (augmentation presets and row kinds that share a word are not method names)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare) or "method" not in ast.unparse(node):
            continue
        for side in (node.left, *node.comparators):
            items = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
            for item in items:
                if isinstance(item, ast.Constant) and item.value in names:
                    yield node.lineno, item.value


def test_no_module_outside_methods_tests_a_method_name():
    names = _method_names()
    found = []
    for base in ("engine", "app"):
        for f in sorted((ROOT / base).rglob("*.py")):
            rel = f.relative_to(ROOT).as_posix()
            if rel.startswith("engine/methods/"):
                continue
            for line, name in _names_compared(ast.parse(f.read_text(), rel), names):
                found.append(f"{rel}:{line} compares with {name!r}")
    assert not found, "ask the method through a hook instead:\n" + "\n".join(found)


def test_the_name_check_sees_a_name_test():
    tree = ast.parse('if cfg.method not in ("rotnet", "jigsaw"):\n    pass\nrot = d["method"] == "rotnet"\n'
                     'sup = info.method != "supervised"\nif name == "simclr":\n    pass\n')
    assert [n for _, n in _names_compared(tree, _method_names())] == ["rotnet", "jigsaw", "rotnet", "supervised"]
