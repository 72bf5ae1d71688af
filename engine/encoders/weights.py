"""Reading a weights file without ever running code from it, and laying its tensors out flat.

``.safetensors`` files hold tensors only. Everything else is read by ``torch.load(weights_only=True)``,
which refuses any Python object other than tensors and plain containers. Checkpoints of training
frameworks often carry a few harmless objects next to the weights (DINO's ``argparse.Namespace`` of
arguments, Lightning's hyper-parameters, numpy scalars): these, and only these, are read as inert
stand-ins (:class:`Inert`: they store what they are given and run nothing), so the tensors can be used.
A file that names anything else (``os.system``, ``builtins.exec``, ...) is refused with one line.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from engine.errors import EncoderError

WEIGHT_SUFFIXES = (".pth", ".pt", ".pth.tar", ".ckpt", ".safetensors", ".bin", ".tar")
# what a checkpoint may name and still be read, as inert stand-ins: data classes of argument parsers,
# configuration and training frameworks, numpy scalars and arrays, paths, modules of pickled models; by exact
# name, or by a prefix ending in "."
INERT_NAMES = ("argparse.Namespace", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePosixPath",
               "pathlib.PureWindowsPath", "pathlib.Path", "collections.defaultdict", "collections.deque",
               "collections.Counter", "builtins.set", "builtins.frozenset", "builtins.slice", "builtins.complex",
               "builtins.bytearray", "_codecs.encode", "datetime.datetime", "datetime.date", "datetime.timedelta",
               "typing.Any", "numpy.dtype", "numpy.ndarray", "numpy.core.multiarray.scalar",
               "numpy._core.multiarray.scalar", "numpy.core.multiarray._reconstruct",
               "numpy._core.multiarray._reconstruct", "pytorch_lightning.utilities.parsing.AttributeDict",
               "lightning.fabric.utilities.data.AttributeDict", "lightning_fabric.utilities.data.AttributeDict",
               "lightning.pytorch.utilities.parsing.AttributeDict")
INERT_PREFIXES = ("omegaconf.", "numpy.dtypes.", "torch.nn.modules.", "torchvision.models.", "timm.models.",
                  "timm.layers.")


class Inert:
    """Stands in for an object a checkpoint names: it keeps its arguments and state, and runs nothing."""

    def __init__(self, *args, **kwargs):
        self._args, self._kwargs = args, kwargs

    def __setstate__(self, state):
        self._state = state

    def __setitem__(self, key, value):
        self.__dict__.setdefault("_items", {})[key] = value

    def append(self, value):
        self.__dict__.setdefault("_list", []).append(value)

    def extend(self, values):
        self.__dict__.setdefault("_list", []).extend(values)

    def update(self, other=(), **kw):
        self.__dict__.setdefault("_items", {}).update(other, **kw)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} (read as data)>"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _inert(name: str) -> bool:
    return name in INERT_NAMES or name.startswith(INERT_PREFIXES)


def read_weights(path: str | Path):
    """The content of a weights file (tensors in nested dicts), read safely; a one-line EncoderError when
    it is missing, damaged, not a weights file, or would run code."""
    path = Path(path).expanduser()
    if not path.exists():
        raise EncoderError(f"{path} does not exist; give a weights file ({', '.join(WEIGHT_SUFFIXES[:5])})")
    if path.is_dir():
        raise EncoderError(f"{path} is a folder without a config.json (not a run folder); give a weights file "
                           f"({', '.join(WEIGHT_SUFFIXES[:5])}) or a run folder")
    if path.name.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise EncoderError(f"{path} is not a readable safetensors file ({_first_line(exc)}); it is damaged or "
                               "something else") from None
    with warnings.catch_warnings():  # torch's own texts (and its advice to load unsafely) never reach the user
        warnings.simplefilter("ignore")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            return _read_with_stand_ins(path)
        except Exception as exc:
            raise EncoderError(f"{path} cannot be read as a PyTorch weights file ({_first_line(exc)}); it is damaged "
                               "or not a weights file") from None


def _read_with_stand_ins(path: Path):
    try:
        names = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:
        names = []
    if not names:
        raise EncoderError(f"{path} cannot be read as a weights file (it is damaged, or an old-format file that holds "
                           "Python objects); save its state_dict alone with torch.save, or as .safetensors") from None
    unsafe = [n for n in names if not _inert(n)]
    if unsafe:
        raise EncoderError(f"{path} holds Python objects that could run code when loaded ({', '.join(unsafe[:3])}), "
                           "so it is not opened; use a file that holds only weights (a state_dict saved with "
                           "torch.save, or .safetensors)") from None
    stand_ins = [(type(n.rsplit(".", 1)[-1], (Inert,), {"__module__": "engine.encoders.weights"}), n) for n in names]
    try:
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise EncoderError(f"{path} cannot be read as a weights file ({_first_line(exc)}); save its state_dict alone "
                           "with torch.save, or as .safetensors") from None


_MODULE_PARTS = ("_parameters", "_buffers", "_modules")


def flatten(obj, prefix: str = "", out: dict | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of nested dicts as ``{"dotted.name": tensor}`` (a pickled module read by stand-ins gives
    its parameters under their usual names). Lists and other values are left out."""
    out = {} if out is None else out
    if isinstance(obj, torch.Tensor):
        if prefix:
            out[prefix[:-1]] = obj
        return out
    if isinstance(obj, Inert):
        state = getattr(obj, "_state", None)
        if isinstance(state, dict):
            for part in _MODULE_PARTS:  # an nn.Module: its parameters, buffers and children by name
                flatten(state.get(part), prefix, out)
            rest = {k: v for k, v in state.items() if k not in _MODULE_PARTS and not k.startswith("_")}
            flatten(rest, prefix, out)
        flatten(getattr(obj, "_items", None), prefix, out)
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, (str, int)):
                flatten(v, f"{prefix}{k}.", out)
    return out


__all__ = ["read_weights", "flatten", "Inert", "WEIGHT_SUFFIXES"]
