"""Random similarity transforms (rotation, scale, shift) as batched warps, for the exemplar
surrogate classes (Dosovitskiy et al. 2014) and relative-transformation prediction (AET, Zhang et
al. 2019).

Coordinates are the normalised image coordinates of ``F.affine_grid`` (x right, y down, both in
[-1, 1]). A transform ``T`` maps a point ``p`` of view 1 to ``q = A p + t`` in view 2, with
``A = s * R(angle)``; ``angle`` is anticlockwise as the image is displayed (``angle=90`` is
``torch.rot90(x, 1, dims=(2, 3))``), ``s > 1`` zooms in and ``t`` shifts the content (2 = the
image width). View 2 is drawn as ``view2(q) = view1(T^-1 q)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_similarity(b: int, g: torch.Generator | None, device, max_angle: float = 30.0,
                      scale: tuple[float, float] = (0.8, 1.25), max_shift: float = 0.2) -> dict:
    """Per-sample parameters: ``angle`` in degrees (uniform in +-max_angle), ``scale`` (log-uniform
    in the range), ``shift`` ``(B, 2)`` as a fraction of the image side (uniform in +-max_shift)."""
    u = torch.rand(b, 4, generator=g, device=device)
    angle = (u[:, 0] * 2 - 1) * max_angle
    lo, hi = math.log(scale[0]), math.log(scale[1])
    s = torch.exp(lo + (hi - lo) * u[:, 1])
    shift = (u[:, 2:] * 2 - 1) * max_shift
    return {"angle": angle, "scale": s, "shift": shift}


def similarity_matrix(angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """The forward transform ``(B, 2, 3)`` = ``[A | t]`` (view 1 -> view 2, normalised coordinates)."""
    r = torch.deg2rad(angle.float())
    c, s = torch.cos(r) * scale, torch.sin(r) * scale
    # anticlockwise on screen with y pointing down: x' = c x + s y, y' = -s x + c y
    a = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)
    t = shift.float() * 2  # a fraction of the side -> normalised units
    return torch.cat([a, t.unsqueeze(-1)], -1)


def invert(m: torch.Tensor) -> torch.Tensor:
    """Inverse of ``(B, 2, 3)`` affine transforms."""
    with torch.autocast(m.device.type, enabled=False):  # exact in float32, also inside a bf16 training step
        a_inv = torch.linalg.inv(m[:, :, :2].float())
        return torch.cat([a_inv, -(a_inv @ m[:, :, 2:].float())], -1)


def decompose(m: torch.Tensor) -> dict:
    """Angle (degrees), scale and shift (fraction of the side) of similarity matrices ``(B, 2, 3)``
    (of any affine matrix: its nearest similarity)."""
    m = m.float()
    c = (m[:, 0, 0] + m[:, 1, 1]) / 2
    s = (m[:, 0, 1] - m[:, 1, 0]) / 2
    return {"angle": torch.rad2deg(torch.atan2(s, c)), "scale": torch.sqrt(c * c + s * s), "shift": m[:, :, 2] / 2}


def warp(x: torch.Tensor, m: torch.Tensor, padding: str = "reflection", out_size: int | None = None) -> torch.Tensor:
    """View 2 of ``x`` under the forward transforms ``m`` ``(B, 2, 3)``: each output pixel ``q``
    samples ``x`` at ``T^-1 q`` (bilinear; outside the image: ``padding``)."""
    b, c, h, w = x.shape
    size = out_size or h
    theta = invert(m).to(x.dtype)
    grid = F.affine_grid(theta, [b, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def describe(angle: float, scale: float, shift, size: int) -> str:
    """One line in natural units: degrees, zoom and pixels."""
    return (f"rotate {angle:+.0f}°, scale {scale:.2f}, shift ({float(shift[0]) * size:+.1f}, "
            f"{float(shift[1]) * size:+.1f}) px")


def grid_overlay(x: torch.Tensor, lines: int = 4, color=(1.0, 0.85, 0.2)) -> torch.Tensor:
    """``x`` with ``lines`` x ``lines`` grid lines painted on (for drawing a warp in previews)."""
    b, c, h, w = x.shape
    yy = torch.arange(h, device=x.device).view(h, 1)
    xx = torch.arange(w, device=x.device).view(1, w)
    step_h, step_w = max(1, h // lines), max(1, w // lines)
    on = ((yy % step_h) == step_h // 2) | ((xx % step_w) == step_w // 2)
    col = torch.tensor(color, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return torch.where(on.view(1, 1, h, w), col.expand(b, 3, h, w), x)
