"""What can go wrong, and the exit status each kind of failure gives, in one place.

Exit codes of ``python main.py train|eval|embed|methods``:

====  ==============================================================================
 0    done (a run that completed or reached its time budget)
 1    the run failed while it ran (diverged, out of memory, disk full, a bug): the run
      folder keeps its last good checkpoint and says why in ``status.json``
 2    usage or bad input (a wrong flag or config value, a missing/empty/unreadable
      dataset, a folder that is not a run, a run folder another process is writing):
      nothing was started and nothing the user made was changed
 130  interrupted (Ctrl-C, or SIGTERM from a scheduler): a run stopped this way has a
      checkpoint to resume from
====  ==============================================================================

Exceptions carry their exit code; :func:`exit_code_for` maps any exception (also the ones
from Python or torch) to one of the codes above, so every entry point answers alike.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class WorkbenchError(Exception):
    """A failure with a message a user can act on (one line: what went wrong, what to do)."""

    exit_code = EXIT_FAILED


class BadInput(WorkbenchError):
    """Usage or input the user can correct: a flag, a config value, a dataset, a folder."""

    exit_code = EXIT_USAGE


class UsageError(BadInput):
    """A wrong command line."""


class EncoderError(BadInput, ValueError):
    """An encoder cannot be opened: an unknown name, a weights file that does not fit its architecture,
    weights that are not on this computer while it is offline, a file that would run code."""


class RunBusy(BadInput):
    """The run folder is being written by another live process."""

    def __init__(self, message: str, pid: int = 0, host: str = ""):
        super().__init__(message)
        self.pid = pid
        self.host = host


class RunFailed(WorkbenchError):
    """A run that had started could not go on (divergence, out of memory, disk full, ...)."""

    exit_code = EXIT_FAILED


class Diverged(RunFailed, FloatingPointError):
    """The loss became NaN or infinite: the run stops and keeps its last good state."""

    def __init__(self, message: str, step: int = 0, loss: float = float("nan")):
        super().__init__(message)
        self.step = step
        self.loss = loss


class Interrupted(WorkbenchError):
    """The user interrupted (Ctrl-C) or cancelled."""

    exit_code = EXIT_INTERRUPTED


class Stopped(Interrupted):
    """A stop was asked for (Ctrl-C, SIGTERM, the window's Stop) in a phase that is not a training step:
    reading the data, a snapshot, the final evaluation. The run ends ``stopped``, as it does between steps."""


def exit_code_for(exc: BaseException) -> int:
    """The exit status for ``exc``: its own ``exit_code``, 130 for Ctrl-C, 1 for anything else."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    code = getattr(exc, "exit_code", None)
    if isinstance(code, int):
        return code
    return EXIT_FAILED


def run_exit_code(summary: dict) -> int:
    """The exit status of a session from its summary: 0 done, 130 stopped (Ctrl-C) or interrupted,
    1 failed; a summary that carries its own ``exit_code`` (2 for bad input) is believed."""
    if isinstance(summary.get("exit_code"), int):
        return summary["exit_code"]
    reason = summary.get("reason")
    if reason == "stopped":
        return EXIT_INTERRUPTED
    if reason == "failed":
        return EXIT_INTERRUPTED if summary.get("error") == "interrupted" else EXIT_FAILED
    return EXIT_OK


__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_USAGE", "EXIT_INTERRUPTED", "WorkbenchError", "BadInput",
           "UsageError", "EncoderError", "RunBusy", "RunFailed", "Diverged", "Interrupted", "Stopped",
           "exit_code_for", "run_exit_code"]
