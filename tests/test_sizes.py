"""The house stays readable: no module over 600 lines and no class over 300 in engine/ and app/
(CONTRIBUTING.md: split along a real seam, a Qt-free model, a part of the session, a small widget)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE_LINES, CLASS_LINES = 600, 300


def too_long(paths, root: Path) -> list[str]:
    found = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        rel, lines = path.relative_to(root), text.count("\n")
        if lines > MODULE_LINES:
            found.append(f"{rel}: {lines} lines (at most {MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > CLASS_LINES:
                found.append(f"{rel}: class {node.name} {node.end_lineno - node.lineno + 1} lines (at most {CLASS_LINES})")
    return found


def test_no_module_or_class_too_long():
    paths = [p for pkg in ("engine", "app") for p in sorted((ROOT / pkg).rglob("*.py"))]
    assert len(paths) > 50
    found = too_long(paths, ROOT)
    assert not found, "split these along a real seam:\n" + "\n".join(found)


def test_the_check_finds_a_long_class_and_a_long_module(tmp_path):
    cls = tmp_path / "cls.py"
    cls.write_text("class Big:\n" + "\n".join(f"    x{i} = {i}" for i in range(CLASS_LINES)) + "\n")
    mod = tmp_path / "mod.py"
    mod.write_text("\n".join(f"x{i} = {i}" for i in range(MODULE_LINES + 1)) + "\n")
    ok = tmp_path / "ok.py"
    ok.write_text("class Small:\n    pass\n")
    found = too_long([cls, mod, ok], tmp_path)
    assert len(found) == 2 and "class Big" in found[0] and found[1].startswith("mod.py")
