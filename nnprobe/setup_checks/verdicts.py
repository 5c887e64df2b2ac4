"""What a setup finding is (`SetupFinding`) and when a measurement explains the result: top-1 up by at least
MIN_GAIN and an exact one-sided McNemar test on the images that changed at p < ALPHA. No torch."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnprobe.results import to_jsonable

MIN_GAIN = 0.05  # 5 points of top-1: on 256 images that is 13 images changing for the better
ALPHA = 0.01  # one-sided exact McNemar p-value below which a gain is not noise
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class SetupFinding:
    """One setup mistake that the measurements say explains the low accuracy, and how to fix it."""

    id: str
    severity: str  # error | warning | info
    message: str  # what was measured, with "top-1 x% -> y%"
    fix: str  # the flag or change that applies the fix
    evidence: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)


def mcnemar_greater(before: np.ndarray, after: np.ndarray) -> float:
    """Exact one-sided McNemar p-value that `after` (bool per image) is right more often than `before`:
    P(X >= b) for X ~ Binomial(b + c, 1/2), b = images wrong->right, c = right->wrong."""
    b = int(np.count_nonzero(~before & after))
    c = int(np.count_nonzero(before & ~after))
    n = b + c
    if b == 0:
        return 1.0
    logs = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2) for k in range(b, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def verdict(before: np.ndarray, after: np.ndarray, chance: float = 0.0) -> tuple[bool, dict[str, Any]]:
    """Whether `after` (right or wrong per image) explains the result: top-1 up by at least MIN_GAIN, also
    above `chance` by MIN_GAIN (a disturbed model scores above a permuted 0% by luck), and p < ALPHA."""
    x, y = float(before.mean()), float(after.mean())
    p = mcnemar_greater(before, after)
    numbers = {"images": int(before.size), "top1_before": x, "top1_after": y, "gain": y - x, "p_value": p}
    return (y - x >= MIN_GAIN and y - chance >= MIN_GAIN and p < ALPHA), numbers


def severity(numbers: Mapping[str, float]) -> str:
    return "error" if numbers["gain"] >= 0.2 or numbers["top1_after"] >= 2 * numbers["top1_before"] else "warning"
