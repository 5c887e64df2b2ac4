"""The optimiser's own logs: learning rate out of range, gradient norm exploding or vanishing."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nnprobe.diagnosis.checks._util import at, finite_points, r, where_text
from nnprobe.diagnosis.checks.registry import Flag, RunContext, register
from nnprobe.diagnosis.roles import optimizer_of

# UMLAUT flags learning rates > 0.01 and < 1e-7. SGD recipes use 0.1-0.4 (ResNet, linear scaling), so
# the 0.01 ceiling is applied only to adaptive optimisers (Adam default 1e-3); others get 1.0.
LR_MAX_ADAPTIVE = 0.01
LR_MAX_OTHER = 1.0
LR_MIN = 1e-7
LR_ZERO_SHARE = 0.5  # "stuck at 0": zero for at least half of the logged points
ADAPTIVE = ("adam", "adamw", "nadam", "radam", "adamax", "rmsprop", "adagrad", "adadelta", "adafactor")
# SageMaker Debugger: gradient norm > 10x its rolling median; AUTOTRAINER: vanishing below 1e-7.
GRAD_FACTOR = 10.0
GRAD_WINDOW = 30
GRAD_MIN_HISTORY = 5
GRAD_VANISH = 1e-7
GRAD_VANISH_RUN = 10


@register("lr-range", title="Learning rate in range", requires=("lr",))
def lr_range(ctx: RunContext):
    """Learning rate 0 throughout or for half the run, below 1e-7, or above 0.01 (adaptive) / 1.0 (other)."""
    series = ctx.roles["lr"]
    idx, values = finite_points(series)
    optimizer = optimizer_of(series.name) or str(ctx.meta.get("optimizer", "")).lower() or None
    evidence = {"series": series.name, "optimizer": optimizer, "points": len(series)}
    if idx.size < len(series):
        bad = int(np.flatnonzero(~np.isfinite(series.values))[0])
        yield Flag("warning", f"learning rate '{series.name}' is not finite from {where_text(series, bad)}.",
                   "Check the LR scheduler's formula (division by zero, overflow).", {**evidence, **at(series, bad)})
    if not values.size:
        return
    top = float(values.max())
    evidence.update(max=r(top), min=r(values.min()))
    zero_share = float((values == 0).mean())
    ceiling = LR_MAX_ADAPTIVE if optimizer and optimizer.startswith(ADAPTIVE) else LR_MAX_OTHER
    if top <= 0:
        yield Flag("warning", f"learning rate '{series.name}' is 0 throughout: nothing can be learned.",
                   "Set a learning rate > 0; check the scheduler (a warmup that never ends, a factor of 0).",
                   evidence)
    elif zero_share >= LR_ZERO_SHARE:
        yield Flag("warning", f"learning rate '{series.name}' is 0 at {zero_share:.0%} of the logged points.",
                   "Check the scheduler: it decays to 0 too early or its warmup never ends.",
                   {**evidence, "zero_share": r(zero_share)})
    elif top < LR_MIN:
        yield Flag("warning", f"learning rate '{series.name}' never exceeds {top:.3g} (< {LR_MIN:g}): too small "
                              f"to learn.", "Raise the learning rate (Adam ~1e-3, SGD ~0.1).", evidence)
    elif top > ceiling:
        yield Flag("warning", f"learning rate '{series.name}' reaches {top:.3g}, above {ceiling:g} for "
                              f"{optimizer or 'an unnamed optimiser'}.",
                   "Lower the learning rate or add warmup; adaptive optimisers rarely need more than 1e-2.",
                   {**evidence, "ceiling": ceiling})


def _preceding_medians(values: np.ndarray) -> np.ndarray:
    """Median of the (up to) GRAD_WINDOW points before each point; NaN with < GRAD_MIN_HISTORY before."""
    out = np.full(values.size, np.nan)
    for i in range(GRAD_MIN_HISTORY, min(GRAD_WINDOW, values.size)):
        out[i] = np.median(values[:i])
    if values.size > GRAD_WINDOW:
        out[GRAD_WINDOW:] = np.median(sliding_window_view(values[:-1], GRAD_WINDOW), axis=1)
    return out


@register("grad-norm", title="Gradient norm stable", requires=("grad_norm",))
def grad_norm(ctx: RunContext):
    """Explosion: a norm > 10x the median of the 30 logs before it; vanishing: < 1e-7 for 10 logs."""
    series = ctx.roles["grad_norm"]
    # Non-finite norms are left out: with fp16 a GradScaler skips such steps by design, and a NaN that
    # reaches the loss is loss-not-finite's finding.
    idx, finite = finite_points(series)
    explode_hint = ("Clip gradients (clip_grad_norm_ max_norm=1.0), lower the learning rate or add warmup, "
                    "check fp16 overflow and the batches at those steps.")
    if finite.size > GRAD_MIN_HISTORY:
        medians = _preceding_medians(finite)
        with np.errstate(invalid="ignore"):
            hit = (medians > 0) & (finite > GRAD_FACTOR * medians)
        hits = np.flatnonzero(hit)
        if hits.size:
            i = int(hits[0])
            median = float(medians[i])
            first = int(idx[i])
            yield Flag("warning", f"gradient norm '{series.name}' jumps to {finite[i]:.4g} at "
                                  f"{where_text(series, first)}, > {GRAD_FACTOR:g}x its recent median {median:.4g} "
                                  f"({hits.size} such points).", explode_hint,
                       {"series": series.name, **at(series, first), "value": r(finite[i]), "median": r(median),
                        "count": int(hits.size)})
    small = finite < GRAD_VANISH
    longest, current, end = 0, 0, -1
    for k, flag in enumerate(small):
        current = current + 1 if flag else 0
        if current > longest:
            longest, end = current, k
    needed = min(GRAD_VANISH_RUN, max(3, finite.size))
    if finite.size >= 3 and longest >= needed:
        first = int(idx[end - longest + 1])
        yield Flag("warning", f"gradient norm '{series.name}' stays below {GRAD_VANISH:g} for {longest} logs from "
                              f"{where_text(series, first)}: the gradients vanished.",
                   "Gradients do not reach the weights: check for saturated sigmoid/tanh, dead ReLUs, a "
                   "detached graph, or a too-small init; use normalisation or residual connections.",
                   {"series": series.name, **at(series, first), "logs": longest})
