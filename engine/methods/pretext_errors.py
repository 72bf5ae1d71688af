"""Where transformation-prediction methods err: RotNet and Jigsaw scored on clean pretext batches.

The images are not augmented here (no crops): the question is which rotations, permutations and
image classes the trained pretext head gets wrong, and what those images look like. Each method
answers through its ``pretext_errors`` hook (:meth:`engine.methods.base.Method.pretext_errors`);
the dict carries what a view needs to draw it without knowing the method:

- ``title``, ``summary``: a heading and a one-line result
- ``confusion`` + ``confusion_labels`` (+ ``confusion_title``): a true-vs-predicted matrix, or None
- ``chart``: ``{"labels", "series", "values", "title"}``, an accuracy bar per target / position
- ``histogram``: the same shape, counts (or None)
- ``per_image_class`` + ``class_names``, ``examples`` + ``captions`` (+ ``example_true/pred/extra``)
"""

from __future__ import annotations

import numpy as np
import torch

from engine.pretext import ROTATION_LABELS, jigsaw, rotation
from engine.pretext.base import generator_for
from engine.pretext.tiles import assemble_tiles, to_uint8


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
    acc = float(correct.mean())
    per_target = [float(conf[i, i] / max(1, conf[i].sum())) for i in range(4)]
    return {
        "method": method.name, "accuracy": acc, "num_images": int(x.shape[0]),
        "num_inputs": int(len(correct)),
        "title": "Rotation prediction",
        "summary": f"Rotation accuracy {acc:.1%} on {int(x.shape[0])} images × 4 rotations",
        "classes": list(ROTATION_LABELS), "confusion": conf.astype(np.int64),
        "confusion_labels": list(ROTATION_LABELS), "confusion_title": "Rotation: true (rows) vs predicted",
        "per_target": per_target,
        "chart": {"labels": list(ROTATION_LABELS), "series": "accuracy", "values": per_target,
                  "title": "Accuracy per rotation"},
        "histogram": None,
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
        tiles = method.encoder_tiles(batch.inputs)  # as training feeds them (normalised per tile with tile_norm)
        b, n = tiles.shape[:2]
        flat = tiles.reshape(b * n, *tiles.shape[2:])
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
    acc, top5 = float(correct.mean()), float(torch.cat(top5s).float().mean())
    hist = np.bincount(hamming, minlength=10).astype(np.int64)
    summary = (f"Permutation accuracy {acc:.1%} (top-5 {top5:.1%}) on {int(x.shape[0])} puzzles of {len(pm)} "
               f"permutations; on average {float(tiles_right.mean()):.1f} of 9 tiles right; misplaced tiles: "
               + ", ".join(f"{k}: {int(c)}" for k, c in enumerate(hist) if c))
    return {
        "method": method.name, "accuracy": acc, "num_images": int(x.shape[0]),
        "num_inputs": int(len(correct)),
        "title": "Jigsaw permutation prediction", "summary": summary,
        "confusion": None, "confusion_labels": None, "confusion_title": "",
        "top5": top5, "permutations": int(len(pm)),
        "tiles_right_mean": float(tiles_right.mean()),
        "hamming_hist": hist,
        "position_accuracy": position_acc.astype(np.float32),
        "chart": {"labels": [f"cell {i + 1}" for i in range(9)], "series": "tile in the right place",
                  "values": [float(v) for v in position_acc], "title": "Tiles put in the right cell"},
        "histogram": {"labels": [f"{k} of 9" for k in range(len(hist))], "series": "puzzles",
                      "values": hist.tolist(), "title": "Tiles misplaced per puzzle (0: solved)"},
        "per_image_class": _per_class(correct, labels, class_names),
        "class_names": list(class_names or []),
        "examples": np.stack(examples) if examples else np.zeros((0, 3, 3, 3), np.uint8),
        "captions": captions, "example_true": ex_true, "example_pred": ex_pred, "example_extra": ex_extra,
    }
