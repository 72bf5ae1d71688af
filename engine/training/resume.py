"""What ``--resume`` may change in a run, and what it says about it.

A resumed run continues from its checkpoint with its own ``config.json``. Settings that are safe
to change mid-run (the learning rate and gradient clipping, the budget, the evaluation settings
and the final-evaluation switch, checkpoint frequency, device, precision and compilation) are applied; every
other change (method, batch size, data, image size, backbone, seed, augmentations, method
options, ...) would make the checkpoint mean something else, so it is refused with a message
that names each flag. No flag is ever silently ignored.
"""

from __future__ import annotations

from engine.config import RunConfig
from engine.params import ConfigError

SAFE_KEYS = ("epochs", "minutes", "device", "precision", "compile", "checkpoint_every_minutes",
             "checkpoint_every_epochs", "optim.lr", "optim.grad_clip")
SAFE_PREFIXES = ("eval.",)
SAFE_TEXT = ("--lr, --epochs or --minutes, --device, --compile, --no-final-eval, --set eval.*, --set optim.lr, "
             "--set optim.grad_clip, --set precision, --set compile, --set checkpoint_every_minutes")
_MISSING = object()


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}`` (method options too)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def safe_on_resume(key: str) -> bool:
    return key in SAFE_KEYS or key.startswith(SAFE_PREFIXES)


def apply_resume_changes(cfg: RunConfig, changes: dict, names: dict | None = None) -> RunConfig:
    """``cfg`` with ``changes`` (dotted key -> value) applied, or a ConfigError naming every change
    that cannot be made to a run in progress (``names``: the flag each key came from)."""
    names = names or {}
    current = flatten(cfg.to_dict())
    refused = [k for k, v in changes.items() if current.get(k, _MISSING) != v and not safe_on_resume(k)]
    if refused:
        what = ", ".join(dict.fromkeys(names.get(k, k) for k in refused))
        raise ConfigError("resume", f"--resume continues the run as it was configured, and {what} cannot change "
                                    f"mid-run (start a new run for that); a resumed run may change only: {SAFE_TEXT}")
    d = cfg.to_dict()
    for key, value in changes.items():
        *path, last = key.split(".")
        cur = d
        for p in path:
            cur = cur.setdefault(p, {})
        cur[last] = value
    return RunConfig.from_dict(d)


def resume_notes(old: dict | None, cfg: RunConfig, lr_then: float | None, lr_now: float) -> list[str]:
    """Notes on what a resume changed: the budget (the schedule is stretched over it, so the learning
    rate moves), the peak learning rate."""
    if not old:
        return []
    notes = []
    o = flatten(old)
    budget_then = (o.get("epochs", 0), o.get("minutes", 0.0))
    budget_now = (cfg.epochs, cfg.minutes)
    if budget_then != budget_now:
        def text(b):
            return " and ".join(x for x in (f"{b[0]} epochs" if b[0] else "", f"{b[1]:g} minutes" if b[1] else "") if x)
        note = f"the budget changed from {text(budget_then) or 'none'} to {text(budget_now)}"
        if lr_then is not None and abs(lr_now - lr_then) > 0.05 * max(lr_then, 1e-12):
            note += (f": the learning-rate schedule is stretched over the new budget, so the learning rate goes "
                     f"from {lr_then:.3g} to {lr_now:.3g} here")
        notes.append(note)
    if o.get("optim.lr") is not None and o["optim.lr"] != cfg.optim.lr:
        notes.append(f"the peak learning rate changed from {o['optim.lr']:g} to {cfg.optim.lr:g}")
    return notes


__all__ = ["SAFE_KEYS", "apply_resume_changes", "flatten", "resume_notes", "safe_on_resume"]
