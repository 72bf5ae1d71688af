"""MkDocs hook: files outside docs/ that a page links to (the screenshots in resources/screenshots/, the
pictures in bench/results/) are published with the site, and the page's link is pointed at the copy.

A page writes the link as the repository has it (``../resources/screenshots/data.png`` from docs/window.md), so
the same Markdown shows its pictures on GitHub and on the site, and nothing is copied into docs/. Only files that
exist are published: a link to a missing file stays as it is, and the strict build reports it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File

# the target of a Markdown link or image: ](target) or ](target "title")
_LINK = re.compile(r"(\]\()(<?)([^)\s>#]+)")
_SKIP = ("http://", "https://", "mailto:", "/", "#")


def _outside(page_uri: str, target: str) -> str | None:
    """The repository path of ``target`` when, seen from the page ``page_uri`` (relative to docs/), it leaves
    docs/ (``../resources/x.png`` -> ``resources/x.png``); else None."""
    if target.startswith(_SKIP) or ":" in target.split("/")[0]:
        return None
    path = posixpath.normpath(posixpath.join(posixpath.dirname(page_uri), target))
    if not path.startswith("../") or path.startswith("../../"):
        return None
    return path[3:]


def _linked_outside(docs: Path) -> set[str]:
    found = set()
    for md in docs.rglob("*.md"):
        uri = md.relative_to(docs).as_posix()
        for _, _, target in _LINK.findall(md.read_text(encoding="utf-8")):
            path = _outside(uri, target)
            if path and not path.endswith(".md"):
                found.add(path)
    return found


def on_files(files, config):
    docs = Path(config["docs_dir"]).resolve()
    repo = docs.parent
    for path in sorted(_linked_outside(docs)):
        if (repo / path).is_file() and files.get_file_from_path(path) is None:
            files.append(File(path, src_dir=str(repo), dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    uri = page.file.src_uri
    here = posixpath.dirname(uri)

    def point(match):
        path = _outside(uri, match.group(3))
        if path is None or files.get_file_from_path(path) is None:
            return match.group(0)
        return match.group(1) + match.group(2) + posixpath.relpath(path, here or ".")

    return _LINK.sub(point, markdown)
