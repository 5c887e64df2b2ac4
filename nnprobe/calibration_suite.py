"""The calibration suite beyond ECE-15: equal-mass ECE, MCE, RMSCE, class-wise ECE, smooth ECE, AURC and
the temperature that minimises NLL, with bootstrap intervals where the samples allow.

Definitions, and the reference each is held to in the tests:
- equal-width ECE / MCE / RMSCE: Guo et al. 2017 bins (`nnprobe.calibration`), the l1 / max / l2 norms of
  |acc_b - conf_b| weighted by bin mass (torchmetrics `MulticlassCalibrationError(norm=...)`).
- equal-mass ECE: bin edges at the confidence quantiles (numpy's linear quantile), the outer edges 0 and 1,
  bins [lo, hi) with the last one closed (netcal `ECE(equal_intervals=False)`).
- class-wise ECE (Kull et al. 2019): the mean over the model's K classes of the equal-width ECE of p_k
  against 1[y = k] over all images (torchmetrics `BinaryCalibrationError` per class, averaged).
- smooth ECE (Blasiok & Nakkiran 2023): the residual f - y kernel-smoothed with a reflected Gaussian of
  width sigma, integrated against the smoothed density, at the sigma where it equals sigma (`relplot.smECE`).
- AURC (Geifman et al. 2019): the mean over k = 1..N of the error rate of the k most confident images.
- temperature: T minimising the mean NLL of softmax(z / T), from NLL sums on a log grid of T accumulated
  during the forward pass (`CalibrationTally`) and a quartic through the best five points.

Pure numpy; the per-batch tally that needs torch lives in `nnprobe.calibration_tally`.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from nnprobe.calibration import ECE_BINS, bin_index
from nnprobe.intervals import (CONFIDENCE, RESAMPLES, SEED, Interval, bootstrap_method, percentile_interval,
                               resample_weights)

SMOOTH_GRID = 16001  # at most this many grid points: confidences are split onto them, smoothed, integrated
TEMPERATURES = np.exp(np.linspace(math.log(0.05), math.log(20.0), 121))  # ratio 1.051 between neighbours


@dataclass(frozen=True)
class Temperature:
    """The fitted temperature, the mean NLL there, and whether it lies inside the searched grid."""

    value: float
    nll: float
    inside_grid: bool


@dataclass(frozen=True)
class CalibrationSuite:
    """Every calibration number of one run; intervals where the images are independent samples."""

    confidence_level: float
    ece: Interval  # equal-width, ECE_BINS bins
    nll: Interval
    brier: Interval
    smooth_ece: Interval
    aurc: Interval
    equal_mass_ece: float
    mce: float
    rmsce: float
    classwise_ece: float | None  # None when the per-class tally was not kept (merged slices)
    temperature: Temperature | None
    smooth_ece_bandwidth: float
    bins: int = ECE_BINS
    resamples: int = RESAMPLES  # of the bootstraps, drawn from `seed` (merge resamples the whole with them)
    seed: int = SEED
    missing: str | None = None  # after a merge: the numbers it could not give, and why (None: none missing)


def binned_errors(conf: np.ndarray, hits: np.ndarray, index: np.ndarray, bins: int,
                  weights: np.ndarray | None = None) -> tuple[float, float, float]:
    """(ECE, MCE, RMSCE) of the binned confidences: the l1, max and l2 norms of |acc_b - conf_b| weighted
    by each bin's share of the images (MCE over the non-empty bins)."""
    w = np.ones(len(conf)) if weights is None else weights
    count = np.bincount(index, weights=w, minlength=bins)
    gap = np.abs(np.bincount(index, weights=w * hits, minlength=bins) - np.bincount(index, weights=w * conf,
                                                                                      minlength=bins))
    total = count.sum()
    if not total:
        return (float("nan"),) * 3
    some = count > 0
    per_bin = gap[some] / count[some]
    return float(gap.sum() / total), float(per_bin.max()), float(math.sqrt((per_bin ** 2 * count[some]).sum() / total))


def equal_mass_ece(conf: np.ndarray, hits: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE over bins that hold equal numbers of images (edges at the confidence quantiles)."""
    if not len(conf):
        return float("nan")
    edges = np.quantile(conf, np.linspace(0.0, 1.0, bins + 1))
    edges[0], edges[-1] = 0.0, 1.0
    index = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    return binned_errors(conf, hits, index, bins)[0]


def classwise_ece(counts: np.ndarray, prob_sums: np.ndarray, hit_sums: np.ndarray) -> float:
    """Class-wise ECE from the (K, bins) tallies: per class sum_b |hits_b - probs_b| / N, mean over classes."""
    total = counts.sum(axis=1)
    if not len(total) or not total[0]:
        return float("nan")
    return float((np.abs(hit_sums - prob_sums).sum(axis=1) / total).mean())


def _split_to_grid(conf: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Each confidence as two (grid point, weight) pairs, linear between its neighbours."""
    pos = conf * (grid - 1)
    left = np.clip(np.floor(pos).astype(np.int64), 0, grid - 2)
    return left, pos - left


def _grid_histogram(left: np.ndarray, frac: np.ndarray, values: np.ndarray, grid: int) -> np.ndarray:
    return (np.bincount(left, weights=(1 - frac) * values, minlength=grid)
            + np.bincount(left + 1, weights=frac * values, minlength=grid))


@functools.lru_cache(maxsize=8)
def _kernel_spectrum(sigma: float, grid: int, margin: int, size: int) -> np.ndarray:
    offsets = np.arange(-margin, margin + 1) / (grid - 1)
    return np.fft.rfft(np.exp(-offsets ** 2 / (2 * sigma ** 2)), size)


def _margin(sigma: float, grid: int) -> int:
    """Grid points the kernel reaches on each side: it is cut at 6 sigma (what it leaves out is below 1e-8
    of its mass), so only that much is mirrored at each end."""
    return int(min(grid - 1, math.ceil(6 * sigma * (grid - 1))))


def _smoothed(sigma: float, hists: np.ndarray) -> np.ndarray:
    """Each column of `hists` (values on the grid) convolved with a Gaussian of width sigma reflected at 0
    and 1 (mass that would leave [0, 1] folds back in), on the same grid; by FFT."""
    grid = hists.shape[0]
    margin = _margin(sigma, grid)
    extended = np.concatenate([hists[margin:0:-1], hists, hists[-2:-2 - margin:-1]])  # mirrored about 0 and 1
    size = 1 << (len(extended) + 2 * margin - 1).bit_length()  # a power of two >= the full length: fast FFTs
    spectrum = _kernel_spectrum(sigma, grid, margin, size)
    full = np.fft.irfft(np.fft.rfft(extended, size, axis=0) * spectrum[:, None], size, axis=0)
    return full[2 * margin:2 * margin + grid]  # grid point j sits at margin + j, the kernel centre at margin


@functools.lru_cache(maxsize=64)
def _mass_weights(sigma: float, grid: int) -> np.ndarray:
    """For each grid point s, sum_t (K e_s)(t): what a unit mass at s adds to the smoothed density summed over
    the grid (`_smoothed`'s kernel around s, plus its mirror images at -s and 2 (grid - 1) - s where those
    fold back in), from prefix sums of the kernel. The smoothed density's total is then a dot product with
    the density: the smoothing is linear, and only its total is used."""
    margin = _margin(sigma, grid)
    kernel = np.exp(-(np.arange(-margin, margin + 1) / (grid - 1)) ** 2 / (2 * sigma ** 2))
    prefix = np.concatenate([[0.0], np.cumsum(kernel)])

    def reaching_grid(at: np.ndarray) -> np.ndarray:  # sum over t = 0..grid-1 of the kernel centred at `at`
        lo, hi = np.maximum(-margin, -at), np.minimum(margin, grid - 1 - at)
        return np.where(lo <= hi, prefix[np.clip(hi, lo - 1, None) + margin + 1] - prefix[lo + margin], 0.0)

    s = np.arange(grid)
    weights = reaching_grid(s)
    left = (s >= 1) & (s <= margin)  # mirrored about 0: hists[margin:0:-1] in `_smoothed`
    weights[left] += reaching_grid(-s[left])
    right = (s >= grid - 1 - margin) & (s <= grid - 2)  # mirrored about 1: hists[-2:-2 - margin:-1]
    weights[right] += reaching_grid(2 * (grid - 1) - s[right])
    return weights


def _mass_totals(left: np.ndarray, frac: np.ndarray, weights: np.ndarray, sigma: float, grid: int) -> np.ndarray:
    """sum_t (K m)(t) of the density m that puts weights[r, i] on confidence i (split onto the grid at
    left/frac), for each row r of `weights`."""
    per_image = _mass_weights(sigma, grid)
    per_image = (1 - frac) * per_image[left] + frac * per_image[left + 1]
    return (weights * per_image).sum(axis=-1)


def _smooth_at(sigma: float, residual_hists: np.ndarray, mass_totals: np.ndarray) -> np.ndarray:
    """smooth ECE at bandwidth sigma for each column: sum_t |K r|(t) / sum_t (K m)(t) over the grid, i.e.
    |the smoothed residual| integrated against the smoothed density (its total from `_mass_totals`)."""
    return np.abs(_smoothed(sigma, residual_hists)).sum(axis=0) / mass_totals


def _grid_size(sigma: float, per_sigma: int, least: int) -> int:
    """Grid points for smoothing at bandwidth sigma: `per_sigma` points per sigma, at least `least`, at most
    SMOOTH_GRID."""
    return int(np.clip(round(per_sigma / sigma), least, SMOOTH_GRID)) if sigma > 0 else SMOOTH_GRID


def smooth_ece_at(conf: np.ndarray, hits: np.ndarray, sigma: float) -> float:
    """smooth ECE at a fixed bandwidth sigma (the confidences split onto a grid of >= 80 points per sigma)."""
    grid = _grid_size(sigma, 80, 1001)
    left, frac = _split_to_grid(conf, grid)
    residual = _grid_histogram(left, frac, conf - hits, grid)
    return float(_smooth_at(sigma, residual[:, None], _mass_totals(left, frac, np.ones(len(conf)), sigma, grid))[0])


def smooth_ece(conf: np.ndarray, hits: np.ndarray, *, tolerance: float = 1e-5) -> tuple[float, float]:
    """(smooth ECE, its bandwidth sigma*): the fixed point sigma = smECE_sigma, by bisection on [0, 1]."""
    if not len(conf):
        return float("nan"), float("nan")
    lo, hi = 0.0, 1.0  # smECE_sigma - sigma goes from >= 0 near 0 to < 0 at 1 (smECE <= 1)
    if smooth_ece_at(conf, hits, hi) >= hi:
        return smooth_ece_at(conf, hits, hi), hi
    while hi - lo > tolerance:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if smooth_ece_at(conf, hits, mid) > mid else (lo, mid)
    sigma = max(hi, tolerance)
    return smooth_ece_at(conf, hits, sigma), sigma


def confidence_order(conf: np.ndarray) -> np.ndarray:
    """Most confident first; ties in data order."""
    return np.lexsort((np.arange(len(conf)), -conf))


def aurc_sorted(errors: np.ndarray, weights: np.ndarray, harmonic: np.ndarray) -> float:
    """AURC of images (already most confident first) drawn `weights` times each: the copies of an image are
    consecutive in the ranking, so their risks sum in closed form with the harmonic numbers `harmonic`
    (H_0..H_total)."""
    w = weights.astype(np.int64)
    total = int(w.sum())
    if not total:
        return float("nan")
    after = np.cumsum(w)
    before_w = after - w
    before_e = np.cumsum(w * errors) - w * errors
    inverse_sum = harmonic[after] - harmonic[before_w]  # sum_{j=1..w} 1 / (W0 + j)
    risk = before_e * inverse_sum + errors * (w - before_w * inverse_sum)  # sum_j (E0 + j e) / (W0 + j)
    return float(risk.sum() / total)


def harmonic_numbers(n: int) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])


def aurc(conf: np.ndarray, hits: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The area under the risk-coverage curve: mean over k of the error rate of the k most confident images
    (ties in confidence in data order); `weights` counts each image that many times (a bootstrap resample)."""
    order = confidence_order(conf)
    w = np.ones(len(conf), np.int64) if weights is None else np.asarray(weights)[order]
    return aurc_sorted(1.0 - hits[order], w, harmonic_numbers(int(w.sum())))


def fitted_temperature(nll_sums: np.ndarray, count: int, temperatures: np.ndarray = TEMPERATURES) -> Temperature | None:
    """T at the minimum of the mean NLL, from its values on the log grid: the minimum of the quartic through
    the lowest point and two neighbours on each side (in log T; within ~1e-5 of a continuous minimiser);
    `inside_grid` False when the minimum is at an end of the grid (then T is that end)."""
    if not count:
        return None
    mean = np.asarray(nll_sums, dtype=np.float64) / count
    best = int(np.argmin(mean))
    if best in (0, len(mean) - 1):
        return Temperature(float(temperatures[best]), float(mean[best]), False)
    u = np.log(temperatures)
    window = slice(max(0, best - 2), min(len(mean), best + 3))
    shift = u[window] - u[best]
    poly = np.polyfit(shift, mean[window], len(shift) - 1)
    roots = np.roots(np.polyder(poly))
    roots = roots[(np.abs(roots.imag) < 1e-12) & (np.polyval(np.polyder(poly, 2), roots.real) > 0)].real
    roots = roots[np.abs(roots) <= np.abs(shift).max()]
    vertex = float(roots[np.argmin(np.polyval(poly, roots))]) if len(roots) else 0.0
    return Temperature(float(math.exp(u[best] + vertex)), float(np.polyval(poly, vertex)), True)


def _offset_bincount(index: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """bincount of the same `index` under each row of `weights`, one row of `size` per weights row."""
    rows = weights.shape[0]
    flat = (index[None, :] + size * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, weights=weights.ravel(), minlength=rows * size).reshape(rows, size)


def _bootstrapped(conf, hits, nll, brier, index, bins, sigma, *, resamples, seed) -> dict[str, np.ndarray]:
    """ECE, NLL, Brier, AURC and smooth ECE (at the full data's bandwidth) of every resample, the resamples
    processed a chunk at a time (one offset bincount per statistic per chunk)."""
    n = len(conf)
    order, harmonic = confidence_order(conf), harmonic_numbers(n)
    errors = 1.0 - hits[order]
    # the resamples are smoothed on a grid of ~40 points per bandwidth (at most 4001): a finer grid
    # changes their smooth ECE far less than the interval is wide, and costs 10x more
    grid = min(_grid_size(sigma, 40, 401), 4001) if math.isfinite(sigma) else 4001
    left, frac = _split_to_grid(conf, grid)
    draws: dict[str, list[np.ndarray]] = {k: [] for k in ("ece", "nll", "brier", "aurc", "smooth_ece")}
    for counts in resample_weights(n, resamples, seed):
        w = counts.astype(np.float64)
        gap = np.abs(_offset_bincount(index, w * hits, bins) - _offset_bincount(index, w * conf, bins))
        draws["ece"].append(gap.sum(axis=1) / n)
        draws["nll"].append((w * nll).sum(axis=1) / n)  # (not w @ nll: BLAS threads crawl on a busy machine)
        draws["brier"].append((w * brier).sum(axis=1) / n)
        draws["aurc"].append(_aurc_rows(errors, counts[:, order], harmonic))
        if math.isfinite(sigma):
            hist_r = (_offset_bincount(left, w * (1 - frac) * (conf - hits), grid)
                      + _offset_bincount(left + 1, w * frac * (conf - hits), grid))
            draws["smooth_ece"].append(_smooth_at(sigma, hist_r.T, _mass_totals(left, frac, w, sigma, grid)))
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in draws.items()}


def _aurc_rows(errors: np.ndarray, counts: np.ndarray, harmonic: np.ndarray) -> np.ndarray:
    """aurc_sorted for each row of counts (every row sums to n)."""
    after = np.cumsum(counts, axis=1)
    before_w = after - counts
    before_e = np.cumsum(counts * errors, axis=1) - counts * errors
    inverse_sum = harmonic[after] - harmonic[before_w]
    risk = before_e * inverse_sum + errors * (counts - before_w * inverse_sum)
    return risk.sum(axis=1) / counts.shape[1]


def suite(confidence_values, correct, nll, brier, *, classwise: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
          temperature_sums: np.ndarray | None = None, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
          seed: int = SEED, bins: int = ECE_BINS) -> CalibrationSuite:
    """The whole suite from each image's top-1 confidence, correctness, NLL and Brier score (and, from the
    forward pass, the class-wise bin tallies and the NLL sums on the temperature grid)."""
    conf = np.asarray(confidence_values, dtype=np.float64)
    hits = np.asarray(correct, dtype=bool).astype(np.float64)
    nll, brier = np.asarray(nll, dtype=np.float64), np.asarray(brier, dtype=np.float64)
    index, n = bin_index(conf, bins), len(conf)
    ece, mce, rmsce = binned_errors(conf, hits, index, bins)
    smooth, sigma = smooth_ece(conf, hits)
    values = {"ece": ece, "nll": float(nll.mean()) if n else float("nan"),
              "brier": float(brier.mean()) if n else float("nan"), "aurc": aurc(conf, hits) if n else float("nan"),
              "smooth_ece": smooth}
    draws = _bootstrapped(conf, hits, nll, brier, index, bins, sigma, resamples=resamples, seed=seed) if n else {}
    method = bootstrap_method(resamples, seed)
    iv = {k: percentile_interval(values[k], draws.get(k, ()), confidence,
                                 method + (" at the full data's bandwidth" if k == "smooth_ece" else ""))
          for k in values}
    return CalibrationSuite(
        confidence_level=confidence, ece=iv["ece"], nll=iv["nll"], brier=iv["brier"], smooth_ece=iv["smooth_ece"],
        aurc=iv["aurc"], equal_mass_ece=equal_mass_ece(conf, hits, bins), mce=mce, rmsce=rmsce,
        classwise_ece=classwise_ece(*classwise) if classwise is not None else None,
        temperature=fitted_temperature(temperature_sums, n) if temperature_sums is not None else None,
        smooth_ece_bandwidth=sigma, bins=bins, resamples=resamples, seed=seed)
