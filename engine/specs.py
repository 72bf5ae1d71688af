"""The built-in shapes' spec, ``builtin:shapes[:N][?shortcut=colour|light][&colours=typical]``, read without loading
anything and without torch: the data loader, the config's dataset recipe and the window's Data panel
all read it here, so they never disagree on what a spec means."""

from __future__ import annotations

SHAPES_NAMES = ("shapes", "shapes-test")
DEFAULT_COUNT = 6000
SHORTCUTS = ("none", "colour", "light")
# how a shape's colour is drawn: "any" (the default: independent of the shape) or "typical" (each shape has
# typical colours, as natural objects do: the lesson set on which colorization has something to learn)
COLOURS = ("any", "typical")
SPEC_HELP = "builtin:shapes[:N][?shortcut=colour|light][&colours=typical]"
OPTIONS_HELP = "shortcut=colour, shortcut=light or colours=typical"


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


def _option_item(item: str) -> tuple[str, str]:
    """One query item -> (option, value): ``shortcut=colour|color|light|none`` or ``colours=typical|any``
    (``colors`` too); ValueError with a line a user can act on for anything else."""
    key, sep, value = item.partition("=")
    key, value = key.strip().lower(), value.strip().lower()
    key = "colours" if key == "colors" else key
    if key not in ("shortcut", "colours") or not sep:
        raise ValueError(f"builtin:shapes takes the options {OPTIONS_HELP} ({SPEC_HELP}); got {item!r}")
    if key == "colours":
        if value not in COLOURS:
            raise ValueError(f"builtin:shapes colours must be one of {', '.join(COLOURS)} ({SPEC_HELP}), got {value!r}")
        return key, value
    value = "colour" if value == "color" else value
    if value not in SHORTCUTS:
        raise ValueError(f"builtin:shapes shortcut must be one of {', '.join(SHORTCUTS)}, got {value!r}")
    return key, value


def _items(query: str) -> list[str]:
    return [q.strip() for q in (query or "").split("&") if q.strip()]


def _lenient(query: str) -> dict:
    options = {"shortcut": "none", "colours": "any"}
    for item in _items(query):
        try:
            key, value = _option_item(item)
        except ValueError:
            continue
        options[key] = value
    return options


def shapes_shortcut(query: str) -> str:
    """The shortcut a query asks for (``none``, ``colour`` or ``light``), leniently: items that do not
    parse are passed over (loading the spec is what reports them)."""
    return _lenient(query)["shortcut"]


def shapes_colours(query: str) -> str:
    """How the query's shapes are coloured (``any`` or ``typical``), leniently as :func:`shapes_shortcut`."""
    return _lenient(query)["colours"]


def parse_shapes_query(rest: str) -> tuple[int, dict]:
    """``N`` or ``N?shortcut=colour`` (either part may be empty) -> (N images, options: ``shortcut`` and
    ``colours``); ValueError with a message a user can act on for anything else."""
    count, _, query = (rest or "").partition("?")
    options = {"shortcut": "none", "colours": "any"}
    for item in _items(query):
        key, value = _option_item(item)
        options[key] = value
    if options["shortcut"] == "colour" and options["colours"] == "typical":
        raise ValueError("builtin:shapes cannot take both shortcut=colour (every image its own colours) and "
                         "colours=typical (each shape its typical colours); choose one")
    return parse_count(count, "builtin:shapes", "an image count", DEFAULT_COUNT, 500_000, f" ({SPEC_HELP})"), options


def recipe_spec(current: str, wanted: str) -> str:
    """The data spec that a recipe asking for ``wanted`` makes of ``current``: ``current`` itself where it
    already is what ``wanted`` asks (built-in shapes with the same options, whatever their count), the built-in
    shapes of ``current``'s count with ``wanted``'s options where both are built-in shapes, ``wanted`` otherwise."""
    have, want = shapes_parts(current), shapes_parts(wanted)
    if have is None or want is None:
        return current if (current or "").strip() == (wanted or "").strip() else wanted
    if _lenient(have[1]) == _lenient(want[1]):
        return current
    count = have[0] if have[0].isdigit() else want[0]
    return "builtin:shapes" + (f":{count}" if count else "") + (f"?{want[1].strip()}" if want[1].strip() else "")


BUILT_IN_NAMES = ("shapes", "shapes-test", "clips", "clips-test")


def is_photo_spec(spec: str) -> bool:
    """Whether the data spec names photographs (a folder of images, a torchvision set) rather than built-in
    data (``builtin:...``, ``shapes...``, ``clips...``); an empty spec is not."""
    s = (spec or "").strip().lower()
    if not s or s.startswith("builtin:"):
        return False
    return s.partition("?")[0].partition(":")[0] not in BUILT_IN_NAMES


def recipe_for(entry: dict | None, spec: str) -> dict:
    """The recipe that learns (``{"overrides": ..., "why": ...}``; {} for none) that a method's catalogue entry
    ``entry`` offers on data ``spec``: its ``photo_recipe`` on photographs where it has one, else its ``recipe``."""
    entry = entry or {}
    if entry.get("photo_recipe") and is_photo_spec(spec):
        return entry["photo_recipe"]
    return entry.get("recipe") or {}


AT_LEAST = ("minutes", "epochs")  # a recipe's budget: a longer one follows it too


def recipe_changes(info: dict | None, cfg: dict) -> dict:
    """What applying the method's recipe for the config's data (its catalogue entry's ``recipe``, or its
    ``photo_recipe`` on photographs: ``recipe_for``) would change in the run config
    ``cfg``: dotted path -> (value now, the recipe's value); {} where the method has no recipe or the config
    already follows it. A data spec keeps its count (``recipe_spec``); a budget (``minutes``,
    ``epochs``) is followed by any longer one, and where the recipe's budget applies, the other bound is lifted
    (a run ends at the first of the two: the recipe's budget is the budget)."""
    overrides = recipe_for(info, str((cfg.get("data") or {}).get("spec") or "")).get("overrides") or {}
    out = {}
    for path, want in overrides.items():
        cur = cfg
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None  # None: a path the config does not have yet
        if path == "data.spec":
            want = recipe_spec(str(cur or ""), str(want))
        if path in AT_LEAST and isinstance(cur, (int, float)) and isinstance(want, (int, float)) and cur >= want:
            continue
        if cur != want:
            out[path] = (cur, want)
    for path, other, unbounded in (("minutes", "epochs", 0), ("epochs", "minutes", 0.0)):
        # the recipe's budget is the budget: the other bound (first of the two ends a run) goes
        if path in out and other not in overrides and cfg.get(other):
            out[other] = (cfg.get(other), unbounded)
    return out


def measured_kind(spec: str) -> str | None:
    """Which of the workbench's measured sets (``engine/methods/measured.json``: "shapes", "photos", "clips")
    speaks for data ``spec``: the built-in shapes (any count; a variant with a query is another set) and clips,
    and photographs (measured on cifar10-small); None for any other."""
    s = (spec or "").strip().lower()
    if s.startswith("builtin:"):
        s = s[len("builtin:"):]
    head, _, query = s.partition("?")
    name = head.partition(":")[0].strip()
    if name in ("shapes", "clips"):
        return None if query.strip() else name
    return "photos" if is_photo_spec(spec) else None


def row_gain(row: dict | None) -> tuple[float, float] | None:
    """(kNN over an untrained encoder, the margin aimed at) of one measured row (``engine.methods.measured_rows``);
    None for no row or one the file's writer did not make."""
    try:
        return float(row["knn"]) - float(row["random_init"]), float(row["target"])
    except (KeyError, TypeError, ValueError):
        return None


def _measured_row(entry: dict | None, spec: str) -> dict | None:
    return ((entry or {}).get("measured") or {}).get(measured_kind(spec) or "")


def measured_gain(entry: dict | None, spec: str) -> tuple[float, float] | None:
    """``row_gain`` of a method's defaults on data like ``spec`` (its catalogue entry's ``measured``); None where
    nothing was measured on such data, or the row is malformed."""
    return row_gain(_measured_row(entry, spec))


def method_about(entry: dict | None) -> str:
    """What a method learns: its catalogue entry's ``about`` (the description without what it needs), or the whole
    description from an entry that has no ``about``; "" for no entry."""
    entry = entry or {}
    return entry.get("about", entry.get("description", ""))


def measured_text(entry: dict | None, spec: str) -> str:
    """One sentence on how a method's defaults did on data like ``spec`` (its catalogue entry's ``measured``,
    from ``bench/methods.py --record``): the minutes, steps, kNN against an untrained encoder and the margin
    the workbench aims at; "" where nothing was measured on such data."""
    row = _measured_row(entry, spec)
    got = row_gain(row)
    if got is None:
        return ""
    gain, aim = got
    if gain >= aim:
        verdict = f"it learns here (the aim is +{aim:.2f})"
    elif gain > 0:
        verdict = f"it learns, short of the +{aim:.2f} aimed at"
    else:
        verdict = "it does not beat an untrained encoder here"
    recipe = recipe_for(entry, spec)
    if gain < aim and recipe:
        verdict += ("; its recipe for this data (Use the recipe that learns, train --recipe) "
                    + ("beats random init, short of the aim" if recipe.get("short") else "does"))
    elif gain < aim:
        verdict += "; nothing measured on a CPU reaches it yet (the text above says what was tried)"
    try:
        return (f"On {row['words']}, {float(row['minutes']):g} minutes with its defaults ({int(row['steps']):,} steps "
                f"on a 2-core CPU) gave kNN {float(row['knn']):.3f} against {float(row['random_init']):.3f} "
                f"untrained, {gain:+.3f}: {verdict}. Measured {row['date']}, {row['table']}.")
    except (KeyError, TypeError, ValueError):  # a row the file's writer did not make
        return ""


def setting_text(path: str, value) -> str:
    """A config value as a recipe shows it: 0 minutes or epochs say that the bound is off, batch size 0 is auto."""
    if path == "minutes" and value == 0:
        return "0 (no time limit)"
    if path == "epochs" and value == 0:
        return "0 (the minutes decide)"
    if path == "optim.batch_size" and value == 0:
        return "auto"
    return str(value)


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


__all__ = ["AT_LEAST", "COLOURS", "DEFAULT_COUNT", "OPTIONS_HELP", "SHAPES_NAMES", "SHORTCUTS", "SPEC_HELP",
           "is_photo_spec", "measured_gain", "measured_kind", "measured_text", "method_about", "parse_count",
           "parse_shapes_query", "recipe_changes", "recipe_for", "recipe_spec", "row_gain", "setting_text",
           "shapes_colours", "shapes_parts", "shapes_shortcut"]
