"""Backbones (encoders) and heads.

Every backbone maps a float batch ``(B, 3, H, W)`` in [0, 1] to features ``(B, feature_dim)``
and normalises its input itself, so previews, augmentations and evaluation all work in [0, 1].
"""

from __future__ import annotations

from engine.models.backbones import BACKBONES, backbone_names, build_backbone, default_backbone
from engine.models.heads import mlp

__all__ = ["BACKBONES", "build_backbone", "backbone_names", "default_backbone", "mlp"]
