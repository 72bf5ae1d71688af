"""Open any visual encoder: torchvision and timm models (their pretrained weights when online or cached),
weights files in the layouts people have (plain, Lightning, solo-learn, DINO, MoCo v3, ...), workbench runs.

* :mod:`engine.encoders.loader`: specs, ``load_encoder`` (the one-line load report, one-line refusals)
* :mod:`engine.encoders.match`: which tensors of a checkpoint are the encoder's
* :mod:`engine.encoders.weights`: reading files without running code from them
* :mod:`engine.encoders.hub`: pretrained weights from the cache, downloaded only when online
* :mod:`engine.encoders.attention`: attention and spatial maps, their pictures
* :mod:`engine.encoders.entry`: an opened encoder's folder in the runs folder

The wrappers that make torchvision/timm models behave like workbench backbones are in
:mod:`engine.models.external`.
"""

from __future__ import annotations

from engine.encoders.attention import attention_maps, mean_map, similarity_maps, top_mass_mask
from engine.encoders.entry import open_encoder
from engine.encoders.loader import LoadedEncoder, Source, load_encoder, load_weights, resolve


def load_init(backbone, cfg) -> str:
    """Load a run's initial weights (``cfg.init``, ``init_arch``, ``init_select``) into its freshly built
    ``backbone``; the one-line report. An EncoderError refuses weights that do not fit."""
    src = resolve(cfg.init, cfg.init_arch, cfg.data.image_size)
    report, _ = load_weights(backbone, src, cfg.init_select)
    return report


__all__ = ["load_encoder", "resolve", "load_weights", "load_init", "LoadedEncoder", "Source", "open_encoder",
           "attention_maps", "similarity_maps", "mean_map", "top_mass_mask"]
