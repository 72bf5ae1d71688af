"""Where transformation-prediction methods err: RotNet and Jigsaw scored on clean pretext batches.

The images are not augmented here (no crops): the question is which rotations, permutations and
image classes the trained pretext head gets wrong, and what those images look like.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.pretext import ROTATION_LABELS, jigsaw, rotation
from engine.pretext.base import generator_for
from engine.pretext.tiles import assemble_tiles, to_uint8

SUPPORTED = ("rotnet", "jigsaw")


def _per_class(correct: np.ndarray, labels: np.ndarray | None, class_names: list[str] | None) -> list[float] | None:
    if labels is None or not class_names:
        return None
    out = []
    for c in range(len(class_names)):
        m = labels == c
        out.append(float(correct[m].mean()) if m.any() else float("nan"))
    return out


@torch.no_grad()
def rotation_errors(method, x: torch.Tensor, labels: np.ndarray | None, class_names: list[str] | None,
                    seed: int = 0, max_examples: int = 24, batch_size: int = 128) -> dict:
    """x: float (N, 3, H, W) in [0, 1] on the method's device."""
    preds, targets, probs, src = [], [], [], []
    for s in range(0, x.shape[0], batch_size):
        xb = x[s:s + batch_size]
        batch = rotation(xb, generator_for(seed + s, xb.device), all_four=True)
        logits = method.head(method.backbone(batch.inputs)).float()
        p = logits.softmax(1)
        preds.append(p.argmax(1).cpu())
        probs.append(p.cpu())
        targets.append(batch.targets.cpu())
        src.append(batch.meta["source"].cpu() + s)
    pred, tgt, prob, src_t = torch.cat(preds), torch.cat(targets), torch.cat(probs), torch.cat(src)
    correct = (pred == tgt).numpy()
    conf = torch.bincount(tgt * 4 + pred, minlength=16).view(4, 4).numpy()
    src_np = src_t.numpy()
    img_correct = np.zeros(x.shape[0])
    np.add.at(img_correct, src_np, correct.astype(np.float64))
    img_acc = img_correct / 4.0
    lab_rows = labels[src_np] if labels is not None else None
    # errors, most confident first (what the head is sure about and gets wrong is the telling kind)
    wrong = np.flatnonzero(~correct)
    conf_wrong = prob[wrong, pred[wrong]].numpy() if len(wrong) else np.zeros(0)
    wrong = wrong[np.argsort(-conf_wrong)][:max_examples]
    examples, captions, ex_true, ex_pred, ex_extra = [], [], [], [], []
    for r in wrong.tolist():
        i, t, p = int(src_np[r]), int(tgt[r]), int(pred[r])
        examples.append(to_uint8(torch.rot90(x[i:i + 1], t, dims=(2, 3)))[0])
        cls = f" · {class_names[labels[i]]}" if labels is not None and class_names else ""
        captions.append(f"#{i}: true {ROTATION_LABELS[t]}, said {ROTATION_LABELS[p]} "
                        f"({float(prob[r, p]):.0%}){cls}")
        ex_true.append(ROTATION_LABELS[t])
        ex_pred.append(ROTATION_LABELS[p])
        ex_extra.append(f"{float(prob[r, p]):.0%}")
    return {
        "method": "rotnet", "accuracy": float(correct.mean()), "num_images": int(x.shape[0]),
        "num_inputs": int(len(correct)),
        "classes": list(ROTATION_LABELS), "confusion": conf.astype(np.int64),
        "per_target": [float(conf[i, i] / max(1, conf[i].sum())) for i in range(4)],
        "per_image_class": _per_class(correct, lab_rows, class_names),
        "class_names": list(class_names or []),
        "image_accuracy_hist": np.bincount((img_acc * 4).round().astype(int), minlength=5).astype(np.int64),
        "examples": np.stack(examples) if examples else np.zeros((0, *x.shape[2:], 3), np.uint8),
        "captions": captions, "example_true": ex_true, "example_pred": ex_pred, "example_extra": ex_extra,
    }


@torch.no_grad()
def jigsaw_errors(method, x: torch.Tensor, labels: np.ndarray | None, class_names: list[str] | None,
                  seed: int = 0, max_examples: int = 24, batch_size: int = 128) -> dict:
    cfg = method.cfg
    perms = method.perms
    preds, targets, top5s, shown, probs = [], [], [], [], []
    for s in range(0, x.shape[0], batch_size):
        xb = x[s:s + batch_size]
        batch = jigsaw(xb, perms, generator_for(seed + s, xb.device), grid=3, cell=cfg.cell, gap_fraction=cfg.gap)
        tiles = batch.inputs
        b, n = tiles.shape[:2]
        flat = tiles.reshape(b * n, *tiles.shape[2:])
        if cfg.tile_norm:
            mean = flat.mean(dim=(1, 2, 3), keepdim=True)
            std = flat.std(dim=(1, 2, 3), keepdim=True).clamp(min=1e-3)
            flat = ((flat - mean) / std * 0.25 + 0.45).clamp(0, 1)
        logits = method.head(method.backbone(flat).view(b, -1)).float()
        p = logits.softmax(1)
        preds.append(p.argmax(1).cpu())
        probs.append(p.max(1).values.cpu())
        top5s.append((logits.topk(min(5, logits.shape[1]), 1).indices == batch.targets.view(-1, 1)).any(1).cpu())
        targets.append(batch.targets.cpu())
        shown.append(to_uint8(assemble_tiles(tiles, 3)))
    pred, tgt = torch.cat(preds), torch.cat(targets)
    pconf = torch.cat(probs).numpy()
    correct = (pred == tgt).numpy()
    pm = perms.cpu().numpy()
    # tiles the predicted permutation puts in the right place (9 when right)
    tiles_right = (pm[pred.numpy()] == pm[tgt.numpy()]).sum(1)
    hamming = 9 - tiles_right
    position_acc = (pm[pred.numpy()] == pm[tgt.numpy()]).mean(0)
    wrong = np.flatnonzero(~correct)
    wrong = wrong[np.argsort(-pconf[wrong])][:max_examples]
    examples, captions, ex_true, ex_pred, ex_extra = [], [], [], [], []
    for r in wrong.tolist():
        examples.append(shown[r // batch_size][r % batch_size])
        cls = f" · {class_names[labels[r]]}" if labels is not None and class_names else ""
        captions.append(f"#{r}: true #{int(tgt[r])}, said #{int(pred[r])}, {int(hamming[r])} of 9 tiles "
                        f"misplaced{cls}")
        ex_true.append(f"#{int(tgt[r])}")
        ex_pred.append(f"#{int(pred[r])}")
        ex_extra.append(f"{int(hamming[r])} off")
    return {
        "method": "jigsaw", "accuracy": float(correct.mean()), "num_images": int(x.shape[0]),
        "num_inputs": int(len(correct)),
        "top5": float(torch.cat(top5s).float().mean()), "permutations": int(len(pm)),
        "tiles_right_mean": float(tiles_right.mean()),
        "hamming_hist": np.bincount(hamming, minlength=10).astype(np.int64),
        "position_accuracy": position_acc.astype(np.float32),
        "per_image_class": _per_class(correct, labels, class_names),
        "class_names": list(class_names or []),
        "examples": np.stack(examples) if examples else np.zeros((0, 3, 3, 3), np.uint8),
        "captions": captions, "example_true": ex_true, "example_pred": ex_pred, "example_extra": ex_extra,
    }


def pretext_errors(method, images_u8: torch.Tensor, labels: np.ndarray | None, class_names: list[str] | None,
                   device="cpu", seed: int = 0, max_examples: int = 24) -> dict:
    """Dispatch on the method; a dict with ``note`` only for methods without a pretext classifier."""
    name = getattr(method, "name", "")
    if name not in SUPPORTED:
        return {"method": name, "note": f"pretext error analysis applies to RotNet and Jigsaw; this run is "
                                        f"{name or 'another method'} (see the reconstructions for MAE)"}
    x = images_u8.to(device).float().div(255)
    fn = rotation_errors if name == "rotnet" else jigsaw_errors
    return fn(method, x, labels, class_names, seed=seed, max_examples=max_examples)


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
