"""Small numeric helpers shared by the checks."""
from __future__ import annotations

import math

import numpy as np

from nnprobe.diagnosis.series import Series


def r(value: float, digits: int = 4) -> float | str:
    """A value for evidence: rounded; NaN/Inf spelled out (JSON has no NaN)."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return float(f"{value:.{digits}g}")


def at(series: Series, index: int) -> dict:
    """Where point `index` sits: step, and epoch when the log says it."""
    place = {"step": int(series.steps[index])}
    epoch = series.epoch_at(index)
    if epoch is not None:
        place["epoch"] = r(epoch, 6)
    return place


def where_text(series: Series, index: int) -> str:
    epoch = series.epoch_at(index)
    step = int(series.steps[index])
    return f"step {step}" + (f" (epoch {epoch:g})" if epoch is not None else "")


def epoch_label(series: Series, index: int) -> str:
    """How a user names an evaluation: 'epoch 7' when the epoch is known, else 'step 700'."""
    epoch = series.epoch_at(index)
    return f"epoch {epoch:g}" if epoch is not None else f"step {int(series.steps[index])}"


def finite_points(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """(indices, values) of the finite points."""
    mask = np.isfinite(series.values)
    return np.flatnonzero(mask), series.values[mask]


def aligned(train: Series, at_steps: np.ndarray) -> np.ndarray:
    """The train metric as seen at each evaluation step: the mean of its finite points since the previous
    evaluation (per-step logs), or the point at the same step (per-epoch logs). NaN when none.

    Vectorised (one searchsorted; the means taken per interval length as row means of a 2-D gather, which
    numpy sums pairwise exactly like a 1-D mean, so the values are bitwise those of a per-point loop).
    `train.steps` is sorted (a Series invariant); `at_steps` may be in any order."""
    at_steps = np.asarray(at_steps)
    out = np.full(at_steps.size, np.nan)
    mask = np.isfinite(train.values)
    steps = train.steps[mask]
    values = train.values[mask]
    if not steps.size or not at_steps.size:
        return out
    hi = np.searchsorted(steps, at_steps, side="right")
    lo = np.concatenate(([0], hi[:-1]))  # points after the previous evaluation step
    count = hi - lo
    single = (count <= 0) & (hi > 0)
    out[single] = values[hi[single] - 1]
    for size in np.unique(count[count > 0]).tolist():
        rows = np.flatnonzero(count == size)
        out[rows] = values[lo[rows, None] + np.arange(size)].sum(axis=1) / size
    return out


def is_epoch_aggregate(series: Series) -> bool:
    """A per-epoch mean (Keras epoch_loss, Lightning *_epoch, CSVLogger rows), not a per-step value."""
    tokens = series.name.lower().replace("/", "_").split("_")
    return "epoch" in tokens or series.format == "keras-csv"
