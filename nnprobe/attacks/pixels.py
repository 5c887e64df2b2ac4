"""From float attack output to an 8-bit image that still respects the budget.

Rounding (not truncating) to 8 bits can move a pixel up to half a grey level, which can push the
perturbation outside the eps ball (torchattacks' integer save truncates and moved pixels 2/255 at eps
1/255). Here every rounded pixel is projected back: L∞ per pixel to the nearest 8-bit value inside the
ball; L2 by moving the pixels that rounding pushed outward back one level, largest overshoot first,
until the 8-bit perturbation is inside the ball again.
"""
from __future__ import annotations

import math

import torch

_TOLERANCE = 1e-6  # eps*255 computed in floating point: 2/255*255 may read 1.9999999


def linf_levels(eps: float) -> int:
    """The largest whole number of grey levels inside an L∞ budget."""
    return math.floor(eps * 255 + _TOLERANCE)


def quantize(adversarial: torch.Tensor, original: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Round a float image in [0, 1] to uint8, keeping (uint8 − original) inside the eps ball.

    adversarial: float (..., C, H, W) in [0, 1]; original: uint8 of the same shape (the image attacked).
    """
    if adversarial.shape != original.shape:
        raise ValueError(f"shapes differ: {tuple(adversarial.shape)} vs {tuple(original.shape)}")
    target = adversarial.detach().double().cpu() * 255
    base = original.detach().cpu().to(torch.int64)
    rounded = torch.round(target).to(torch.int64).clamp(0, 255)
    if norm == "linf":
        bound = linf_levels(eps)
        rounded = torch.minimum(torch.maximum(rounded, base - bound), base + bound).clamp(0, 255)
        return rounded.to(torch.uint8)
    if norm != "l2":
        raise ValueError(f"unknown norm {norm!r}")
    flat_rounded = rounded.reshape(-1, *rounded.shape[-3:]) if rounded.dim() >= 3 else rounded[None]
    flat_target = target.reshape(flat_rounded.shape)
    flat_base = base.reshape(flat_rounded.shape)
    out = [_l2_fit(r.flatten(), t.flatten(), b.flatten(), eps * 255).reshape(r.shape)
           for r, t, b in zip(flat_rounded, flat_target, flat_base)]
    return torch.stack(out).reshape(rounded.shape).to(torch.uint8)


def _l2_fit(rounded: torch.Tensor, target: torch.Tensor, base: torch.Tensor, radius: float) -> torch.Tensor:
    delta = rounded - base
    budget = radius * radius + _TOLERANCE
    squared = int((delta * delta).sum())
    if squared <= budget:
        return rounded
    wanted = target - base.double()
    overshoot = delta.abs().double() - wanted.abs()  # > 0 where rounding moved away from the original
    candidates = (overshoot > 0).nonzero().flatten()
    order = candidates[torch.argsort(overshoot[candidates], descending=True, stable=True)]
    saving = 2 * delta[order].abs() - 1  # |d|² − (|d|−1)²
    remaining = squared - torch.cumsum(saving, 0)
    inside = (remaining <= budget).nonzero().flatten()
    count = int(inside[0]) + 1 if inside.numel() else order.numel()
    chosen = order[:count]
    delta = delta.clone()
    delta[chosen] -= delta[chosen].sign()
    if float((delta * delta).sum()) > budget:  # cannot happen for a float input inside the ball
        delta = torch.trunc(wanted).to(torch.int64)
    return base + delta
