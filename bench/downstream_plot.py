"""The label-efficiency curve as a PNG (pyqtgraph, offscreen) and the points as CSV.

    python bench/downstream_plot.py RESULT.json OUT.png     # RESULT.json: bench/downstream.py --json, or the
                                                            # output of main.py downstream (last line: JSON)
    python bench/downstream_plot.py POINTS.csv OUT.png      # the CSV of --csv or of the window's Export CSV
    python bench/downstream_plot.py RESULT.json OUT.md      # the points as a markdown table

x: labels per class (log axis; "all" is drawn at the training set's size per class), y: top-1;
one line per encoder and mode with a band of one standard deviation over seeds. The picture is drawn
by the Inspector's Downstream tab's own plot (app/inspector/downstream_plot.py), offscreen.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def write_csv(results: list[dict], path) -> None:
    from app.inspector.downstream_plot import write_points_csv

    write_points_csv(results, path)


def markdown_table(results: list[dict]) -> str:
    """Rows: encoder and mode; columns: labels per class; cells: mean ± std of top-1 over seeds."""
    budgets = sorted({r["labels_per_class"] for r in results}, key=lambda v: float("inf") if v == "all" else v)
    rows: dict = {}
    for r in results:
        rows.setdefault((r["encoder"], r["mode"]), {})[r["labels_per_class"]] = r
    out = ["| encoder | mode | " + " | ".join(str(b) for b in budgets) + " |",
           "|---|---|" + "---:|" * len(budgets)]
    for (enc, mode), cells in rows.items():
        vals = [f"{cells[b]['top1_mean']:.3f} ± {cells[b]['top1_std']:.3f}" if b in cells else "-" for b in budgets]
        out.append(f"| {enc} | {mode} | " + " | ".join(vals) + " |")
    return "\n".join(out)


def plot_png(results: list[dict], path, title: str = "", num_train: int = 0, num_classes: int = 10,
             size=(1000, 620)) -> None:
    """The curve drawn by the window's own plot (the Inspector's Downstream tab), offscreen."""
    from app.inspector.downstream_plot import render_curve_png

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    render_curve_png(results, path, per_class_all=num_train / max(1, num_classes) if num_train else 0.0,
                     title=title, size=size)


def load_results(path) -> dict:
    """A result JSON (bench/downstream.py --json, or the last line of `main.py downstream`) or a points CSV."""
    if str(path).endswith(".csv"):
        from app.inspector.downstream_plot import read_points_csv

        return {"results": read_points_csv(path)}
    text = Path(path).read_text().strip()
    try:
        return json.loads(text)
    except ValueError:  # a captured stdout: the last line is the JSON object
        return json.loads(text.splitlines()[-1])


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python bench/downstream_plot.py RESULT.json OUT.png|OUT.md", file=sys.stderr)
        return 2
    res = load_results(argv[0])
    if argv[1].endswith(".md"):
        Path(argv[1]).write_text(markdown_table(res["results"]) + "\n")
        return 0
    enc = (res.get("encoders") or [r["encoder"] for r in res["results"][:1]] or ["?"])[0]
    plot_png(res["results"], argv[1], title=res.get("title", f"{enc}: top-1 against labels per class"),
             num_train=res.get("num_train", 10000), num_classes=res.get("num_classes", 10))
    return 0


if __name__ == "__main__":
    sys.exit(main())
