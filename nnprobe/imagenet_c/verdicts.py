"""The corruption sweep's per-image verdicts and the bootstrap intervals they give: mean corruption top-1, mCE
and relative mCE are linear in each image's top-1 right/wrong at every point (clean, then each (corruption,
severity)), so one bit per image and point is all a resample needs.

- The bits: a bool array (images, 1 + grid points), images in data order (sorted by their position in the
  data set, so batches, ranks and slices give the same array). 50,000 images x 76 points are 3.8 Mbit
  (475 KB packed); a `--shard` part's JSON carries its slice's bits (`ImageVerdicts`, base64 of numpy's
  packbits) for `nnprobe merge`, which concatenates them and resamples the whole.
- The bootstrap: `nnprobe.intervals.resample_weights` (seeded, `resamples` of them), each resample's accuracy
  at every point one integer matrix product (weights @ bits) / n, and the statistics computed by the same
  functions as the reported values (`mce.corruption_errors`, `mce.mean_over_all`), element-wise over the
  resamples; the percentile interval at `confidence` (`nnprobe.intervals.percentile_interval`).

Torch-free.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnprobe.errors import DataError
from nnprobe.imagenet_c import mce
from nnprobe.intervals import Interval, bootstrap_method, percentile_interval, resample_weights


@dataclass(frozen=True)
class ImageVerdicts:
    """A slice's top-1 bits as its JSON carries them: `points` bits per image (clean first, then the grid),
    images in `positions` order (their indices in the data set, ascending), packed row-major and base64."""

    points: int
    positions: tuple[int, ...]
    bits: str

    @staticmethod
    def encode(positions: np.ndarray, hits: np.ndarray) -> "ImageVerdicts":
        return ImageVerdicts(int(hits.shape[1]), tuple(int(p) for p in positions),
                             base64.b64encode(np.packbits(hits.astype(bool), axis=None).tobytes()).decode("ascii"))

    def decoded(self, origin: str = "the result") -> tuple[np.ndarray, np.ndarray]:
        """(positions int64, hits bool (images, points)); a damaged record is one sentence."""
        n = len(self.positions)
        try:
            packed = np.frombuffer(base64.b64decode(self.bits, validate=True), dtype=np.uint8)
        except (binascii.Error, ValueError):
            raise DataError(f"{origin}: the per-image verdicts are not base64: edited or damaged.") from None
        if self.points < 1 or len(packed) != (n * self.points + 7) // 8:
            raise DataError(f"{origin}: the per-image verdicts hold {len(packed)} bytes, not {n} images x "
                            f"{self.points} points: edited or damaged.")
        hits = np.unpackbits(packed, count=n * self.points).astype(bool).reshape(n, self.points)
        return np.asarray(self.positions, dtype=np.int64), hits


@dataclass(frozen=True)
class CorruptionBootstrap:
    """Percentile bootstrap intervals over images of the sweep's headline numbers (None where the number is:
    mCE needs ImageNet-C's 15 on a 1000-class model)."""

    mean_corruption_top1: Interval
    mce: Interval | None
    relative_mce: Interval | None


def statistics(clean: Any, accuracies: Sequence[Any], grid: Sequence[tuple[str, int]], imagenet: bool) -> dict:
    """Mean corruption top-1, mCE and relative mCE from the clean accuracy and one accuracy per grid point
    (floats, or numpy arrays with one entry per resample: the same operations in the same order as
    `CorruptionResult`'s properties, so the full data gives exactly their values)."""
    per: dict[str, list] = {}
    for (name, _), top1 in zip(grid, accuracies):
        per.setdefault(name, []).append(top1)
    means = [sum(values) / len(values) for values in per.values()]
    out = {"mean_corruption_top1": sum(means) / len(means), "mce": None, "relative_mce": None}
    if imagenet:
        errors = {name: {s: 1 - top1 for (n, s), top1 in zip(grid, accuracies) if n == name} for name in per}
        out["mce"] = mce.mean_over_all(mce.corruption_errors(errors, 1 - clean))
        out["relative_mce"] = mce.mean_over_all(mce.corruption_errors(errors, 1 - clean, relative=True))
    return out


def bootstrap(result: Any, hits: np.ndarray, *, confidence: float, resamples: int,
              seed: int) -> CorruptionBootstrap | None:
    """The intervals of `result` (a CorruptionResult) from its images' bits (images in data order); None
    when no image was classified. The bits must add up to the result's counts."""
    n = hits.shape[0]
    grid = [(p.corruption, p.severity) for p in result.points]
    if not n:
        return None
    counted = hits.sum(axis=0).tolist()
    if counted != [result.clean.correct_top1, *(p.correct_top1 for p in result.points)]:
        raise DataError("The per-image verdicts do not add up to the counts: edited or damaged parts.")
    imagenet = result.corruption_error is not None
    bits = hits.astype(np.float64)
    draws: dict[str, list[np.ndarray]] = {"mean_corruption_top1": [], "mce": [], "relative_mce": []}
    for weights in resample_weights(n, resamples, seed):
        top1 = (weights.astype(np.float64) @ bits) / n  # exact: integer sums below 2**53
        for key, value in statistics(top1[:, 0], list(top1[:, 1:].T), grid, imagenet).items():
            if value is not None:
                draws[key].append(value)
    method = bootstrap_method(resamples, seed) + " over images"
    values = {"mean_corruption_top1": result.mean_corruption_top1, "mce": result.mce,
              "relative_mce": result.relative_mce}
    iv = {k: None if values[k] is None or not draws[k] else
          percentile_interval(values[k], np.concatenate(draws[k]), confidence, method) for k in values}
    return CorruptionBootstrap(iv["mean_corruption_top1"], iv["mce"], iv["relative_mce"])


def concatenated(records: Sequence[ImageVerdicts], origins: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Slices' (or ranks') bits as one array in data order; positions seen twice are refused."""
    decoded = [r.decoded(o) for r, o in zip(records, origins)]
    return in_data_order([d[0] for d in decoded], [d[1] for d in decoded])


def in_data_order(positions: Sequence[np.ndarray], hits: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    where = np.concatenate(positions) if positions else np.zeros(0, np.int64)
    bits = np.concatenate(hits) if hits else np.zeros((0, 1), bool)
    order = np.argsort(where, kind="stable")
    where, bits = where[order], bits[order]
    if len(where) > 1 and (np.diff(where) == 0).any():
        raise DataError("The per-image verdicts name an image twice: the slices overlap.")
    return where, bits
