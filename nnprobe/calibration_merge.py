"""The calibration suite of `--shard K/N` slices merged into the whole's, and what is exact about it.

- From the slices' sums, always: equal-width ECE, MCE and RMSCE from the summed reliability bins (`calibration`),
  NLL and Brier from the image-weighted means, class-wise ECE from the summed (class, bin) tallies and the
  fitted temperature from the summed NLL on the temperature grid (`CalibrationSums`, which a slice's JSON
  carries for this). Equal to one process up to float rounding (sums in another order).
- From every image's confidence, only when merge reads the slices' per-sample rows (`--save-predictions`):
  equal-mass ECE, smooth ECE and its bandwidth, AURC and every bootstrap interval. Then the whole suite is
  computed as one process computes it, on the same images in the same order, with the slices' resamples
  and seed.
- Otherwise those are NaN (null in JSON) and `missing` names them and says why, in one line.

Pure numpy; no torch.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnprobe.calibration_suite import TEMPERATURES, CalibrationSuite, classwise_ece, fitted_temperature, suite
from nnprobe.errors import DataError
from nnprobe.intervals import RESAMPLES, SEED, Interval

NEEDS_ROWS = "equal-mass ECE, smooth ECE, AURC and the calibration intervals"


@dataclass(frozen=True)
class CalibrationSums:
    """A slice's calibration tallies that add up over slices: per non-empty (class, bin) cell (flat index
    class * bins + bin) the images in it, their summed p_k and how many are labelled k (class-wise ECE), and
    the summed NLL at each temperature of `calibration_suite.TEMPERATURES` (the fitted temperature)."""

    classes: int
    bins: int
    cells: tuple[int, ...]
    counts: tuple[float, ...]
    prob_sums: tuple[float, ...]
    hit_sums: tuple[float, ...]
    nll_sums: tuple[float, ...]

    @staticmethod
    def of(classwise: tuple[np.ndarray, np.ndarray, np.ndarray], nll_sums: np.ndarray) -> "CalibrationSums":
        counts, probs, hits = (np.asarray(a, dtype=np.float64) for a in classwise)
        cells = np.flatnonzero(counts.ravel())
        return CalibrationSums(int(counts.shape[0]), int(counts.shape[1]), tuple(cells.tolist()),
                               *(tuple(a.ravel()[cells].tolist()) for a in (counts, probs, hits)),
                               tuple(float(v) for v in nll_sums))


def added(records: Sequence[Mapping[str, Any]]) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """The slices' CalibrationSums (JSON dicts) added up: the (classes, bins) tallies and the NLL sums."""
    classes, bins = records[0]["classes"], records[0]["bins"]
    tallies = np.zeros((3, classes * bins))
    nll = np.zeros(len(TEMPERATURES))
    for record in records:
        cells = np.asarray(record["cells"], dtype=np.int64)
        if (record["classes"], record["bins"]) != (classes, bins) or len(record["nll_sums"]) != len(nll) or \
                (cells.size and (cells.min() < 0 or cells.max() >= classes * bins)):
            raise DataError("The slices' calibration tallies differ in shape: edited, or not slices of one run.")
        for row, key in enumerate(("counts", "prob_sums", "hit_sums")):
            np.add.at(tallies[row], cells, np.asarray(record[key], dtype=np.float64))
        nll += np.asarray(record["nll_sums"], dtype=np.float64)
    counts, probs, hits = (t.reshape(classes, bins) for t in tallies)
    return (counts, probs, hits), nll


def merged_suite(parts: Sequence[Mapping[str, Any]], calibration: Any, rows: Sequence[Mapping[str, Any]] | None,
                 confidence: float) -> CalibrationSuite | None:
    """The whole's suite from its slices' JSON bodies, their merged `calibration` and (when merge read them)
    their per-sample rows in data order; None when a slice has no suite (written before it existed)."""
    suites = [p.get("calibration_suite") for p in parts]
    if any(not isinstance(s, Mapping) for s in suites):
        return None
    resamples, seed = suites[0].get("resamples", RESAMPLES), suites[0].get("seed", SEED)
    sums = [p.get("calibration_sums") for p in parts]
    classwise, nll_sums = added(sums) if all(isinstance(s, Mapping) for s in sums) else (None, None)
    missing = [] if classwise is not None else [
        "class-wise ECE and the fitted temperature need the slices' tallies (an older nnprobe wrote them)"]
    if rows is not None and all(r.get("brier") is not None for r in rows):
        whole = suite(*_columns(rows), classwise=classwise, temperature_sums=nll_sums, confidence=confidence,
                      resamples=resamples, seed=seed)
        return _with_missing(whole, missing)
    missing.insert(0, f"{NEEDS_ROWS} need each image's " + (
        "confidence (merge with --save-predictions)" if rows is None else
        "Brier score, which the slices' per-sample files lack (an older nnprobe wrote them)"))
    return _from_sums(calibration, classwise, nll_sums, confidence, resamples, seed, missing)


def _columns(rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, ...]:
    """Each image's confidence, correctness, NLL and Brier score from the rows, each checked to be a number
    in its range (the rows are a file: a damaged one is one sentence)."""
    try:
        conf, loss, brier = (np.array([r[k] for r in rows], dtype=np.float64) for k in ("confidence", "loss", "brier"))
        right = np.array([bool(r["correct"]) for r in rows])
    except (KeyError, TypeError, ValueError):
        conf = None
    if conf is None or not (np.all((conf >= 0) & (conf <= 1)) and np.all(loss >= 0) and
                            np.all((brier >= 0) & (brier <= 2))):  # NaN fails every comparison
        raise DataError("The slices' per-sample rows hold a confidence, loss or Brier score that is not a number "
                        "in its range: edited or damaged.")
    return conf, right, loss, brier


def _with_missing(whole: CalibrationSuite, missing: list[str]) -> CalibrationSuite:
    import dataclasses

    return dataclasses.replace(whole, missing=_sentence(missing)) if missing else whole


def _sentence(missing: list[str]) -> str | None:
    return "not after this merge: " + "; ".join(missing) if missing else None


def _from_sums(calibration: Any, classwise, nll_sums, confidence: float, resamples: int, seed: int,
               missing: list[str]) -> CalibrationSuite:
    """The suite's numbers that sums give; the others NaN (their intervals too)."""
    bins = calibration.bins
    count = np.array([b.count for b in bins], dtype=np.float64)
    total = count.sum()
    some = count > 0
    gap = np.zeros(len(bins))
    gap[some] = np.abs([b.accuracy * b.count - b.confidence * b.count for b in bins if b.count])
    per_bin = gap[some] / count[some]
    ece, mce = (float(gap.sum() / total), float(per_bin.max())) if total else (math.nan, math.nan)
    rmsce = float(math.sqrt((per_bin ** 2 * count[some]).sum() / total)) if total else math.nan
    nan = math.nan
    method = "none: " + NEEDS_ROWS.rsplit(" and ", 1)[1] + " need every image"

    def bare(value: float) -> Interval:
        return Interval(value, nan, nan, method)

    return CalibrationSuite(
        confidence_level=confidence, ece=bare(ece), nll=bare(calibration.nll), brier=bare(calibration.brier),
        smooth_ece=bare(nan), aurc=bare(nan), equal_mass_ece=nan, mce=mce, rmsce=rmsce,
        classwise_ece=classwise_ece(*classwise) if classwise is not None else None,
        temperature=fitted_temperature(nll_sums, int(total)) if nll_sums is not None else None,
        smooth_ece_bandwidth=nan, bins=len(bins), resamples=resamples, seed=seed, missing=_sentence(missing))
