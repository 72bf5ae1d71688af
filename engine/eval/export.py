"""Export embeddings (features, 2-D coordinates, labels, file paths) as .npz and .csv."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def write_embedding(out: str | Path, features: np.ndarray, coords: np.ndarray, labels: np.ndarray,
                    indices: np.ndarray, data=None) -> tuple[Path, Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = getattr(data, "paths", None)
    names = getattr(data, "class_names", None) or []
    files = [paths[i] if paths else "" for i in indices.tolist()]
    npz = out.with_suffix(".npz")
    np.savez(npz, features=features.astype(np.float32), coords=coords.astype(np.float32),
             labels=labels.astype(np.int64), indices=indices.astype(np.int64), paths=np.array(files, dtype=str),
             class_names=np.array(names, dtype=str))
    csv_path = out.with_suffix(".csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "x", "y", "label", "class", "path"] + [f"f{j}" for j in range(features.shape[1])])
        for k, i in enumerate(indices.tolist()):
            lab = int(labels[k])
            cls = names[lab] if 0 <= lab < len(names) else ""
            w.writerow([i, f"{coords[k, 0]:.6g}", f"{coords[k, 1]:.6g}", lab, cls, files[k]]
                       + [f"{v:.6g}" for v in features[k]])
    return npz, csv_path
