"""Evaluation: features with BatchNorm in eval mode, weighted kNN, linear probe, collapse indicator.

The names below are imported lazily, so the numpy-only modules of this package
(:mod:`engine.eval.projection`'s helpers, :mod:`engine.eval.export`, :mod:`engine.eval.neighbors`)
can be used without importing torch (the GUI process does).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "extract_features": "engine.eval.features", "raw_pixel_features": "engine.eval.features",
    "refit_batchnorm": "engine.eval.features",
    "knn_accuracy": "engine.eval.knn", "knn_leave_one_out": "engine.eval.knn", "knn_predict": "engine.eval.knn", "linear_probe": "engine.eval.linear",
    "collapse_std": "engine.eval.metrics", "confusion_matrix": "engine.eval.metrics",
    "per_class_accuracy": "engine.eval.metrics",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'engine.eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value
