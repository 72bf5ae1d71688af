"""Pretext generators on clips: frame order, tracked patches, and a reference frame to colour from.

Clips are float batches ``(B, T, C, H, W)`` in [0, 1]; ``C`` is 3, or 4 when the fourth channel
marks the moving object (the built-in clips know where it is). Like every generator here, each
returns a :class:`PretextBatch` and is the one code path of training and preview.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.pretext.base import PretextBatch

ORDER_LABELS = ("shuffled", "in order")


class NotClips(ValueError):
    """A clip method was given single images."""


def split_clip(x: torch.Tensor, method: str = "this method") -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(rgb (B, T, 3, H, W), object mask (B, T, H, W) or None)`` of a clip batch."""
    if x.ndim != 5:
        raise NotClips(f"{method} trains on clips, and the data are single images {tuple(x.shape)}; choose "
                       "builtin:clips, clips:FOLDER (one sub-folder of frames per clip) or a folder of videos")
    if x.shape[1] < 3:
        raise NotClips(f"{method} needs clips of at least 3 frames, got {x.shape[1]}")
    return x[:, :, :3], (x[:, :, 3] if x.shape[2] > 3 else None)


def _randint(lo: int, hi: int, n: int, g, device) -> torch.Tensor:
    """``n`` integers in [lo, hi] inclusive."""
    return torch.randint(lo, hi + 1, (n,), generator=g, device=g.device if g is not None else "cpu").to(device)


def order_triplets(x: torch.Tensor, g: torch.Generator | None, positive_fraction: float = 0.5) -> PretextBatch:
    """Shuffle and Learn (Misra et al. 2016): three distinct frames ``s0 < s1 < s2`` of a clip; the
    triplet (s0, s1, s2) is in order, (s1, s0, s2) and (s0, s2, s1) are shuffled (the middle frame
    lies outside the span of the other two: the paper's (b, a, d) and (b, e, d)). Each triplet is
    read forwards or backwards at random (a clip played backwards is still in order). Inputs
    ``(B, 3, 3, H, W)``; targets 1 = in order, 0 = shuffled; meta: the frame indices used."""
    rgb, _ = split_clip(x, "Shuffle and Learn")
    b, t = rgb.shape[:2]
    dev = rgb.device
    gen_dev = g.device if g is not None else "cpu"
    keys = torch.rand(b, t, generator=g, device=gen_dev).to(dev)
    s = keys.topk(3, dim=1).indices.sort(dim=1).values  # three distinct frames, sorted
    positive = torch.rand(b, generator=g, device=gen_dev).to(dev) < positive_fraction
    low = torch.rand(b, generator=g, device=gen_dev).to(dev) < 0.5
    shuffled = torch.where(low[:, None], s[:, [1, 0, 2]], s[:, [0, 2, 1]])
    idx = torch.where(positive[:, None], s, shuffled)
    backwards = torch.rand(b, generator=g, device=gen_dev).to(dev) < 0.5
    idx = torch.where(backwards[:, None], idx.flip(1), idx)
    frames = rgb.gather(1, idx[:, :, None, None, None].expand(-1, -1, *rgb.shape[2:]))
    return PretextBatch(frames, positive.long(), {"frames": idx.cpu(),
                                                  "labels": [ORDER_LABELS[int(v)] for v in positive]})


# -- tracking -------------------------------------------------------------------------------------
def crop_patches(frames: torch.Tensor, centers: torch.Tensor, size: float, out: int) -> torch.Tensor:
    """Square patches of ``size`` pixels centred at ``centers`` ``(B, 2)`` (x, y in pixel indices)
    of ``frames`` ``(B, C, H, W)``, resampled to ``out`` x ``out`` (borders are replicated)."""
    b, _, h, w = frames.shape
    cx = (centers[:, 0] + 0.5) / w * 2 - 1
    cy = (centers[:, 1] + 0.5) / h * 2 - 1
    theta = torch.zeros(b, 2, 3, device=frames.device, dtype=frames.dtype)
    theta[:, 0, 0] = size / w
    theta[:, 1, 1] = size / h
    theta[:, 0, 2] = cx
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, (b, frames.shape[1], out, out), align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)


def block_match(prev: torch.Tensor, nxt: torch.Tensor, centers: torch.Tensor, patch: int,
                radius: int) -> torch.Tensor:
    """Track the ``patch`` x ``patch`` block of ``prev`` ``(B, C, H, W)`` centred at integer
    ``centers`` ``(B, 2)`` into ``nxt``: the shift within ``radius`` pixels with the smallest
    sum of squared differences. Returns the new centres ``(B, 2)`` (x, y)."""
    b, c, h, w = prev.shape
    pad = patch // 2 + radius
    p_prev = F.pad(prev, (pad, pad, pad, pad), mode="replicate")
    p_next = F.pad(nxt, (pad, pad, pad, pad), mode="replicate")
    centers = torch.stack([centers[:, 0].clamp(0, w - 1), centers[:, 1].clamp(0, h - 1)], 1)
    cx, cy = centers[:, 0].round().long() + pad, centers[:, 1].round().long() + pad
    half = patch // 2
    ar = torch.arange(patch, device=prev.device) - half
    rows = (cy[:, None] + ar)[:, :, None].expand(-1, -1, patch)
    cols = (cx[:, None] + ar)[:, None, :].expand(-1, patch, -1)
    bi = torch.arange(b, device=prev.device)[:, None, None]
    block = p_prev.permute(0, 2, 3, 1)[bi, rows, cols]  # (B, p, p, C)
    span = patch + 2 * radius
    ars = torch.arange(span, device=prev.device) - half - radius
    rows_s = (cy[:, None] + ars)[:, :, None].expand(-1, -1, span)
    cols_s = (cx[:, None] + ars)[:, None, :].expand(-1, span, -1)
    region = p_next.permute(0, 2, 3, 1)[bi, rows_s, cols_s].permute(0, 3, 1, 2)  # (B, C, span, span)
    cand = F.unfold(region, patch)  # (B, C*p*p, (2r+1)^2)
    ref = block.permute(0, 3, 1, 2).reshape(b, -1, 1)
    ssd = (cand - ref).pow(2).sum(1)  # (B, (2r+1)^2)
    best = ssd.argmin(1)
    side = 2 * radius + 1
    dy, dx = best // side - radius, best % side - radius
    return torch.stack([centers[:, 0].round() + dx, centers[:, 1].round() + dy], 1).to(centers.dtype)


def motion_peak(residual: torch.Tensor, patch: int) -> torch.Tensor:
    """Centre ``(B, 2)`` of what moves in a frame: where it differs most from the clip's still
    background (``residual``: the frame minus the clip's per-pixel median over time). The peak of
    the difference pooled over a half-patch window, refined to the centre of mass of the
    difference within a patch around it."""
    energy = residual.abs().sum(1, keepdim=True)
    h, w = energy.shape[-2:]
    k = max(3, (patch // 2) | 1)
    pooled = F.avg_pool2d(energy, k, stride=1, padding=k // 2, count_include_pad=True)[:, 0]
    flat = pooled.flatten(1).argmax(1)
    px, py = (flat % w).float(), (flat // w).float()
    xs = torch.arange(w, device=energy.device, dtype=energy.dtype)
    ys = torch.arange(h, device=energy.device, dtype=energy.dtype)
    near = ((xs[None, None, :] - px[:, None, None]).abs() <= patch / 2) & \
        ((ys[None, :, None] - py[:, None, None]).abs() <= patch / 2)
    wgt = energy[:, 0] * near
    total = wgt.sum((1, 2)).clamp(min=1e-6)
    return torch.stack([(wgt.sum(1) * xs).sum(1) / total, (wgt.sum(2) * ys).sum(1) / total], 1)


def mask_center(mask: torch.Tensor) -> torch.Tensor:
    """Centre of mass ``(B, 2)`` (x, y) of occupancy masks ``(B, H, W)``."""
    h, w = mask.shape[-2:]
    ys = torch.arange(h, device=mask.device, dtype=mask.dtype)
    xs = torch.arange(w, device=mask.device, dtype=mask.dtype)
    total = mask.sum((1, 2)).clamp(min=1e-6)
    return torch.stack([(mask.sum(1) * xs).sum(1) / total, (mask.sum(2) * ys).sum(1) / total], 1)


def tracked_pairs(x: torch.Tensor, g: torch.Generator | None, patch_fraction: float = 0.6, max_gap: int = 4,
                  track: str = "auto", radius: int = 3) -> PretextBatch:
    """Tracking as supervision (Wang and Gupta 2015): a patch on the moving object of frame ``t``
    and the same object tracked to frame ``t + gap`` (``1 <= gap <= max_gap``). The track is the
    object's known position where the clip carries its mask (``track="auto"`` or ``"known"``),
    otherwise block matching frame by frame (a block half the patch's side around its centre, so
    the still background around the object pulls less towards a zero shift), from the patch that
    differs most from the clip's still background (its per-pixel median over time). Inputs
    ``(query, tracked)``, each ``(B, 3, H, W)`` (patches resampled to the frame size); the negative
    of clip ``i`` is another clip's patch (chosen by the method). Meta: frames, centres, box size."""
    rgb, mask = split_clip(x, "Tracking")
    b, t, _, h, w = rgb.shape
    dev = rgb.device
    gap = _randint(1, max(1, min(max_gap, t - 1)), b, g, dev)
    start = (torch.rand(b, generator=g, device=g.device if g is not None else "cpu").to(dev)
             * (t - gap).float()).long()
    end = start + gap
    size = max(4, int(round(patch_fraction * min(h, w))))
    bi = torch.arange(b, device=dev)
    known = mask is not None and track in ("auto", "known")
    if track == "known" and mask is None:
        raise NotClips("these clips carry no object track; use track='block_matching'")
    if known:
        c0, c1 = mask_center(mask[bi, start]), mask_center(mask[bi, end])
        path = None
    else:
        residual = rgb - rgb.median(dim=1, keepdim=True).values
        c0 = motion_peak(residual[bi, start], size)
        c = c0.clone()
        path = [c0]
        for s in range(int(gap.max())):
            step = s < gap  # clips whose track is already at its end stay there
            f_from = rgb[bi, (start + s).clamp(max=t - 1)]
            f_to = rgb[bi, (start + s + 1).clamp(max=t - 1)]
            moved = block_match(f_from, f_to, c, max(5, (size // 2) | 1), radius)
            c = torch.where(step[:, None], moved, c)
            path.append(c)
        c1 = c
    query = crop_patches(rgb[bi, start], c0, size, h)
    tracked = crop_patches(rgb[bi, end], c1, size, h)
    meta = {"start": start.cpu(), "end": end.cpu(), "c0": c0.cpu(), "c1": c1.cpu(), "size": size,
            "track": "known" if known else "block matching"}
    return PretextBatch((query, tracked), None, meta)


# -- colour from a reference frame ----------------------------------------------------------------
def reference_target(x: torch.Tensor, g: torch.Generator | None, max_gap: int = 3) -> PretextBatch:
    """Video colorization (Vondrick et al. 2018): a reference frame and a target frame up to
    ``max_gap`` frames away (before or after). Inputs: both frames grey (L as 3 channels);
    targets: the frames in Lab. Meta: the frame indices, the RGB frames and the target's object mask
    (``(B, H, W)``; None for clips without one)."""
    from engine.pretext.color import lightness_image, rgb_to_lab

    rgb, mask = split_clip(x, "Video colorization")
    b, t = rgb.shape[:2]
    dev = rgb.device
    gap = _randint(1, max(1, min(max_gap, t - 1)), b, g, dev)
    first = (torch.rand(b, generator=g, device=g.device if g is not None else "cpu").to(dev)
             * (t - gap).float()).long()
    swap = torch.rand(b, generator=g, device=g.device if g is not None else "cpu").to(dev) < 0.5
    ref = torch.where(swap, first + gap, first)
    tgt = torch.where(swap, first, first + gap)
    bi = torch.arange(b, device=dev)
    ref_rgb, tgt_rgb = rgb[bi, ref], rgb[bi, tgt]
    lab_r, lab_t = rgb_to_lab(ref_rgb), rgb_to_lab(tgt_rgb)
    meta = {"ref": ref.cpu(), "tgt": tgt.cpu(), "ref_rgb": ref_rgb, "tgt_rgb": tgt_rgb,
            "tgt_mask": None if mask is None else mask[bi, tgt]}
    return PretextBatch((lightness_image(lab_r), lightness_image(lab_t)), (lab_r, lab_t), meta)
