"""The layering of DESIGN.md, enforced: import-linter's contracts in pyproject.toml are kept, an upward
import breaks them, and no module outside engine/methods asks a method its name."""

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
    assert contracts >= 4
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
    bad = copy / path
    bad.write_text(code)
    try:
        out = lint_imports(copy)
    finally:
        bad.unlink()
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    for line in broken:
        assert line in text, text
    name = path[:-3].replace("/", ".")
    assert name in text, text  # the report names the offending module


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
