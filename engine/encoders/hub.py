"""Pretrained weights of torchvision and timm: from this computer's cache, downloaded only when online.

torchvision's weights live in ``$TORCH_HOME/hub/checkpoints`` (torch's cache), timm's in the Hugging Face
cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``). Cached weights load without the network. Missing ones
are downloaded when the download host answers; otherwise one line says that the weights are not here
and what to do. ``SSLWB_OFFLINE=1`` forbids every download. Every file is read by
:func:`engine.encoders.weights.read_weights` (never unpickled with code).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from engine.errors import EncoderError

HF_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def offline() -> bool:
    """True when downloads are switched off (``SSLWB_OFFLINE``, or Hugging Face's own offline switch)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("SSLWB_OFFLINE", "HF_HUB_OFFLINE"))


def network_available(host: str, timeout: float = 3.0) -> bool:
    """Whether ``host`` answers on port 443 (a quick check before a download)."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _not_here(what: str, host: str, arch: str) -> EncoderError:
    why = "downloads are switched off (SSLWB_OFFLINE)" if offline() else f"there is no network ({host} does not answer)"
    return EncoderError(f"the pretrained weights of {what} are not on this computer and {why}; connect to the internet "
                        f"once to download them, or give a weights file with --arch {arch}")


def _can_download(host: str) -> bool:
    return not offline() and network_available(host)


# -- torchvision ---------------------------------------------------------------------------------------------
def torch_cache_file(url: str) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def torchvision_state(spec, weights) -> tuple[dict, str]:
    """(the tensors of torchvision's ``weights`` for ``spec``, where they came from)."""
    from engine.encoders.weights import read_weights

    path = torch_cache_file(weights.url)
    what = f"torchvision:{spec.name}:{weights.name}"
    if not path.is_file():
        host = urlparse(weights.url).hostname or "download.pytorch.org"
        if not _can_download(host):
            raise _not_here(what, host, f"torchvision:{spec.name}")
        import torch

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(weights.url, str(path), progress=False)
        except Exception as exc:
            raise EncoderError(f"could not download the weights of {what} ({str(exc).splitlines()[0][:160]}); try "
                               f"again, or give a weights file with --arch torchvision:{spec.name}") from None
    return read_weights(path), f"torchvision's {weights.name} weights ({path.name})"


# -- timm ----------------------------------------------------------------------------------------------------------
def hf_cache_dir() -> str:
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.path.join(home, "hub")


def _hf_cached(repo: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for name in HF_FILES:
        try:
            found = try_to_load_from_cache(repo, name, cache_dir=hf_cache_dir())
        except Exception:
            found = None
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def _hf_download(repo: str) -> Path:
    from huggingface_hub import hf_hub_download

    last = None
    for name in HF_FILES[:2]:
        try:
            return Path(hf_hub_download(repo, name, cache_dir=hf_cache_dir()))
        except Exception as exc:  # the next file name, then give up
            last = exc
    raise EncoderError(f"could not download the weights of timm's {repo} ({str(last).splitlines()[0][:160]}); try "
                       "again, or give a weights file with --arch") from None


def timm_state(spec, net) -> tuple[dict, str]:
    """(timm's pretrained tensors for ``net`` (made by timm for ``spec``), where they came from)."""
    from engine.encoders.weights import read_weights

    cfg = dict(getattr(net, "pretrained_cfg", None) or {})
    what, arch = f"timm:{spec.name}", f"timm:{spec.name}"
    repo, url = cfg.get("hf_hub_id"), cfg.get("url")
    if repo:
        path = _hf_cached(repo)
        if path is None:
            if not _can_download("huggingface.co"):
                raise _not_here(what, "huggingface.co", arch)
            path = _hf_download(repo)
    elif url:
        path = torch_cache_file(url)
        if not path.is_file():
            host = urlparse(url).hostname or "github.com"
            if not _can_download(host):
                raise _not_here(what, host, arch)
            import torch

            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(url, str(path), progress=False)
            except Exception as exc:
                raise EncoderError(f"could not download the weights of {what} ({str(exc).splitlines()[0][:160]})") \
                    from None
    else:
        raise EncoderError(f"timm has no pretrained weights for {spec.name}; add :random for random weights, or give a "
                           f"weights file with --arch {arch}")
    if path.suffix == ".npz":
        raise EncoderError(f"timm's weights for {spec.name} come as a .npz file, which the workbench does not read; "
                           "choose a tag with Hugging Face weights (timm.list_pretrained()) or give a weights file")
    state = read_weights(path)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    fn = getattr(sys.modules.get(type(net).__module__), "checkpoint_filter_fn", None)
    if callable(fn) and isinstance(state, dict):
        try:  # timm's own adaptation of its released files (position embeddings, renamed layers)
            state = fn(state, net)
        except Exception:
            pass
    return state, f"timm's pretrained weights ({repo or os.path.basename(urlparse(url).path)})"


__all__ = ["offline", "network_available", "torchvision_state", "timm_state", "hf_cache_dir", "torch_cache_file"]
