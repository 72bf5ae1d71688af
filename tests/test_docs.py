"""The documentation: the site builds with warnings as errors (broken links and anchors included), the pictures
the pages share with the README reach the site, every relative link of the README points to a file, the README
opens with its set-up commands, and the changelog names the version being released."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(<?([^)\s>]+)")


def _mkdocs_build(project: Path, site: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("mkdocs")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                           str(project / "mkdocs.yml"), "--site-dir", str(site)],
                          capture_output=True, text=True, timeout=240)


def test_the_site_builds_strictly(tmp_path):
    out = _mkdocs_build(ROOT, tmp_path / "site")
    assert out.returncode == 0, out.stderr[-3000:]
    site = tmp_path / "site"
    assert (site / "index.html").is_file() and (site / "methods" / "index.html").is_file()
    # the window page shows the README's screenshots, published from resources/screenshots/
    html = (site / "window.html").read_text(encoding="utf-8")
    assert 'src="resources/screenshots/data.png"' in html
    assert (site / "resources" / "screenshots" / "data.png").read_bytes() == \
        (ROOT / "resources" / "screenshots" / "data.png").read_bytes()


def _mini_project(tmp_path: Path, page: str) -> Path:
    project = tmp_path / "project"
    (project / "docs" / "sub").mkdir(parents=True)
    (project / "resources").mkdir()
    (project / "resources" / "shot.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    shutil.copy(ROOT / "docs" / "hooks.py", project / "docs" / "hooks.py")
    (project / "mkdocs.yml").write_text(
        "site_name: t\nstrict: true\nuse_directory_urls: false\nhooks: [docs/hooks.py]\nexclude_docs: /hooks.py\n"
        "validation:\n  links:\n    not_found: warn\n    anchors: warn\n    unrecognized_links: warn\n",
        encoding="utf-8")
    (project / "docs" / "index.md").write_text("# Home\n\n[sub](sub/page.md)\n", encoding="utf-8")
    (project / "docs" / "sub" / "page.md").write_text(page, encoding="utf-8")
    return project


def test_a_picture_outside_docs_reaches_the_site_from_any_depth(tmp_path):
    project = _mini_project(tmp_path, "# Page\n\n![a shot](../../resources/shot.png)\n")
    out = _mkdocs_build(project, tmp_path / "site")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "resources" / "shot.png").is_file()
    assert 'src="../resources/shot.png"' in (tmp_path / "site" / "sub" / "page.html").read_text(encoding="utf-8")
    assert not (tmp_path / "site" / "hooks.py").exists()


@pytest.mark.parametrize("page", ["# Page\n\n![gone](../../resources/missing.png)\n",
                                  "# Page\n\n[nowhere](../nowhere.md)\n",
                                  "# Page\n\n[no such part](../index.md#no-such-heading)\n"])
def test_a_broken_link_fails_the_strict_build(tmp_path, page):
    out = _mkdocs_build(_mini_project(tmp_path, page), tmp_path / "site")
    assert out.returncode != 0 and "strict mode" in out.stderr + out.stdout


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_relative_link_of_the_readme_points_to_a_file():
    targets = [t for t in LINK.findall(_readme()) if not re.match(r"[a-z]+:|#", t)]
    assert len(targets) >= 10
    missing = [t for t in targets if not (ROOT / t.split("#", 1)[0]).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_the_readme_opens_with_the_set_up_commands():
    text = _readme()
    first_section = text.index("\n## ")
    commands = [
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python main.py",
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && QT_QPA_PLATFORM=offscreen "
        ".venv/bin/python -m pytest",
        "python3 -m venv .venv && .venv/bin/pip install torch torchvision --index-url "
        "https://download.pytorch.org/whl/cpu && .venv/bin/pip install -e . && .venv/bin/python main.py",
    ]
    places = [text.find("    " + c + "\n") for c in commands]
    assert all(0 < p < first_section for p in places), places
    assert places == sorted(places)
    assert len(text.splitlines()) <= 250


def test_the_changelog_starts_with_the_version_in_pyproject():
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    changelog = (ROOT / "docs" / "changelog.md").read_text(encoding="utf-8")
    assert re.findall(r"^## (\S+)", changelog, re.M)[0] == version


def test_user_pages_say_nothing_about_how_the_project_was_built():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    words = re.compile(r"\bissues? \d+|\bhelpers?\b|\bsessions?\b", re.I)
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in pages if not p.name.startswith("architecture")
             for m in words.finditer(p.read_text(encoding="utf-8"))]
    assert not found, found
