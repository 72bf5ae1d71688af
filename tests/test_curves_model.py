"""The curves' Qt-free model: the main run and overlays, what arrives for them (messages, tailed records,
a history read back), the plot notes, the final label and the CSV export."""

from __future__ import annotations

import numpy as np

from app.curves.model import COLORS, CurvesModel, RunCurves, curve_xy, final_summary
from engine import messages as M


def steps_block(steps, loss):
    s = np.asarray(steps, dtype=np.float64)
    return np.stack([s, s / 10, s * 0.5, np.asarray(loss, dtype=np.float64)])


def test_main_run_and_overlays():
    m = CurvesModel()
    assert m.main is None and m.point_count() == 0
    main = m.new_main("a", "/runs/a")
    assert m.main is main and main.id == "main" and main.color == COLORS[0] and m.all_dirty
    b, new = m.overlay("/runs/b", "b")
    again, new2 = m.overlay("/runs/b", "b")
    assert new and not new2 and again is b and b.id == "overlay:/runs/b" and b.color == COLORS[1]
    assert m.overlay("/runs/a", "a")[0] is main  # the main run's folder is not overlaid on itself
    assert m.overlay_ids() == ["overlay:/runs/b"]
    m.remove("main")
    assert m.new_main("c").color == COLORS[0]  # a new main run counts its colours afresh
    m.remove("overlay:/runs/b")
    assert m.overlay_ids() == []


def test_messages_and_tailed_records_fill_the_series():
    m = CurvesModel()
    run = m.new_main("live")
    assert not m.apply(run, M.StepMetrics(1, 0.1, {"loss": 2.0, "lr": 0.1, "note": "text"}, 1.5))
    assert not m.apply(run, M.EvalResult("knn_monitor", 1, 0.1, {"knn_top1": 0.4}))
    assert run.count("loss") == 1 and run.count("knn_top1") == 1 and run.count("note") == 0
    assert run.dirty == {"loss", "lr", "knn_top1"}
    assert run.evals["knn_top1"].x("time")[0] == 1.5  # an eval point sits at the last step's time
    assert m.apply(run, M.EvalResult("final", 2, 0.2, {"knn_top1": 0.6})) and run.final == {"knn_top1": 0.6}
    records = [{"type": "step", "step": s, "epoch": s / 10, "time": s, "loss": 1.0 / s} for s in range(2, 6)]
    assert not m.apply_records(run, records)
    assert m.point_count("loss") == 5
    m.all_dirty = False
    # a resume record drops what came after the checkpoint; a final record is reported
    assert m.apply_records(run, [{"type": "resume", "step": 3},
                                 {"type": "eval", "kind": "final", "step": 3, "linear_top1": 0.5}])
    assert list(run.steps["loss"].step) == [1, 2, 3] and m.all_dirty and run.final == {"linear_top1": 0.5}


def test_history_then_the_live_messages_that_waited():
    m = CurvesModel()
    run = m.new_main("resumed", "/runs/r")
    run.loading, run.resume_step = True, 4
    run.pending_live = [M.StepMetrics(3, 0.3, {"loss": 9.0}, 0.0),  # in the file already: dropped
                        M.StepMetrics(5, 0.5, {"loss": 0.5}, 9.0)]
    m.add_history(run, {"loss": steps_block(range(1, 7), [6, 5, 4, 3, 2, 1])},
                  {"knn_top1": steps_block([2, 6], [0.3, 0.5])}, {"knn_top1": 0.7})
    assert not run.loading and run.pending_live == [] and run.final == {"knn_top1": 0.7}
    assert list(run.steps["loss"].step) == [1, 2, 3, 4, 5] and list(run.steps["loss"].y) == [6, 5, 4, 3, 0.5]
    assert list(run.evals["knn_top1"].step) == [2]


def test_plot_notes_and_final_summary():
    m = CurvesModel()
    assert "no data yet" in m.plot_note("loss")
    run = m.new_main("a")
    m.apply(run, M.StepMetrics(1, 0.1, {"loss": 1.0}, 0.0))
    assert m.plot_note("loss") == ""
    assert "not reported by this method" in m.plot_note("pretext_acc")
    assert "no data yet" in m.plot_note("knn_top1")
    assert final_summary({}, None) == ""
    text = final_summary({"knn_top1": 0.612, "linear_top1": 0.66, "other": 1.0}, 30)
    assert text == "Final: kNN top-1 <b>61.2%</b> · linear probe top-1 <b>66.0%</b> (30 probe epochs)"
    assert final_summary({"linear_top1": 0.5}, None) == "Final: linear probe top-1 <b>50.0%</b>"


def test_curve_xy_smooths_the_loss_and_drops_non_positive_points_on_a_log_axis():
    run = RunCurves("main", "a", COLORS[0])
    s = run.series("loss", "step")
    s.extend(steps_block([1, 2, 3, 4], [1.0, -1.0, 2.0, 3.0]))
    x, y, raw = curve_xy(s, "loss", run, "step", 0.0, False)
    assert list(x) == [1, 2, 3, 4] and list(raw) == [1, -1, 2, 3] and list(y) == list(raw)
    x, y, raw = curve_xy(s, "loss", run, "epoch", 0.0, True)
    assert np.allclose(x, [0.1, 0.3, 0.4]) and list(raw) == [1, 2, 3]
    e = run.series("knn_top1", "eval")
    e.extend(steps_block([2], [0.5]))
    x, y, raw = curve_xy(e, "knn_top1", run, "time", 0.9, True)
    assert raw is None and list(x) == [1.0] and list(y) == [0.5]


def test_write_csv(tmp_path):
    m = CurvesModel()
    a = m.new_main("a")
    m.apply(a, M.StepMetrics(1, 0.1, {"loss": 1.0}, 0.25))
    b, _ = m.overlay("/runs/b", "b")
    m.add_history(b, {"loss": steps_block([1, 2], [3.0, 2.0])}, {}, {})
    path = tmp_path / "c.csv"
    assert m.write_csv(str(path)) == 3
    lines = path.read_text().splitlines()
    assert lines == ["run,metric,step,epoch,time_s,value", "a,loss,1,0.1000,0.250,1.0",
                     "b,loss,1,0.1000,0.500,3.0", "b,loss,2,0.2000,1.000,2.0"]
