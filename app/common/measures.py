"""What a kNN or linear-probe figure of the window is, in words, and the run-folder facts that say it (no Qt).

A run is measured two ways, and every view that shows a figure says which one it shows:

- the **online monitor** while it trains (``knn_monitor`` records): at the embedding snapshots a leave-one-out
  kNN among the snapshot's own evaluation images, and every few epochs a kNN of some evaluation images against
  a bank of training images (``data.json``'s ``monitor`` says how many);
- the **final evaluation** (``results.json``): kNN and a linear probe with the run's evaluation protocol (its
  ``protocol``: bank and test images, k, probe epochs). The Inspector's Evaluation and Compare reuse that very
  result for the same checkpoint, so they show the same number.

:func:`read_run_facts` reads what the views need from a run folder (on an I/O thread); the ``*_text``
functions word it, the same way in the map, the curves, the Run history and the Inspector.
"""

from __future__ import annotations

import json
from pathlib import Path

FINAL_KEYS = ("knn_top1", "knn_top5", "linear_top1", "step", "protocol", "stopped", "note", "num_test", "num_train")


def _n(v) -> str:
    return f"{int(v):,}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "?"


def final_of(results) -> dict | None:
    """The final evaluation in a ``results.json`` (its numbers and protocol), or None when it has no kNN."""
    if not isinstance(results, dict) or not isinstance(results.get("knn_top1"), (int, float)):
        return None
    return {k: results[k] for k in FINAL_KEYS if k in results}


def protocol_text(protocol: dict | None, short: bool = False) -> str:
    """The evaluation protocol in words: "500 test images against a bank of 2,000, k 20; linear probe 30 epochs"
    (``short``: without the probe). "" when unknown."""
    if not isinstance(protocol, dict) or "test" not in protocol:
        return ""
    text = f"{_n(protocol.get('test'))} test images against a bank of {_n(protocol.get('bank'))}, " \
           f"k {protocol.get('k', '?')}"
    if not short and protocol.get("probe_epochs"):
        text += f"; linear probe {protocol['probe_epochs']} epochs"
    return text


def final_text(final: dict | None, short: bool = False) -> str:
    """"final evaluation · 500 test images against a bank of 2,000, k 20" (what a final figure is)."""
    if not final:
        return ""
    proto = protocol_text(final.get("protocol"), short)
    if not proto and final.get("num_test"):
        proto = f"{_n(final['num_test'])} test images against a bank of {_n(final.get('num_train'))}"
    step = f" at step {final['step']}" if isinstance(final.get("step"), int) else ""
    return f"final evaluation{step}" + (f" · {proto}" if proto else "")


def monitor_text(monitor: dict | None, step: int | None = None, snapshot: bool = True) -> str:
    """What an online-monitor kNN is: "online monitor at step 120 · leave-one-out among 500 evaluation images"
    (``snapshot``: a snapshot's; else the per-epoch kNN against a bank)."""
    at = f" at step {step}" if step is not None else ""
    m = monitor if isinstance(monitor, dict) else {}
    if snapshot and m.get("snapshot_images"):
        return f"online monitor{at} · leave-one-out among {_n(m['snapshot_images'])} evaluation images"
    if not snapshot and m.get("epoch_test"):
        return f"online monitor{at} · {_n(m['epoch_test'])} evaluation images against a bank of " \
               f"{_n(m.get('epoch_bank'))}"
    return f"online monitor{at}"


def monitor_short(monitor: dict | None) -> str:
    """What the online monitor scores, in a few words for a plot's title: "leave-one-out, 500 images"."""
    m = monitor if isinstance(monitor, dict) else {}
    if m.get("snapshot_images"):
        return f"leave-one-out, {_n(m['snapshot_images'])} images"
    if m.get("epoch_test"):
        return f"{_n(m['epoch_test'])} images vs a bank of {_n(m.get('epoch_bank'))}"
    return ""


def knn_cell(info, final: dict | None) -> tuple[str, str, str]:
    """The Run history's kNN cell of a run (engine.runs.RunInfo) and its final evaluation (:func:`final_of`,
    None when it has none): (text, tooltip, measure) with measure "final", "monitor" or ""."""
    v = getattr(info, "knn_top1", None)
    if final is not None:
        return f"{final['knn_top1']:.1%}", "The run's " + final_text(final), "final"
    if not isinstance(v, (int, float)):
        return "", "", ""
    why = ("it is still training" if getattr(info, "live", False) else
           f"it ended ({getattr(info, 'state', '?')}) before its final evaluation")
    return (f"{v:.1%} (monitor)", f"The online kNN monitor's last value, at step {getattr(info, 'step', '?')} or "
            f"before: the run has no final evaluation ({why}). Compare runs (Inspector) scores its checkpoint "
            "with the evaluation protocol.", "monitor")


# -- reading a run folder (an I/O thread) -------------------------------------------------------------------
def collapse_records(run_dir) -> list[dict]:
    """The ``collapse`` records of the run's metrics.jsonl (step, where, text), oldest first. Only the lines
    that mention a collapse are parsed, so a long log is read in a moment."""
    path = Path(run_dir) / "metrics.jsonl"
    out = []
    try:
        with open(path, "rb") as fh:
            for line in fh:
                if b'"collapse"' not in line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and rec.get("type") == "collapse":
                    out.append({"step": int(rec.get("step", 0)), "where": str(rec.get("where", "")),
                                "text": str(rec.get("text", ""))})
    except OSError:
        return []
    return out


def read_run_facts(run_dir) -> dict:
    """What the views say about a run's measures: ``final`` (:func:`final_of` of results.json or None),
    ``monitor`` (data.json's description of the online monitor), ``status`` (engine.runs.read_status: a run
    whose process is gone is ``interrupted``), ``collapse`` (its collapse records) and ``run_dir``."""
    from engine.runs import read_json, read_status

    d = Path(run_dir)
    data = read_json(d / "data.json", {}) or {}
    return {"run_dir": str(run_dir), "final": final_of(read_json(d / "results.json", {})),
            "monitor": data.get("monitor") if isinstance(data, dict) else None, "status": read_status(d),
            "collapse": collapse_records(d)}


def list_runs_with_finals(*roots) -> tuple[list, dict]:
    """The runs under ``roots`` (engine.runs.list_runs) and each one's final evaluation ({path: final or None}),
    so a list can say whether a kNN figure is the final evaluation or the monitor's. An I/O thread's job."""
    from engine.runs import list_runs, read_json

    infos = list_runs(*roots)
    return infos, {i.path: final_of(read_json(Path(i.path) / "results.json", {})) for i in infos}


def collapse_line(alarms: list[dict]) -> str:
    """The warning the curves and the map show when collapse was signalled: the latest sign, its step."""
    if not alarms:
        return ""
    a = alarms[-1]
    more = f" ({len(alarms)} signs)" if len(alarms) > 1 else ""
    return f"Collapse at step {a.get('step', '?')}{more}: {a.get('text', '')}"
