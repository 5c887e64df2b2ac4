"""An interval on every delta of an eval comparison (candidate - baseline, at `Options.confidence`):
top-1/top-5 by Newcombe's paired interval when the per-sample files pair the images (his independent one
otherwise); mean loss and ECE by a paired bootstrap over the paired images (the same resamples for both
runs); and the minimal detectable drop of the exact McNemar test at this N and alpha."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from nnprobe.calibration import ECE_BINS, bin_index
from nnprobe.calibration_suite import binned_errors
from nnprobe.comparison.results import MetricDelta
from nnprobe.intervals import (RESAMPLES, SEED, Interval, bootstrap_method, independent_difference,
                               paired_difference, percentile_interval, resample_weights)

DEFAULT_ALPHA = 0.05  # the McNemar level the minimal detectable drop is stated at when no --alpha is given


def _table(pairs: list[tuple[dict, dict]], right) -> tuple[int, int, int, int]:
    both = lost = gained = neither = 0
    for a, b in pairs:
        before, after = right(a), right(b)
        both += before and after
        lost += before and not after
        gained += after and not before
        neither += not (before or after)
    return both, lost, gained, neither


def _rate_interval(name: str, base: dict, cand: dict, pairs, right, confidence: float) -> Interval | None:
    if pairs is not None:
        return paired_difference(*_table(pairs, right), confidence=confidence)
    key = "correct_top1" if name == "top1" else "correct_top5"
    counts = [body.get(k) for body in (base, cand) for k in (key, "total")]
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        return None
    return independent_difference(*counts, confidence=confidence)


def _paired_column(pairs, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        return (np.array([float(a[key]) for a, _ in pairs]), np.array([float(b[key]) for _, b in pairs]))
    except (KeyError, TypeError, ValueError):
        return None


def _bootstrapped_deltas(pairs, right, confidence: float, resamples: int, seed: int) -> dict[str, Interval]:
    """Paired bootstrap of the mean-loss and ECE deltas (rows without loss/confidence give none)."""
    n = len(pairs)
    losses, confs = _paired_column(pairs, "loss"), _paired_column(pairs, "confidence")
    if not n or (losses is None and confs is None):
        return {}
    hits = [np.array([float(right(r[side])) for r in pairs]) for side in (0, 1)]
    index = [bin_index(c, ECE_BINS) for c in confs] if confs is not None else None

    def deltas(weights: np.ndarray) -> dict[str, float]:
        out = {}
        if losses is not None:
            out["mean_loss"] = float((weights * (losses[1] - losses[0])).sum() / weights.sum())
        if confs is not None:
            ece = [binned_errors(confs[s], hits[s], index[s], ECE_BINS, weights)[0] for s in (0, 1)]
            out["ece"] = ece[1] - ece[0]
        return out

    value = deltas(np.ones(n))
    draws: dict[str, list[float]] = {k: [] for k in value}
    for chunk in resample_weights(n, resamples, seed):
        for weights in chunk.astype(np.float64):
            for k, v in deltas(weights).items():
                draws[k].append(v)
    method = "paired " + bootstrap_method(resamples, seed)
    return {k: percentile_interval(value[k], draws[k], confidence, method) for k in value}


def with_intervals(metrics: tuple[MetricDelta, ...], base: dict[str, Any], cand: dict[str, Any], pairs,
                   rights: dict[str, Any], confidence: float, resamples: int = RESAMPLES,
                   seed: int = SEED) -> tuple[MetricDelta, ...]:
    """`metrics` with the interval of each delta that has one. `rights` maps top1/top5 to the row test."""
    boot = _bootstrapped_deltas(pairs, rights["top1"], confidence, resamples, seed) if pairs is not None else {}
    out = []
    for m in metrics:
        interval = None
        if m.delta is not None and m.name in rights:
            interval = _rate_interval(m.name, base, cand, pairs, rights[m.name], confidence)
        elif m.delta is not None:
            interval = boot.get(m.name)
        out.append(dataclasses.replace(m, interval=interval))
    return tuple(out)
