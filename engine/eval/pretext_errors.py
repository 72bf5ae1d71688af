"""What an encoder's first layer learned (its filters) and what a reconstruction method makes of images.

Where a transformation-prediction method errs is the method's own answer: its ``pretext_errors`` hook
(:mod:`engine.methods.pretext_errors`).
"""

from __future__ import annotations

import numpy as np
import torch

from engine.pretext.base import generator_for
from engine.pretext.tiles import to_uint8


def first_layer_filters(encoder: torch.nn.Module, max_filters: int = 64) -> dict:
    """The first convolution's filters (RGB input) as uint8 images, each scaled to its own range.

    ViTs show their patch-embedding filters (the strongest ``max_filters`` by norm).
    """
    conv = next((m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels == 3), None)
    if conv is None:
        return {"note": "this encoder has no convolution on the RGB input", "filters": np.zeros((0, 1, 1, 3),
                                                                                             np.uint8)}
    w = conv.weight.detach().float().cpu()  # (out, 3, kh, kw)
    norms = w.flatten(1).norm(dim=1)
    order = torch.argsort(norms, descending=True)[:max_filters] if w.shape[0] > max_filters else \
        torch.arange(w.shape[0])
    w = w[order]
    lo = w.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = w.flatten(1).max(1).values.view(-1, 1, 1, 1)
    img = ((w - lo) / (hi - lo).clamp(min=1e-8) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    kind = "patch embedding" if getattr(encoder, "kind", "cnn") == "vit" else "first convolution"
    return {"filters": img, "norms": norms[order].numpy().astype(np.float32), "total": int(conv.weight.shape[0]),
            "kernel": tuple(int(v) for v in conv.weight.shape[2:]), "kind": kind,
            "note": f"{kind}: {conv.weight.shape[0]} filters of {conv.weight.shape[2]}x{conv.weight.shape[3]}"
                    + (f", the {len(order)} strongest shown" if len(order) < conv.weight.shape[0] else "")}


def reconstruction_triplets(method, images_u8: torch.Tensor, device="cpu", seed: int = 0) -> dict:
    """(originals, inputs, outputs) uint8 for reconstruction methods (MAE), from ``method.reconstruct``."""
    x = images_u8.to(device).float().div(255)
    with torch.no_grad():
        out = method.reconstruct(x, generator_for(seed, x.device))
    if out is None:
        return {"note": f"{getattr(method, 'name', 'this method')} does not reconstruct images"}
    return {"originals": to_uint8(x), "inputs": to_uint8(out[0]), "outputs": to_uint8(out[1]),
            "caption": getattr(method, "name", "")}
