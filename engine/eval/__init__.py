"""Evaluation: features with BatchNorm in eval mode, weighted kNN, linear probe, collapse indicator."""

from engine.eval.features import extract_features, raw_pixel_features
from engine.eval.knn import knn_accuracy, knn_predict
from engine.eval.linear import linear_probe
from engine.eval.metrics import collapse_std, confusion_matrix, per_class_accuracy

__all__ = ["extract_features", "raw_pixel_features", "knn_accuracy", "knn_predict", "linear_probe", "collapse_std",
           "confusion_matrix", "per_class_accuracy"]
