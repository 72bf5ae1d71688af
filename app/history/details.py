"""What the Run history shows of a run folder, without Qt: its details read from disk (on an I/O
thread) and the HTML summary drawn from them (tests/test_run_details.py)."""

from __future__ import annotations

import html
from pathlib import Path

from app.common.measures import final_of, final_text


def fmt_duration(s: float) -> str:
    s = int(s or 0)
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 60}m {s % 60:02d}s"


def fmt_pct(v) -> str:
    return f"{v:.1%}" if isinstance(v, (int, float)) else ""


def read_details(run_dir: str) -> dict:
    """The run folder's files (None where one is missing); its status as engine.runs.read_status sees it (a
    run whose process is gone is ``interrupted``)."""
    from engine.runs import read_json, read_status

    d = Path(run_dir)
    status = read_json(d / "status.json")
    return {"config": read_json(d / "config.json"), "results": read_json(d / "results.json"),
            "data": read_json(d / "data.json"), "status": read_status(d) if status is not None else None,
            "checkpoint": (d / "checkpoints" / "last.pt").exists(),
            "encoder": (d / "encoder.safetensors").exists()}


def state_text(status: dict) -> str:
    """The state line: "finished — completed", "interrupted (it was running: its process is gone)"."""
    e = html.escape
    state = str(status.get("state", "?"))
    if state == "interrupted":
        was = f"it was {status['was']}: " if status.get("was") else ""
        return f"interrupted ({e(was)}its process is gone; Resume continues from its last checkpoint)"
    return e(state) + (f" — {e(str(status.get('reason')))}" if status.get("reason") else "")


def steps_text(status: dict) -> str:
    """"113 / 0.42": the steps and the epochs done (fractional: a run shorter than an epoch is not at 0)."""
    ep = status.get("epoch_f", status.get("epoch", 0))
    ep = f"{ep:.2f}".rstrip("0").rstrip(".") if isinstance(ep, float) else str(ep)
    return f"{status.get('step', 0)} / {ep}"


def details_html(path: str, d: dict) -> str:
    """The summary of the run in ``path`` from :func:`read_details`' answer: folder, method, state,
    checkpoint, the final evaluation (per class when there is one) and the data."""
    e = html.escape
    cfg, res, data, status = d.get("config") or {}, d.get("results") or {}, d.get("data") or {}, \
        d.get("status") or {}
    rows = [("Folder", e(path)), ("Method", e(str(cfg.get("method", "?")))),
            ("Backbone", e(str(res.get("backbone") or data.get("backbone") or cfg.get("backbone", "?")))),
            ("State", state_text(status)),
            ("Steps / epochs", steps_text(status)),
            ("Training time", fmt_duration(status.get("elapsed_s", 0))),
            ("Checkpoint", "yes" if d.get("checkpoint") else "no"),
            ("Encoder file", "encoder.safetensors" if d.get("encoder") else "none yet")]
    if status.get("error"):
        rows.append(("Error", f"<span style='color:#c62828'>{e(str(status['error']))}</span>"))
    out = ["<table cellspacing=4>"] + [f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows] + ["</table>"]
    if res:
        out.append("<h4>Final evaluation</h4>")
        said = final_text(final_of(res))
        if said and said != "final evaluation":
            out.append(f"<p style='color:#555'>{e(said[0].upper() + said[1:])}</p>")
        out.append("<table cellspacing=4>")
        for key, label in (("knn_top1", "kNN top-1"), ("knn_top5", "kNN top-5"),
                           ("linear_top1", "linear probe top-1")):
            if isinstance(res.get(key), (int, float)):
                out.append(f"<tr><td>{label}</td><td><b>{res[key]:.2%}</b></td></tr>")
        out.append("</table>")
        if res.get("note"):
            out.append(f"<p>{e(str(res['note']))}</p>")
        names, per = res.get("class_names") or [], res.get("knn_per_class") or []
        if names and per:
            out.append("<h4>kNN accuracy per class</h4><table cellspacing=2>")
            for n, a in zip(names, per):
                width = int(120 * float(a))
                out.append(f"<tr><td>{e(str(n))}</td><td>{float(a):.0%}</td><td><table cellspacing=0><tr>"
                           f"<td bgcolor='#4e79a7' width={max(1, width)} height=8></td></tr></table></td></tr>")
            out.append("</table>")
    elif status.get("state") in ("running", "paused"):
        out.append("<p><i>The run is in progress; its results appear when it finishes.</i></p>")
    elif isinstance(status.get("last_knn"), (int, float)):
        out.append(f"<p><i>No final evaluation. The online kNN monitor's last value: {status['last_knn']:.1%} "
                   "(Inspector &gt; Compare runs scores its checkpoint with the evaluation protocol).</i></p>")
    if data:
        out.append("<h4>Data</h4>")
        out.append(f"<p>{e(str(data.get('name', '')))}: {data.get('num_images', '?')} images, "
                   f"{data.get('image_size', '?')} px, {'labelled' if data.get('labelled') else 'unlabeled'}"
                   f"{', ' + str(data.get('skipped')) + ' skipped' if data.get('skipped') else ''}</p>")
        for n in data.get("notes") or []:
            out.append(f"<p style='color:#555'>• {e(str(n))}</p>")
    return "\n".join(out)
