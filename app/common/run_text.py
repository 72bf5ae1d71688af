"""How the training engine's state is told to the user, without Qt: the words for each engine state, an
ETA, and the lines for a started and a finished run. The window's status bar and the Run view say the
same things, so both take them from here."""

from __future__ import annotations

from engine import messages as M

STATE_LABELS = {"starting": "Starting the engine …", "loading": "Loading the data …", "running": "Running",
                "paused": "Paused (checkpoint saved)", "stopping": "Stopping (writing a checkpoint) …",
                "evaluating": "Evaluating (kNN and linear probe) …", "finished": "Finished", "stopped": "Stopped",
                "failed": "Failed", "died": "The engine process died", "idle": "Idle"}


# What a view with no run to show tells a new user to do (the Curves, the Inspector, the Run history)
NO_RUN_YET = ("press Start in the Run panel, open a run from the Run history (or File > Open run folder…), or start "
              "the demo (Help > Run the demo)")


def state_label(state: str) -> str:
    return STATE_LABELS.get(state, state)


def fmt_eta(s: float | None) -> str:
    if s is None:
        return "–"
    s = max(0, int(round(s)))  # a time budget overrun by a step gives a negative estimate: the run ends now
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def started_text(msg: M.RunStarted) -> str:
    budget = f"{msg.total_steps} steps" if msg.total_steps else f"{msg.config.get('minutes', 0):g} min"
    return (f"run started on {msg.device_name}: {msg.num_images} images, {msg.steps_per_epoch} steps per epoch, "
            f"{budget}" + (f" (resumed at step {msg.start_step})" if msg.resumed else ""))


def finished_text(msg: M.RunFinished, config: dict | None) -> str:
    """"Run finished after N steps, kNN top-1 …, linear probe … (E probe epochs)." and, for a stopped run,
    that Resume continues it. ``config``: the run's config (its probe epochs)."""
    s = msg.summary
    knn = f", kNN top-1 {s['knn_top1']:.1%}" if isinstance(s.get("knn_top1"), (int, float)) else ""
    epochs = ((config or {}).get("eval") or {}).get("linear_probe_epochs")
    lin = (f", linear probe {s['linear_top1']:.1%}" + (f" ({epochs} probe epochs)" if epochs else "")
           if isinstance(s.get("linear_top1"), (int, float)) else "")
    text = f"Run {msg.reason} after {msg.step} steps{knn}{lin}."
    if msg.reason == "stopped":
        text += " Resume continues from the checkpoint."
    return text
