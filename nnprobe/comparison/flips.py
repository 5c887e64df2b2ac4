"""Paired verdicts -> flips and their McNemar p-value (shared by eval and robust)."""
from __future__ import annotations

from collections.abc import Iterable

from nnprobe.comparison.mcnemar import mcnemar_p
from nnprobe.comparison.options import SHOWN_PATHS
from nnprobe.comparison.results import Flips


def flips(verdicts: Iterable[tuple[str, bool, bool]]) -> Flips:
    """(path, right in the baseline, right in the candidate) per paired image -> counts, the first paths of
    each direction, and p = P(X >= b) for X ~ Bin(b + c, 1/2)."""
    worse: list[str] = []
    better: list[str] = []
    for path, before, after in verdicts:
        if before and not after:
            worse.append(path)
        elif after and not before:
            better.append(path)
    return Flips(len(worse), len(better), mcnemar_p(len(worse), len(better)), tuple(worse[:SHOWN_PATHS]),
                 tuple(better[:SHOWN_PATHS]))
