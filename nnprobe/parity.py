"""Exported-model parity (`--reference-model`): the candidate and a reference evaluated on the same batches,
compared image by image. One record (`Parity`), its gates, and no torch (the per-batch tally is in
`nnprobe.parity_tally`).

Drift is counted as top-1 answers that differ (any change of answer, whatever the label says), with the
correctness flips both ways, the images whose top-5 set changed, and the largest absolute logit
difference and where (image and class). A faithful export has 0 changed answers and a logit difference at
float rounding (~1e-5); the gates `--max-flips N` (default 0 when a reference is given) and
`--max-logit-diff F` fail the run otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from nnprobe.errors import UsageError
from nnprobe.intervals import CONFIDENCE, Interval, clopper_pearson

SHOWN = 20  # paths listed per kind of change


@dataclass(frozen=True)
class Parity:
    """The candidate against `reference` on the same `images`."""

    reference: str  # the reference model's spec
    reference_source: str
    images: int
    top1_changed: int  # images whose top-1 answer differs
    right_to_wrong: int  # reference right, candidate wrong
    wrong_to_right: int
    top5_changed: int  # images whose top-5 set differs (as sets)
    max_logit_diff: float
    max_logit_diff_path: str | None
    max_logit_diff_class: int | None
    top1_changed_paths: tuple[str, ...] = ()
    right_to_wrong_paths: tuple[str, ...] = ()
    wrong_to_right_paths: tuple[str, ...] = ()
    top5_changed_paths: tuple[str, ...] = ()
    confidence_level: float = CONFIDENCE

    @property
    def agreement(self) -> Interval:
        """The share of images with the same top-1 answer, with its exact interval."""
        return clopper_pearson(self.images - self.top1_changed, self.images, self.confidence_level)


def check_parity_gates(max_flips: int | None, max_logit_diff: float | None) -> None:
    if max_flips is not None and (isinstance(max_flips, bool) or not isinstance(max_flips, int) or max_flips < 0):
        raise UsageError(f"--max-flips must be a whole number >= 0, got {max_flips!r}.")
    if max_logit_diff is not None and not (isinstance(max_logit_diff, (int, float)) and not isinstance(max_logit_diff, bool)
                                           and math.isfinite(max_logit_diff) and max_logit_diff >= 0):
        raise UsageError(f"--max-logit-diff must be a finite number >= 0, got {max_logit_diff!r}.")
