"""Reading a PyTorch file without ever running code from it, and without library noise.

``torch.load(..., weights_only=True)`` refuses pickles that name Python objects; on the way it may warn on
stderr (a pickle protocol it does not expect) and its error text suggests the unsafe path. :func:`load_weights`
keeps the refusal and drops the noise: it raises :class:`UnsafeFile` (a pickle the safe loader refuses: it
could run code) or :class:`UnreadableFile` (damaged, truncated, not a PyTorch file), each with one line that
names the file, and lets no warning through.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

from engine.errors import BadInput


class UnsafeFile(BadInput):
    """A pickle that names Python objects (it could run code when loaded): never loaded."""


class UnreadableFile(BadInput):
    """Not a readable PyTorch file (damaged, truncated, something else)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_pickle(path: Path) -> bool:
    """Does ``path`` start like a pickle of protocol 2 or later (a plain ``pickle.dump``)?"""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def load_weights(path: str | Path, what: str = "file"):
    """The content of the PyTorch file ``path`` (tensors, dicts, lists, numbers: what ``weights_only``
    allows), on the CPU. ``what`` names it in messages ("checkpoint", "encoder file", ...)."""
    import torch

    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr: our line says it all
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        # torch's own text suggests weights_only=False, the unsafe path: never repeat it
        if "GLOBAL" in text or ("Unsupported" in text and _is_pickle(path)):
            raise UnsafeFile(f"{path} is not a {what} this program can load safely (it is a pickle that holds "
                             "Python objects, which could run code when loaded) and will not be loaded") from None
        raise UnreadableFile(f"the {what} {path} cannot be read (it is damaged, or not a PyTorch file)") from None
    except FileNotFoundError:
        raise UnreadableFile(f"the {what} {path} does not exist") from None
    except IsADirectoryError:
        raise UnreadableFile(f"{path} is a folder, not a {what}") from None
    except Exception as exc:
        raise UnreadableFile(f"the {what} {path} cannot be read ({_first_line(exc)}); it is damaged or not a "
                             "PyTorch file") from None


__all__ = ["load_weights", "UnsafeFile", "UnreadableFile"]
