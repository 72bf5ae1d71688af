"""Export embeddings (features, 2-D coordinates, labels, file paths) and encoders.

Embeddings go out as one ``.csv`` (a row per image), one ``.npz`` with everything, and one
``.npy`` per array (``<stem>_features.npy``, ``_coords.npy``, ``_labels.npy``, ``_indices.npy``,
``_paths.npy``; they load with plain ``np.load``, no pickle). This module needs numpy only;
the encoder export imports torch and safetensors when it is called.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

NPY_PARTS = ("features", "coords", "labels", "indices", "paths")


def write_embedding(out: str | Path, features: np.ndarray, coords: np.ndarray, labels: np.ndarray | None,
                    indices: np.ndarray, data=None, *, paths: list[str] | None = None,
                    class_names: list[str] | None = None, npy: bool = True) -> tuple[Path, Path]:
    """Write ``out.npz`` and ``out.csv`` (and the ``.npy`` files); returns (npz path, csv path).

    ``paths`` are the files of the rows (or ``data.paths[indices]``); ``labels`` -1 or None means unlabeled.
    """
    out = Path(out)
    if out.suffix in (".csv", ".npz", ".npy"):
        out = out.with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    features = np.asarray(features, dtype=np.float32)
    coords = np.asarray(coords, dtype=np.float32).reshape(-1, 2)
    indices = np.asarray(indices, dtype=np.int64)
    n = len(indices)
    if features.shape[0] != n or coords.shape[0] != n:
        raise ValueError(f"features ({features.shape[0]}), coords ({coords.shape[0]}) and indices ({n}) "
                         "must have one row per image")
    labels = np.full(n, -1, np.int64) if labels is None or len(labels) == 0 else np.asarray(labels, np.int64)
    names = list(class_names if class_names is not None else (getattr(data, "class_names", None) or []))
    if paths is None:
        all_paths = getattr(data, "paths", None)
        paths = [str(all_paths[i]) for i in indices.tolist()] if all_paths else [""] * n
    files = [str(p) for p in paths]
    npz = Path(f"{out}.npz")
    np.savez(npz, features=features, coords=coords, labels=labels, indices=indices,
             paths=np.array(files, dtype=str), class_names=np.array(names, dtype=str))
    if npy:
        for part, arr in zip(NPY_PARTS, (features, coords, labels, indices, np.array(files, dtype=str))):
            np.save(Path(f"{out}_{part}.npy"), arr)
    csv_path = Path(f"{out}.csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "x", "y", "label", "class", "path"] + [f"f{j}" for j in range(features.shape[1])])
        for k, i in enumerate(indices.tolist()):
            lab = int(labels[k])
            cls = names[lab] if 0 <= lab < len(names) else ""
            w.writerow([i, repr(float(coords[k, 0])), repr(float(coords[k, 1])), lab, cls, files[k]]
                       + [repr(float(v)) for v in features[k]])
    return npz, csv_path


SPRITE_MAX = 8192  # TensorBoard's projector reads sprites up to 8192 x 8192 pixels


def write_projector(out: str | Path, features: np.ndarray, labels: np.ndarray | None, indices: np.ndarray,
                    thumbs: np.ndarray | None = None, *, class_names: list[str] | None = None,
                    paths: list[str] | None = None) -> Path:
    """The embedding in TensorBoard projector's format, in the folder ``out`` (``tensorboard --logdir OUT``,
    then the Projector tab): ``tensors.tsv`` (a row of features per image), ``metadata.tsv`` (label, class,
    index, path), ``sprite.png`` (the thumbnails ``(N, s, s, 3)`` uint8 in a square grid, when given and when
    they fit the projector's 8192 px) and ``projector_config.pbtxt`` tying them together. Returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    features = np.asarray(features, dtype=np.float32)
    n = len(features)
    np.savetxt(out / "tensors.tsv", features, delimiter="\t", fmt="%.6g")
    labels = np.full(n, -1, np.int64) if labels is None or len(labels) == 0 else np.asarray(labels, np.int64)
    names = list(class_names or [])
    with open(out / "metadata.tsv", "w", encoding="utf-8", newline="") as fh:
        fh.write("label\tclass\tindex\tpath\n")
        for i in range(n):
            cls = names[labels[i]] if 0 <= labels[i] < len(names) else ""
            path = (paths[i] if paths is not None and i < len(paths) else "") or ""
            clean = [str(v).replace("\t", " ").replace("\n", " ") for v in (labels[i], cls, int(indices[i]), path)]
            fh.write("\t".join(clean) + "\n")
    sprite = ""
    if thumbs is not None and len(thumbs) == n and n:
        s = int(thumbs.shape[1])
        side = int(np.ceil(np.sqrt(n)))
        if side * s <= SPRITE_MAX:
            grid = np.zeros((side * s, side * s, 3), np.uint8)
            for i, t in enumerate(np.asarray(thumbs, np.uint8)):
                r, c = divmod(i, side)
                grid[r * s:(r + 1) * s, c * s:(c + 1) * s] = t[..., :3]
            from PIL import Image

            Image.fromarray(grid).save(out / "sprite.png")
            sprite = f'  sprite {{\n    image_path: "sprite.png"\n    single_image_dim: {s}\n    single_image_dim: {s}\n  }}\n'
    (out / "projector_config.pbtxt").write_text(
        'embeddings {\n  tensor_name: "features"\n  tensor_path: "tensors.tsv"\n  metadata_path: "metadata.tsv"\n'
        + sprite + "}\n", encoding="utf-8")
    return out


def read_embedding_csv(path: str | Path) -> dict:
    """Read back a CSV written by :func:`write_embedding` (features and coords as float32)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    head, body = rows[0], rows[1:]
    fcols = [j for j, h in enumerate(head) if h.startswith("f") and h[1:].isdigit()]
    return {
        "indices": np.array([int(r[0]) for r in body], np.int64),
        "coords": np.array([[float(r[1]), float(r[2])] for r in body], np.float32).reshape(-1, 2),
        "labels": np.array([int(r[3]) for r in body], np.int64),
        "classes": [r[4] for r in body],
        "paths": [r[5] for r in body],
        "features": np.array([[float(r[j]) for j in fcols] for r in body], np.float32).reshape(len(body), -1),
    }


# -- encoders -------------------------------------------------------------------------------------
TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50")


def loading_example(backbone: str, image_size: int, path: str | Path, fmt: str = "own") -> str:
    """One line of Python that restores an exported encoder (``fmt`` "own" or "torchvision")."""
    p = str(path)
    if fmt == "torchvision":
        if backbone not in TORCHVISION_RESNETS:
            raise ValueError(f"only ResNets ({', '.join(TORCHVISION_RESNETS)}) have a torchvision form; "
                             f"{backbone} loads into the workbench's own backbone")
        stem = ("m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False); m.maxpool = torch.nn.Identity(); "
                if image_size <= 64 else "")
        return (f"import torch, torchvision; from safetensors.torch import load_file; "
                f"m = torchvision.models.{backbone}(); {stem}m.fc = torch.nn.Identity(); "
                f"m.load_state_dict(load_file({p!r}))")
    return (f"from engine.models import build_backbone; from safetensors.torch import load_file; "
            f"encoder = build_backbone({backbone!r}, {int(image_size)}); "
            f"encoder.load_state_dict(load_file({p!r}))")


def encoder_state_for(state: dict, fmt: str = "own") -> dict:
    """The encoder's state dict in the chosen form (torchvision: the ResNet's keys without ``net.``)."""
    if fmt == "own":
        return dict(state)
    if fmt == "torchvision":
        return {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
    raise ValueError(f"unknown encoder format {fmt!r}; choose own or torchvision")


def export_encoder(encoder, path: str | Path, backbone: str, image_size: int, method: str = "",
                   fmt: str = "own") -> tuple[Path, str]:
    """Write ``encoder`` (an nn.Module) as safetensors; returns (path, one-line loading example).

    The workbench's backbones normalise inputs themselves (ImageNet mean/std on [0, 1] images);
    the torchvision form expects inputs normalised by the caller.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    state = encoder_state_for(state, fmt)
    if fmt == "torchvision" and backbone not in TORCHVISION_RESNETS:
        raise ValueError(f"{backbone} has no torchvision form; export it in the workbench's own form")
    save_file(state, str(path), metadata={"backbone": backbone, "image_size": str(int(image_size)),
                                          "method": method, "format": fmt})
    return path, loading_example(backbone, image_size, path, fmt)
