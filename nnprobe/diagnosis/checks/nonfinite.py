"""Values that cannot be right: a NaN/Inf loss (also disguised as 0.0 by HF's NaN filter) or a negative
one, and NaN/Inf in any other metric (accuracy, grad norm ...)."""
from __future__ import annotations

import numpy as np

from nnprobe.diagnosis.checks._util import at, finite_points, r, where_text
from nnprobe.diagnosis.checks.registry import Flag, RunContext, register
from nnprobe.diagnosis.roles import NAME_SPLIT, role_of

NAN_HINT = ("Lower the learning rate or add warmup, clip gradients (clip_grad_norm_ max_norm=1.0), check "
            "inputs and labels for NaN/Inf, use log_softmax/cross_entropy instead of log(softmax), and in "
            "fp16 use a GradScaler or switch to bf16.")
MASKED_MIN_LOGS = 2  # HF Trainer: loss exactly 0.0 at >= 2 logs while grad_norm is NaN/Inf (REFERENCE.md)


@register("loss-not-finite", title="Loss is finite", any_of=("train_loss", "val_loss"))
def loss_not_finite(ctx: RunContext):
    """Any NaN/±Inf in a loss series (Keras TerminateOnNaN / Lightning check_finite watch one value;
    we report the first step and the count), plus HF's masked NaN: its NaN filter logs the loss as
    exactly 0.0 while grad_norm is non-finite."""
    for role in ("train_loss", "val_loss"):
        series = ctx.roles.get(role)
        if series is None:
            continue
        bad = np.flatnonzero(~np.isfinite(series.values))
        if bad.size:
            first = int(bad[0])
            kept, values = finite_points(series)
            before = values[kept < first]
            yield Flag(
                "error",
                f"{role} '{series.name}' becomes {r(series.values[first])} at {where_text(series, first)}: "
                f"{bad.size} of {len(series)} points are not finite.",
                NAN_HINT,
                {"series": series.name, "role": role, **at(series, first), "value": r(series.values[first]),
                 "count": int(bad.size), "points": len(series),
                 "last_finite": r(before[-1]) if before.size else None},
            )
    train, grad = ctx.roles.get("train_loss"), ctx.roles.get("grad_norm")
    if train is not None and grad is not None:
        common, i_loss, i_grad = np.intersect1d(train.steps, grad.steps, return_indices=True)
        masked = (train.values[i_loss] == 0.0) & ~np.isfinite(grad.values[i_grad])
        if masked.sum() >= MASKED_MIN_LOGS:
            steps = common[masked]
            first = int(i_loss[np.flatnonzero(masked)[0]])
            yield Flag(
                "error",
                f"train loss '{train.name}' is logged as exactly 0.0 while grad_norm is not finite at "
                f"{int(masked.sum())} logs from {where_text(train, first)}: a NaN loss hidden by the "
                f"Trainer's NaN filter.",
                NAN_HINT + " Set logging_nan_inf_filter=False to see the real values.",
                {"series": train.name, "grad_series": grad.name, **at(train, first), "count": int(masked.sum()),
                 "steps": [int(s) for s in steps[:10]]},
            )


@register("loss-negative", title="Loss is not negative", any_of=("train_loss", "val_loss"))
def loss_negative(ctx: RunContext):
    """Cross-entropy is >= 0; a negative value means a wrong loss (e.g. NLLLoss on probabilities instead
    of log-probabilities) or a sign error (AUTOTRAINER)."""
    for role in ("train_loss", "val_loss"):
        series = ctx.roles.get(role)
        if series is None:
            continue
        idx, values = finite_points(series)
        negative = np.flatnonzero(values < 0)
        if negative.size:
            first = int(idx[negative[0]])
            yield Flag(
                "warning",
                f"{role} '{series.name}' is negative ({r(series.values[first])}) at "
                f"{where_text(series, first)}: {negative.size} negative points; cross-entropy cannot be < 0.",
                "Use cross_entropy on logits or NLLLoss on log_softmax outputs (not on probabilities), and "
                "check the sign of custom loss terms.",
                {"series": series.name, **at(series, first), "value": r(series.values[first]),
                 "count": int(negative.size), "min": r(values.min())},
            )


def _grad_like(name: str) -> bool:
    return role_of(name) == "grad_norm"


def _severity(name: str) -> str:
    """error for a loss or an accuracy (whatever its role), warning for anything else."""
    tokens = {t for t in NAME_SPLIT.split(name.lower()) if t}
    if "loss" in tokens or tokens & {"acc", "accuracy", "top1", "acc1", "acc@1", "top5", "acc5", "acc@5"}:
        return "error"
    return "warning"


@register("metric-not-finite", title="Every metric is finite")
def metric_not_finite(ctx: RunContext):
    """NaN/±Inf in any series but the chosen losses (loss-not-finite) and learning rate (lr-range): error
    for an accuracy or another loss, warning for the rest. A non-finite gradient norm is info (fp16's
    GradScaler skips such steps by design), and nothing when a loss is not finite (that is the cause)."""
    owned = {id(ctx.roles[r]) for r in ("train_loss", "val_loss", "lr") if r in ctx.roles}
    owned_names = {ctx.roles[r].name for r in ("train_loss", "val_loss", "lr") if r in ctx.roles}
    loss_broken = any(not np.all(np.isfinite(ctx.roles[r].values)) for r in ("train_loss", "val_loss")
                      if r in ctx.roles)
    for name in sorted(ctx.series):
        series = ctx.series[name]
        if id(series) in owned or name in owned_names or not len(series):
            continue
        bad = np.flatnonzero(~np.isfinite(series.values))
        if not bad.size:
            continue
        first = int(bad[0])
        severity = _severity(name)
        hint = NAN_HINT
        if _grad_like(name):
            if loss_broken:
                continue
            severity = "info"
            hint = ("With fp16 a GradScaler skips steps whose gradients overflow and lowers its scale: a few "
                    "such steps are normal. Many in a row, or in fp32/bf16, mean the gradients blew up: " + NAN_HINT)
        elif severity == "warning":
            hint = "Check how this metric is computed (a division by zero, a log of 0, an overflow)."
        yield Flag(
            severity,
            f"'{name}' becomes {r(series.values[first])} at {where_text(series, first)}: {bad.size} of "
            f"{len(series)} points are not finite.",
            hint,
            {"series": name, **at(series, first), "value": r(series.values[first]), "count": int(bad.size),
             "points": len(series)},
        )
