"""SSL Workbench entry point.

    python main.py                      open the workbench window (built-in dataset)
    python main.py --demo               the demo: built-in shapes, the default run, its embedding map
    python main.py --screenshot out.png [--view NAME]   save a picture of the window and exit
    python main.py train|eval|embed|methods|downstream|invariance|attention ...  the headless engine (see --help)
"""

from __future__ import annotations

import os
import sys

# An installed copy is one package, ssl_workbench, whose folder holds this file beside engine/, app/ and
# resources/ (nothing named main, app or engine lands in site-packages): that folder comes first on the path.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

HEADLESS = ("train", "eval", "embed", "methods", "downstream", "invariance", "attention")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and (argv[0] in HEADLESS or argv[0] in ("-h", "--help", "--version")):
        from engine.cli import main as cli_main

        try:
            return cli_main(argv)
        except BrokenPipeError:  # the reader of the output has gone (``main.py methods --long | head``)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 1
    # the window: keep torch out of this process's start-up (the engine runs in its own process)
    from app.window.launch import launch

    return launch(argv)


def _leave(code: int) -> None:
    """Exit with ``code``. Under torchrun (several processes) without the interpreter's teardown: gloo's
    threads, still held by objects that die in it, can abort a process there after the run has ended and
    written everything, and torchrun would then report the run as failed."""
    code = 0 if code is None else int(code)
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    _leave(main())
