"""Pretext-task generators. Training and the preview panel call the SAME functions.

Each generator takes a float batch ``(B, 3, H, W)`` in [0, 1] and a ``torch.Generator`` and returns
a :class:`PretextBatch`: the model's inputs, the targets, and the metadata a preview needs to draw
its labels. The same seed reproduces the same batch exactly.
"""

from engine.pretext.base import PretextBatch
from engine.pretext.jigsaw import jigsaw, jigsaw_permutations
from engine.pretext.masking import apply_patch_mask, patch_mask
from engine.pretext.rotation import ROTATION_LABELS, rotation
from engine.pretext.views import multi_view

__all__ = ["PretextBatch", "rotation", "ROTATION_LABELS", "jigsaw", "jigsaw_permutations", "patch_mask",
           "apply_patch_mask", "multi_view"]
