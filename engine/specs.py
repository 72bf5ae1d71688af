"""The built-in shapes' spec, ``builtin:shapes[:N][?shortcut=colour|light]``, read without loading
anything and without torch: the data loader, the config's dataset recipe and the window's Data panel
all read it here, so they never disagree on what a spec means."""

from __future__ import annotations

SHAPES_NAMES = ("shapes", "shapes-test")
DEFAULT_COUNT = 6000
SHORTCUTS = ("none", "colour", "light")
SPEC_HELP = "builtin:shapes[:N][?shortcut=colour|light]"


def shapes_parts(spec: str) -> tuple[str, str] | None:
    """``builtin:shapes:500?shortcut=colour`` (or ``shapes...``, ``builtin:shapes-test...``) ->
    ``("500", "shortcut=colour")``: the count and the query, as written; None for any other spec."""
    s = (spec or "").strip()
    if s.lower().startswith("builtin:"):
        s = s[len("builtin:"):]
    head, _, query = s.partition("?")
    name, _, count = head.partition(":")
    if name.strip().lower() not in SHAPES_NAMES:
        return None
    return count.strip(), query


def _shortcut_item(item: str) -> str:
    """One query item -> its shortcut; ValueError when it is not ``shortcut=colour|color|light|none``."""
    key, sep, value = item.partition("=")
    key, value = key.strip().lower(), value.strip().lower()
    if key != "shortcut" or not sep:
        raise ValueError(f"builtin:shapes has one option, shortcut=colour or shortcut=light ({SPEC_HELP}); "
                         f"got {item!r}")
    value = "colour" if value == "color" else value
    if value not in SHORTCUTS:
        raise ValueError(f"builtin:shapes shortcut must be one of {', '.join(SHORTCUTS)}, got {value!r}")
    return value


def _items(query: str) -> list[str]:
    return [q.strip() for q in (query or "").split("&") if q.strip()]


def shapes_shortcut(query: str) -> str:
    """The shortcut a query asks for (``none``, ``colour`` or ``light``), leniently: items that do not
    parse are passed over (loading the spec is what reports them)."""
    shortcut = "none"
    for item in _items(query):
        try:
            shortcut = _shortcut_item(item)
        except ValueError:
            pass
    return shortcut


def parse_shapes_query(rest: str) -> tuple[int, dict]:
    """``N`` or ``N?shortcut=colour`` (either part may be empty) -> (N images, options); ValueError with
    a message a user can act on for anything else."""
    count, _, query = (rest or "").partition("?")
    options = {"shortcut": "none"}
    for item in _items(query):
        options["shortcut"] = _shortcut_item(item)
    return parse_count(count, "builtin:shapes", "an image count", DEFAULT_COUNT, 500_000, f" ({SPEC_HELP})"), options


def parse_count(text: str, dataset: str, noun: str, default: int, high: int, hint: str = "") -> int:
    """The count after a built-in dataset's colon (``default`` when empty), 16 to ``high``; ValueError
    naming ``dataset`` otherwise (``noun``: what it counts, e.g. "an image count")."""
    text = (text or "").strip()
    if not text:
        return default
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{dataset} takes {noun} after a colon{hint}, got {text!r}") from None
    if not 16 <= n <= high:
        raise ValueError(f"{dataset} count must be between 16 and {high}, got {n}")
    return n


__all__ = ["DEFAULT_COUNT", "SHAPES_NAMES", "SHORTCUTS", "SPEC_HELP", "parse_count", "parse_shapes_query", "shapes_parts",
           "shapes_shortcut"]
