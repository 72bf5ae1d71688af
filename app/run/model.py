"""The Run room without Qt: which run buttons an engine state allows, the base of "copy as command", a
method's description, and the fields of the run config the form leaves to the method picker."""

from __future__ import annotations

from engine.specs import method_about, recipe_for, setting_text

RUN_SKIP = ("method", "method_options")  # the Run form's "Run" section leaves these to the picker and options

ACTIVE = ("starting", "loading", "running", "paused", "stopping", "evaluating")  # engine states of a run


def button_states(state: str, ok: bool, checking: bool, can_resume: bool) -> dict:
    """Which controls the engine's ``state`` allows: ``ok`` the config has no errors, ``checking`` a Start
    waits for the engine's check, ``can_resume`` the last run has a checkpoint. ``edit``: the config
    may be reset or loaded."""
    active = state in ACTIVE
    return {"start": not active and ok and not checking, "pause": state in ("running", "paused"),
            "pause_text": "Resume" if state == "paused" else "Pause", "stop": active and state != "stopping",
            "resume_last": not active and can_resume, "edit": not active}


def command_base(model) -> tuple[dict, dict]:
    """(config, the defaults the command line leaves out) for ``engine.commands``: the config model's
    config and its method's defaults (no method options while there is no catalogue: all spelt out)."""
    cfg = model.config()
    base = model.method_defaults_dict(cfg["method"])
    if not model.method_info(cfg["method"]):  # no catalogue yet: spell every option out
        base["method_options"] = {}
    return cfg, base


BACKBONE_KINDS = {"vit": "ViT backbones", "cnn": "CNN backbones", "any": "any backbone"}


def method_description(info: dict | None, name: str) -> str:
    """The description (rich text) of a method's catalogue entry: what it learns and its paper first, then
    what it needs (measured) in smaller print; a placeholder while there is no entry."""
    if info is None:
        return f"<b>{name}</b><br><i>Loading the method catalogue …</i>"
    extra = []
    if info.get("needs_labels"):
        extra.append("needs labelled data")
    extra.append(BACKBONE_KINDS.get(info.get("backbone_kind", "any"), ""))
    about = method_about(info)
    needs = info.get("needs", "") if "about" in info else ""
    measured = (f"<p style='color:#555; font-size:small'><b>What it needs, measured.</b> {needs}</p>"
                if needs else "")
    return (f"<b>{info['title']}</b> <span style='color:#777'>({info.get('family', '')}; {', '.join(extra)})</span>"
            f"<p>{about}</p><p style='color:#777'>{info.get('paper', '')}</p>{measured}")


def recipe_text(info: dict, changes: dict, spec: str = "") -> str:
    """The Run view's words (rich text) for the recipe on data ``spec`` that would make ``changes``
    (:func:`recipe_changes`)."""
    from html import escape

    rows = "".join(f"<br>&nbsp;&nbsp;{escape(path)}: {escape(setting_text(path, old))} &rarr; "
                   f"<b>{escape(setting_text(path, new))}</b>" for path, (old, new) in changes.items())
    recipe = recipe_for(info, spec)
    head = "A recipe that learns, short of the aim." if recipe.get("short") else "A recipe that learns."
    return f"<b>{head}</b> {escape(recipe.get('why', ''))}{rows}"
