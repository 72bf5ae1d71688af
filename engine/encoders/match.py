"""Which tensors of a checkpoint are the encoder's, whatever layout it was saved in.

A checkpoint's tensors are flattened to dotted names (``teacher.backbone.blocks.0.attn.qkv.weight``).
Every name that ends with one of the model's own names proposes the part before as a *prefix*
(``teacher.backbone.``); the prefix under which most of the model's tensors are found is the encoder.
This reads plain state dicts, ``{"state_dict": ...}`` (Lightning, solo-learn), ``module.`` / ``model.`` /
``backbone.`` / ``encoder.`` / ``model.backbone.`` prefixes, DINO's ``teacher`` and ``student`` and MoCo
v3's ``base_encoder`` and ``momentum_encoder`` alike. When several networks fit equally well, the
teacher, then the online network (not a momentum, target, EMA or student copy) is taken, unless
``select`` names one.

Under the chosen prefix, tensors of heads, projectors, predictors and classifiers are set aside;
any other tensor the model does not have is *unexpected* and refuses the fit, like a missing tensor
or one of another shape: a ResNet-34's extra blocks are not silently dropped into a ResNet-18.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

# first names (under the prefix) of the parts that are not the encoder
HEAD_WORDS = {"fc", "head", "heads", "classifier", "projector", "projection", "projection_head", "projector_head",
              "prediction_head", "predictor", "prototypes", "last_layer", "mlp_head", "linear_head", "dino_head",
              "ibot_head", "mask_token", "decoder", "decoder_embed", "decoder_pos_embed", "decoder_norm",
              "decoder_pred", "decoder_blocks", "cls_head", "aux_head", "head_dist"}
OPTIONAL = ("num_batches_tracked",)  # old checkpoints lack them; the model's own are kept
SHOW = 3


@dataclass
class Fit:
    """How a checkpoint's tensors map onto a model's state dict."""

    prefix: str
    state: dict  # model name -> tensor (those found, of the right shape)
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)  # file names (under the prefix, not heads)
    wrong: list = field(default_factory=list)  # (model name, file shape, model shape)
    heads: list = field(default_factory=list)  # file names set aside as heads
    others: list = field(default_factory=list)  # file names outside the prefix (other networks, optimiser)
    candidates: list = field(default_factory=list)  # [(prefix, tensors found)], best first
    unselected: str = ""  # the ``select`` that no part of the file is called

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong)

    def counts(self) -> dict:
        return {"matched": len(self.state), "heads": len(self.heads), "others": len(self.others),
                "missing": len(self.missing), "unexpected": len(self.unexpected), "wrong_shape": len(self.wrong)}


def _shape(t) -> tuple:
    return tuple(getattr(t, "shape", ()))


def _rank(prefix: str) -> float:
    """Preference among prefixes that fit equally well: the teacher, then an online network, shorter first."""
    low = prefix.lower()
    parts = set(re.split(r"[._]", low))
    score = 0.0
    if "teacher" in low:
        score += 2
    if any(w in low for w in ("student", "momentum", "target")):
        score -= 2
    if parts & {"ema", "k", "key"} or "encoder_k" in low:
        score -= 1
    return score - len(prefix) * 1e-3


def _is_head(rel: str, head_names) -> bool:
    first = rel.split(".", 1)[0]
    return first in HEAD_WORDS or first.startswith(("decoder_", "head_")) or \
        any(rel == h or rel.startswith(h + ".") for h in head_names)


def find_fit(flat: dict, own: dict, select: str = "", head_names=()) -> Fit:
    """The best way to read ``flat`` (file name -> tensor) as ``own`` (model name -> tensor or shape)."""
    hits: dict = defaultdict(dict)  # prefix -> {own name: file name}
    for f in flat:
        parts = f.split(".")
        for i in range(len(parts)):
            s = ".".join(parts[i:])
            if s in own:
                hits[".".join(parts[:i]) + ("." if i else "")][s] = f

    def good(p):
        return sum(1 for k, f in hits[p].items() if _shape(flat[f]) == _shape(own[k]))

    counted = sorted(((p, good(p), len(m)) for p, m in hits.items()), key=lambda c: (-c[1], -c[2], -_rank(c[0])))
    top = counted[0][1] if counted else 0
    candidates = [(p, g) for p, g, _ in counted if g and g >= top / 2]  # the parts that hold the model
    pool = counted
    if select:
        pool = [c for c in counted if select.lower() in c[0].lower()]
        if not pool:
            return Fit("", {}, missing=list(own), candidates=candidates, unselected=select)
    if not pool:
        return Fit("", {}, missing=[k for k in own if not k.endswith(OPTIONAL)],
                   unexpected=[f for f in flat if not _is_head(f, head_names)],
                   heads=[f for f in flat if _is_head(f, head_names)], candidates=[])
    best_good, best_names = pool[0][1], pool[0][2]
    prefix = max((c for c in pool if c[1] == best_good and c[2] == best_names), key=lambda c: _rank(c[0]))[0]
    used = hits[prefix]
    fit = Fit(prefix, {}, candidates=candidates)
    for k, t in own.items():
        f = used.get(k)
        if f is None:
            if not k.endswith(OPTIONAL):
                fit.missing.append(k)
        elif _shape(flat[f]) != _shape(t):
            fit.wrong.append((k, list(_shape(flat[f])), list(_shape(t))))
        else:
            fit.state[k] = flat[f]
    taken = set(used.values())
    for f in flat:
        if f in taken:
            continue
        if not f.startswith(prefix):  # a head beside the encoder (teacher.head next to teacher.backbone), or another part
            (fit.heads if _is_head(_beside(f, prefix), head_names) else fit.others).append(f)
        elif _is_head(f[len(prefix):], head_names):
            fit.heads.append(f)
        else:
            fit.unexpected.append(f)
    return fit


def _shared(name: str, prefix: str) -> int:
    """How many leading components ``name`` shares with ``prefix`` (``teacher.head.x`` and ``teacher.backbone.``: 1)."""
    a, b = name.split("."), prefix.split(".")[:-1]
    i = 0
    while i < len(b) and i < len(a) - 1 and a[i] == b[i]:
        i += 1
    return i


def _beside(name: str, prefix: str) -> str:
    """``name`` after the components it shares with ``prefix``."""
    return ".".join(name.split(".")[_shared(name, prefix):])


def _names(items, strip: str = "") -> str:
    shown = [i[len(strip):] if strip and i.startswith(strip) else i for i in items[:SHOW]]
    return ", ".join(shown) + (", ..." if len(items) > SHOW else "")


def _groups(names: list, prefix: str = "") -> str:
    """The distinct parts names belong to (``student``, ``state_dict.model.projector``): the components they
    share with ``prefix``, and one more. A few."""
    seen: dict = {}
    for n in names:
        seen.setdefault(".".join(n.split(".")[:_shared(n, prefix) + 1]), None)
    out = list(seen)
    return ", ".join(out[:4]) + (", ..." if len(out) > 4 else "")


def where(fit: Fit) -> str:
    return f" (under {fit.prefix.rstrip('.')})" if fit.prefix else ""


def fit_report(fit: Fit, arch: str, source: str) -> str:
    """One line: what was loaded, what was set aside."""
    text = f"loaded {len(fit.state)} tensors of {arch} from {source}{where(fit)}"
    aside = []
    if fit.heads:
        aside.append(f"{len(fit.heads)} of heads ({_groups([_beside(h, fit.prefix) for h in fit.heads])})")
    if fit.others:
        aside.append(f"{len(fit.others)} of other parts ({_groups(fit.others, fit.prefix)})")
    return text + ("; set aside " + " and ".join(aside) if aside else "; nothing else in the file")


def refusal(fit: Fit, arch: str, source: str, hint: str = "") -> str:
    """One line: why the file does not fit the architecture, naming what is missing and unexpected."""
    if fit.unselected:
        parts = ", ".join(p.rstrip(".") or "(top level)" for p, _ in fit.candidates[:4]) or "none"
        return (f"no part of {source} is called {fit.unselected!r} (the parts that hold {arch}: {parts}); choose one "
                "of them with --select, or leave --select out")
    if not fit.state and not fit.wrong:
        return (f"{source} does not fit {arch}: none of its tensors belong to it ({len(fit.missing)} missing, e.g. "
                f"{_names(fit.missing)}; the file has {_names(fit.unexpected or fit.heads or fit.others)}); give the "
                f"architecture it was trained with (--arch){hint}")
    parts = []
    if fit.missing:
        parts.append(f"{len(fit.missing)} missing ({_names(fit.missing)})")
    if fit.unexpected:
        parts.append(f"{len(fit.unexpected)} unexpected ({_names(fit.unexpected, fit.prefix)})")
    if fit.wrong:
        k, fs, ms = fit.wrong[0]
        parts.append(f"{len(fit.wrong)} of another shape ({k} is {fs} in the file, {ms} in the model)")
    return (f"{source}{where(fit)} does not fit {arch}: {'; '.join(parts)}; give the architecture it was trained "
            f"with (--arch){hint}")


__all__ = ["Fit", "find_fit", "fit_report", "refusal", "HEAD_WORDS"]
