"""The run config the window edits, shared by the Run form and the Pretext preview.

Holds the config as a plain dict (the shape of ``engine.config.RunConfig.to_dict()``) plus the
option values of every method the user touched, so a slider moved in the preview (say MAE's mask
ratio, or SimCLR's blur strength) is exactly what the next run trains with. Everything here is
torch-free: the method catalogue comes from the service process (and is cached on disk).
"""

from __future__ import annotations

import copy

from PySide6.QtCore import QObject, Signal

from engine.config import RunConfig, apply_run_defaults, data_recipe, recipe_options
from engine.params import ConfigError, field_value

SECTIONS = ("data", "optim", "eval")


def default_run_config() -> dict:
    """A run that shows a curve within seconds on a laptop CPU: SimCLR, small CNN, 2k shapes, small batch."""
    d = RunConfig().to_dict()
    d.update(method="simclr", backbone="auto", minutes=2.0, epochs=0, device="auto", seed=0)
    d["data"].update(spec="builtin:shapes:2000", image_size=32)
    d["optim"].update(optimizer="adamw", lr=2e-3, weight_decay=1e-4, batch_size=64)
    # the embedding map and the kNN monitor follow the run by time: a snapshot before the first step (the
    # random-init map) and every 4 s of training after it, so the map refreshes within 5 s (spaced out if they
    # would cost training over 10%)
    d["eval"].update(knn_every_epochs=0, monitor_size=500, bank_size=2000, linear_probe_epochs=30,
                     embed_every_epochs=0, snapshot_every_s=4.0)
    # the built-in shapes bring their own recipe (engine.config.data_recipe): strong hue/grey jitter and
    # crops of at least 40%, so the views are not told apart by colour and the encoder learns shape
    d["method_options"] = {}
    return d


def get_path(d: dict, path: str):
    cur = d
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(path)
        cur = cur[part]
    return cur


def set_path(d: dict, path: str, value) -> None:
    parts = path.split(".")
    cur = d
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


def check_value(spec: dict, value, path: str):
    """Coerce and bound-check one form value; raises ConfigError with a user-facing message."""
    if spec["type"] in ("int", "float", "bool") and isinstance(value, str):
        value = value.strip()
        if value == "":
            raise ConfigError(path, f"enter a {spec['type']}")
    return field_value(spec, value, path)


def own_changes(values: dict, base: dict) -> dict:
    """What in ``values`` differs from ``base``: the user's own settings (a dict option, such as a method's
    ``augment``, counts whole: what the user sets replaces the recipe's, as in ``engine.config.default_config``)."""
    return {k: copy.deepcopy(v) for k, v in values.items() if k not in base or base[k] != v}


def method_note(name: str, notes: list[str]) -> str:
    """What the status bar says after switching to method ``name`` changed settings (``notes``, as
    :meth:`ConfigModel.set_method` returns them); "" when nothing changed."""
    return f"{name}: its recommended settings apply ({', '.join(notes)})" if notes else ""


class ConfigModel(QObject):
    changed = Signal(str)  # a dotted path ("optim.lr", "method_options.mask_ratio"); "" = everything
    method_changed = Signal(str)
    options_changed = Signal(str, str)  # (method, option): any method's options, shown or not
    catalogue_changed = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._cfg = default_run_config()
        # the default run's own options (its demo views), not only the method's defaults
        self._options: dict[str, dict] = {self._cfg["method"]: copy.deepcopy(self._cfg["method_options"])}
        self.catalogue: dict | None = None

    # -- catalogue ---------------------------------------------------------------------------
    def set_catalogue(self, cat: dict) -> None:
        self.catalogue = cat
        self.catalogue_changed.emit()
        self.changed.emit("")

    def methods(self) -> list[dict]:
        return list((self.catalogue or {}).get("methods", []))

    def method_info(self, name: str | None = None) -> dict | None:
        name = name or self.method
        for m in self.methods():
            if m["name"] == name:
                return m
        return None

    def option_specs(self, method: str | None = None) -> list[dict]:
        info = self.method_info(method)
        return list(info["options"]) if info else []

    def backbones(self) -> list[str]:
        return [b["name"] for b in (self.catalogue or {}).get("backbones", [])]

    # -- reading -----------------------------------------------------------------------------
    @property
    def method(self) -> str:
        return self._cfg["method"]

    def recipe_for(self, method: str, spec: str | None = None) -> dict:
        """The method's options before the user's changes: its defaults, then what the dataset (``spec``, the
        config's by default) recommends (``engine.config.default_config`` gives the same)."""
        out = {s["name"]: copy.deepcopy(s["default"]) for s in self.option_specs(method)}
        spec = self._cfg["data"].get("spec", "") if spec is None else spec
        out.update(recipe_options(out, spec))  # what the dataset recommends (a whole dict, as default_config)
        return out

    def user_options(self, method: str) -> dict:
        """What the user changed of the method's options."""
        return copy.deepcopy(self._options.get(method, {}))

    def options_for(self, method: str) -> dict:
        """The method's options: its defaults, what the dataset recommends, then what the user set."""
        out = self.recipe_for(method)
        out.update(copy.deepcopy(self._options.get(method, {})))
        return out

    def config(self) -> dict:
        """The full run config as a dict (a copy)."""
        d = copy.deepcopy(self._cfg)
        d["method_options"] = self.options_for(self.method)
        return d

    def get(self, path: str):
        if path.startswith("method_options."):
            return self.options_for(self.method).get(path.split(".", 1)[1])
        return copy.deepcopy(get_path(self._cfg, path))

    def method_defaults_dict(self, method: str | None = None) -> dict:
        """What ``engine.config.default_config(method).to_dict()`` gives, computed from the catalogue
        (the base the command line starts from)."""
        method = method or self.method
        info = self.method_info(method) or {}
        d = apply_run_defaults(RunConfig(method=method).to_dict(), info.get("run_defaults") or {})
        d["method_options"] = {s["name"]: copy.deepcopy(s["default"]) for s in info.get("options", [])}
        d["method_options"].update(recipe_options(d["method_options"], self._cfg["data"].get("spec", "")))
        d["data"]["spec"] = self._cfg["data"].get("spec", d["data"]["spec"])
        return d

    # -- writing -----------------------------------------------------------------------------
    def set(self, path: str, value) -> None:
        if path.startswith("method_options."):
            self.set_option(self.method, path.split(".", 1)[1], value)
            return
        if path == "method":
            self.set_method(value)
            return
        try:
            old = get_path(self._cfg, path)
            if old == value:
                return
        except KeyError:
            old = None
        set_path(self._cfg, path, copy.deepcopy(value))
        self.changed.emit(path)
        if path == "data.spec" and data_recipe(str(old or "")) != data_recipe(str(value or "")):
            # another dataset recommends other options: whatever shows a method's options (the Pretext
            # preview may show another method than the run's) follows
            for name in dict.fromkeys([self.method, *(m["name"] for m in self.methods())]):
                self.options_changed.emit(name, "")

    def set_option(self, method: str, name: str, value) -> None:
        current = self.options_for(method).get(name)
        if current == value:
            return
        self._options.setdefault(method, {})[name] = copy.deepcopy(value)
        self.options_changed.emit(method, name)
        if method == self.method:
            self.changed.emit(f"method_options.{name}")

    def reset_options(self, method: str, names: list[str] | None = None) -> None:
        opts = self._options.get(method, {})
        for n in list(opts) if names is None else names:
            opts.pop(n, None)
        self.options_changed.emit(method, "")
        if method == self.method:
            self.changed.emit("")

    def set_method(self, name: str, apply_defaults: bool = True) -> list[str]:
        """Switch method; its recommended optimiser settings and backbone apply, and the batch size becomes auto
        (0: the method's own batch on a CPU, the one its measured tables used; on a GPU one sized to its memory).
        Returns what changed, as short texts."""
        if name == self.method:
            return []
        self._cfg["method"] = name
        notes = []
        info = self.method_info(name)
        if apply_defaults and self._cfg["optim"].get("batch_size") != 0:
            self._cfg["optim"]["batch_size"] = 0
            notes.append("batch size auto")
        if apply_defaults and info:
            rd = info.get("run_defaults") or {}
            for key, value in (rd.get("optim") or {}).items():
                if key == "batch_size":
                    continue
                if self._cfg["optim"].get(key) != value:
                    self._cfg["optim"][key] = value
                    notes.append(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}")
            if "backbone" in rd and self._cfg.get("backbone") != rd["backbone"]:
                self._cfg["backbone"] = rd["backbone"]
                notes.append(f"backbone {rd['backbone']}")
            if info.get("backbone_kind") in ("vit", "cnn") and self._cfg.get("backbone") not in ("auto", None):
                kind = "vit" if str(self._cfg["backbone"]).startswith("vit") else "cnn"
                if kind != info["backbone_kind"]:
                    self._cfg["backbone"] = "auto"
                    notes.append("backbone auto")
        self.method_changed.emit(name)
        self.changed.emit("")
        return notes

    def load_dict(self, d: dict, keep_options: bool = False) -> None:
        """Replace the config (from a file, a run folder or the last session); unknown keys are dropped. Its
        method options count as the user's where they differ from the method's defaults and its dataset's
        recipe (so a later change of dataset brings that dataset's recipe); ``keep_options``: keep the user's
        options as they are."""
        base = default_run_config()
        for key, value in d.items():
            if key == "method_options":
                continue
            if key in SECTIONS and isinstance(value, dict):
                base[key].update({k: v for k, v in value.items() if k in base[key]})
            elif key in base:
                base[key] = value
        self._cfg = base
        opts = d.get("method_options") or {}
        if isinstance(opts, dict) and not keep_options:
            self._options[base["method"]] = own_changes(opts, self.recipe_for(base["method"]))
        self.method_changed.emit(base["method"])
        self.changed.emit("")

    def state(self) -> dict:
        """Everything worth remembering across launches."""
        return {"config": self.config(), "options": copy.deepcopy(self._options)}

    def restore(self, state: dict) -> None:
        """The last session's config and the user's options (what equals the recipe of the session's dataset is
        not the user's: a session of an older version saved the recipe with them)."""
        if not isinstance(state, dict):
            return
        opts = state.get("options")
        kept = isinstance(opts, dict)
        if isinstance(state.get("config"), dict):
            self.load_dict(state["config"], keep_options=kept)
        if kept:
            self._options = {k: own_changes(v, self.recipe_for(k)) for k, v in opts.items() if isinstance(v, dict)}
            self.options_changed.emit(self.method, "")
            self.changed.emit("")
