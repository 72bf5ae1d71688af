"""Random initialisation, no training: the lower bound of the evaluation protocol."""

from __future__ import annotations

from engine.methods.base import Method
from engine.pretext.base import PretextBatch


class RandomInit(Method):
    name = "random_init"
    title = "Random init (lower bound)"
    summary = "Reference: the untrained encoder. Any method worth using must beat it."
    description = ("A randomly initialised network already gives features better than chance (its "
                   "architecture is a prior). Evaluating it shows what training really added.")
    paper = "The evaluation protocol's lower bound"
    family = "reference"
    bound = "lower"
    trains = False
    backbone_kind = "any"
    preview_kind = "views"

    def make_batch(self, x, g, preview=False):
        return PretextBatch((x,), None, {"num_views": 1})

    def preview_rows(self, x, g):
        from engine.pretext.tiles import PreviewRow, PreviewTile, to_uint8

        return [PreviewRow(f"image {i + 1}", [PreviewTile(im, "no pretext task: the encoder is not trained")])
                for i, im in enumerate(to_uint8(x))]
