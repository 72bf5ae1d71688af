"""Declarative parameters for config dataclasses.

Every tunable field of a config dataclass is declared with :func:`param`, which stores the
help text, bounds and choices in the field's metadata. From that one declaration we derive
validation, the command line and the GUI's run form, so no method needs a hand-written form.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import MISSING, field
from typing import Any

from engine.errors import BadInput


class ConfigError(BadInput, ValueError):
    """A config value is wrong. ``path`` names the field (``optim.lr``)."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def param(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: list | tuple | None = None,
    log: bool = False,
    label: str | None = None,
    advanced: bool = False,
    zero: str | None = None,
    legacy: Any = MISSING,
) -> Any:
    """A dataclass field with the metadata the validators and forms read. ``zero``: a word for the value 0
    of a number that ``min`` otherwise keeps above it (``"auto"``); the CLI takes the word, the form shows it.
    ``legacy``: for an option added with a default that changes how a method trains, the value that gives the
    old behaviour, which a run saved before the option existed keeps when it resumes (``legacy_options``)."""
    meta = {
        "zero": zero,
        "help": help,
        "min": min,
        "max": max,
        "choices": tuple(choices) if choices is not None else None,
        "log": log,
        "label": label,
        "advanced": advanced,
    }
    if legacy is not MISSING:
        meta["legacy"] = legacy
    if isinstance(default, (list, dict, set)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata=meta)
    return field(default=default, metadata=meta)


def legacy_options(cls, saved: dict) -> dict:
    """The options of dataclass ``cls`` that a config saved before they existed (``saved``, its options as
    written then) lacks and that declare a ``legacy`` value: name -> that value, which trains as the run did."""
    return {f.name: f.metadata["legacy"] for f in dataclasses.fields(cls)
            if "legacy" in f.metadata and f.name not in saved}


def _resolve_types(cls) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # pragma: no cover - forward refs we cannot resolve
        return {f.name: f.type for f in dataclasses.fields(cls)}


def field_specs(cls_or_obj) -> list[dict]:
    """A list of plain dicts describing each field: name, type, default, help, bounds, choices.

    The GUI builds its form from this list (it never needs to import the dataclass itself).
    """
    cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
    hints = _resolve_types(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if f.name.startswith("_"):
            continue
        tp = hints.get(f.name, f.type)
        if dataclasses.is_dataclass(tp):
            continue
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)  # type: ignore[misc]
        if not isinstance(cls_or_obj, type):
            default = getattr(cls_or_obj, f.name)
        meta = dict(f.metadata)
        specs.append({
            "name": f.name,
            "type": _type_name(tp),
            "default": default,
            "help": meta.get("help", ""),
            "min": meta.get("min"),
            "max": meta.get("max"),
            "choices": list(meta["choices"]) if meta.get("choices") else None,
            "log": meta.get("log", False),
            "label": meta.get("label") or f.name.replace("_", " "),
            "advanced": meta.get("advanced", False),
            "zero": meta.get("zero"),
        })
    return specs


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _type_name(args[0]) if args else "str"
    if origin in (list, tuple) or tp in (list, tuple):
        return "list"
    if origin is dict or tp is dict:
        return "dict"
    if tp in (bool, int, float, str):
        return tp.__name__
    return "str"


def coerce(value: Any, type_name: str, path: str, zero: str | None = None) -> Any:
    """Turn ``value`` (from JSON, a CLI string or a form) into the field's type or raise. ``zero``: the
    field's word for 0 (see :func:`param`), taken in place of it."""
    if zero and isinstance(value, str) and value.strip().lower() == zero:
        return 0
    try:
        if type_name == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if isinstance(value, (bool, int)):
                return bool(value)
            raise ValueError
        if type_name == "int":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return int(str(value).strip())
        if type_name == "float":
            if isinstance(value, bool):
                raise ValueError
            out = float(value)
            if math.isnan(out):
                raise ValueError
            return out
        if type_name == "str":
            if not isinstance(value, str):
                raise ValueError
            return value
        if type_name == "list":
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            return list(value)
        if type_name == "dict":
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
    except (TypeError, ValueError):
        raise ConfigError(path, f"expected a {type_name}, got {value!r}") from None
    return value


def check_bounds(spec: dict, value: Any, path: str) -> None:
    if spec["choices"] and value not in spec["choices"]:
        allowed = ", ".join(str(c) for c in spec["choices"])
        raise ConfigError(path, f"{value!r} is not allowed; choose one of: {allowed}")
    if spec["type"] in ("int", "float"):
        if value == 0 and spec.get("zero"):
            return
        if spec["min"] is not None and value < spec["min"]:
            also = f" (or 0: {spec['zero']})" if spec.get("zero") else ""
            raise ConfigError(path, f"{value} is below the minimum {spec['min']}{also}")
        if spec["max"] is not None and value > spec["max"]:
            raise ConfigError(path, f"{value} is above the maximum {spec['max']}")


def from_dict(cls, data: dict | None, path: str = ""):
    """Build dataclass ``cls`` from a plain dict, coercing and validating every value.

    Unknown keys are an error that lists the allowed ones (a typo never goes unnoticed).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        where = path or "the config"
        raise ConfigError(path, f"{where} is a section of options and takes a JSON object such as "
                                f'{{"key": value}}, not {data!r}')
    data = dict(data)
    hints = _resolve_types(cls)
    kwargs = {}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = path or cls.__name__
        raise ConfigError(path, f"unknown option(s) {', '.join(unknown)} in {where}; "
                                f"allowed: {', '.join(sorted(n for n in names if not n.startswith('_')))}")
    specs = {s["name"]: s for s in field_specs(cls)}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        sub = f"{path}.{f.name}" if path else f.name
        tp = hints.get(f.name, f.type)
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = from_dict(tp, data[f.name], sub)
            continue
        spec = specs.get(f.name)
        if spec is None:
            kwargs[f.name] = data[f.name]
            continue
        kwargs[f.name] = field_value(spec, data[f.name], sub)
    obj = cls(**kwargs)
    validate(obj, path)
    return obj


def field_value(spec: dict, value: Any, path: str) -> Any:
    """``value`` (from JSON, a CLI string or a form) as the field of ``spec`` takes it: coerced to its type
    (its word for 0 included) and checked against its bounds; a ConfigError otherwise."""
    value = coerce(value, spec["type"], path, spec.get("zero"))
    check_bounds(spec, value, path)
    return value


def validate(obj, path: str = "") -> None:
    """Check every field of ``obj`` against its metadata, then its own ``check()`` if any."""
    for spec in field_specs(type(obj)):
        sub = f"{path}.{spec['name']}" if path else spec["name"]
        value = getattr(obj, spec["name"])
        if value is None:
            continue
        check_bounds(spec, value, sub)
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            validate(value, f"{path}.{f.name}" if path else f.name)
    check = getattr(obj, "check", None)
    if callable(check):
        check(path)


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)
