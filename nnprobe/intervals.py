"""Confidence intervals for the numbers nnprobe reports, so that every figure can be quoted with its
uncertainty: `Interval(value, lo, hi, method)`, JSON `{"value", "lo", "hi", "method"}`.

- Counts (top-1, top-5, a class's top-1): the exact Clopper-Pearson interval (Clopper & Pearson 1934),
  lo = Beta^-1(a/2; k, n-k+1), hi = Beta^-1(1-a/2; k+1, n-k), from a regularized incomplete beta
  computed here (continued fraction, Numerical Recipes 6.4) and inverted by bisection, so no scipy is needed
  at run time (tests hold it to scipy and statsmodels).
- Means over images (ECE, NLL, Brier, smooth ECE, AURC, mCE, robust accuracy): the percentile bootstrap
  (Efron 1979) over images, seeded, with the number of resamples stated in `method`.
- A paired difference of two accuracies on the same images (compare, --baseline): Newcombe's method 10
  (square-and-add of Wilson intervals with the phi correction for pairing; Newcombe 1998, Stat. Med. 17).
- The minimal detectable drop: the smallest top-1 drop an exact one-sided McNemar test at `alpha` can
  flag on n paired images at all (every discordant image going against the candidate).

Pure Python and numpy: no torch, no report layer.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nnprobe.errors import UsageError

CONFIDENCE = 0.95
RESAMPLES = 1000
SEED = 0
_BISECTIONS = 60  # halvings of [0, 1]: 2**-60 < 1e-18, below double rounding near the roots that matter


@dataclass(frozen=True)
class Interval:
    """A number and its two-sided interval at the run's confidence level; `method` names how it was built
    (NaN bounds, None in JSON, when there is nothing to bound)."""

    value: float
    lo: float
    hi: float
    method: str


def check_confidence(confidence: float) -> float:
    """The confidence level as a float strictly between 0 and 1 (`--confidence 0.99`)."""
    try:
        value = float(confidence)
    except (TypeError, ValueError):
        raise UsageError(f"--confidence must be a number between 0 and 1 (such as 0.95), got {confidence!r}.") from None
    if not 0.0 < value < 1.0:  # also refuses NaN
        raise UsageError(f"--confidence must be strictly between 0 and 1 (such as 0.95), got {confidence!r}.")
    return value


def check_resamples(resamples: int) -> int:
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or not 10 <= resamples <= 100_000:
        raise UsageError(f"The number of bootstrap resamples must be an integer in [10, 100000], got {resamples!r}.")
    return int(resamples)


def _betacf(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The continued fraction of the incomplete beta function (modified Lentz), element-wise; converges
    fast for x < (a+1)/(a+b+2), which the caller guarantees."""
    tiny, eps = 1e-300, 1e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
    h = d.copy()
    active = np.ones(x.shape, dtype=bool)
    for m in range(1, 100_000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / np.where(np.abs(d) < tiny, tiny, d)
            c = 1.0 + aa / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            step = d * c
            h = np.where(active, h * step, h)
        active &= np.abs(step - 1.0) > eps
        if not active.any():
            break
    return h


def betainc(a, b, x) -> np.ndarray:
    """The regularized incomplete beta function I_x(a, b) for a, b > 0 and x in [0, 1], element-wise."""
    a, b, x = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (a, b, x)))
    out = np.where(x >= 1.0, 1.0, 0.0)
    inner = (x > 0.0) & (x < 1.0)
    if not inner.any():
        return out
    a_, b_, x_ = a[inner], b[inner], x[inner]
    front = np.exp(_log_density(a_, b_, x_)) * x_ * (1.0 - x_)
    flip = x_ >= (a_ + 1.0) / (a_ + b_ + 2.0)
    direct = np.where(flip, b_, a_), np.where(flip, a_, b_), np.where(flip, 1.0 - x_, x_)
    fraction = front * _betacf(*direct) / direct[0]
    out[inner] = np.where(flip, 1.0 - fraction, fraction)
    return out


def _log_density(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """log of the Beta(a, b) density at x in (0, 1)."""
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    return (a - 1.0) * np.log(x) + (b - 1.0) * np.log1p(-x) + lgamma(a + b) - lgamma(a) - lgamma(b)


def beta_ppf(q, a, b) -> np.ndarray:
    """x with I_x(a, b) = q, element-wise (I is increasing in x): Newton's method on I, kept inside a
    bracket that each step narrows (a step that would leave it bisects instead), so it converges like
    bisection at worst and quadratically near the root: ~6-10 evaluations of I instead of 60 halvings."""
    q, a, b = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (q, a, b)))
    shape = q.shape
    q, a, b = (v.ravel() for v in (q, a, b))
    lo, hi = np.zeros(q.shape), np.ones(q.shape)
    x = np.clip(a / (a + b), 1e-300, 1.0 - 1e-16).astype(np.float64)  # the mean: within a few sd of any central quantile
    active = np.ones(q.shape, dtype=bool)
    for _ in range(_BISECTIONS + 40):
        ia, ib, xa, qa = a[active], b[active], x[active], q[active]
        f = betainc(ia, ib, xa) - qa
        below = f < 0
        lo[active] = np.where(below, xa, lo[active])
        hi[active] = np.where(below, hi[active], xa)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            step = f / np.exp(_log_density(ia, ib, xa))
        nxt = xa - step
        l, h = lo[active], hi[active]
        outside = ~np.isfinite(nxt) | (nxt <= l) | (nxt >= h)
        nxt = np.where(outside, 0.5 * (l + h), nxt)
        done = (f == 0) | (np.abs(nxt - xa) <= 4e-16 * np.maximum(xa, 1e-300)) | (h - l <= 2.0 ** -_BISECTIONS)
        x[active] = np.where(f == 0, xa, nxt)
        active[np.flatnonzero(active)[done]] = False
        if not active.any():
            break
    return x.reshape(shape)


def clopper_pearson_bounds(k, n, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """The exact two-sided Clopper-Pearson bounds for k successes of n, element-wise (NaN where n == 0 or k is
    not a count of n)."""
    k, n = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64))
    # a count outside [0, n] or a level outside (0, 1) (a damaged result) has no interval: NaN, never an
    # error while rendering; options are checked where the user gives them (check_confidence)
    alpha = 1.0 - confidence if isinstance(confidence, (int, float)) and 0 < confidence < 1 else float("nan")
    some = (n > 0) & (k >= 0) & (k <= n) & (alpha == alpha)
    lo, hi = np.full(k.shape, np.nan), np.full(k.shape, np.nan)
    low_side, high_side = some & (k > 0), some & (k < n)
    lo[some & (k == 0)], hi[some & (k == n)] = 0.0, 1.0
    if low_side.any():
        lo[low_side] = beta_ppf(alpha / 2, k[low_side], n[low_side] - k[low_side] + 1)
    if high_side.any():
        hi[high_side] = beta_ppf(1 - alpha / 2, k[high_side] + 1, n[high_side] - k[high_side])
    return lo, hi


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """k of n with its exact interval (NaN bounds when n == 0); remembered, since a report asks for the same
    top-1 interval from its JSON, its table and its gates."""
    return _clopper_pearson(k, n, confidence)


@functools.lru_cache(maxsize=4096)
def _clopper_pearson(k, n, confidence) -> Interval:
    lo, hi = clopper_pearson_bounds(k, n, confidence)
    return Interval(k / n if n else float("nan"), float(lo), float(hi), "clopper-pearson")


def bootstrap_method(resamples: int, seed: int) -> str:
    return f"bootstrap-percentile ({resamples} resamples, seed {seed})"


def resample_weights(n: int, resamples: int = RESAMPLES, seed: int = SEED, chunk: int = 64):
    """The bootstrap resamples of n images, `chunk` at a time: an int array (rows, n) of how many times each
    image is drawn in each resample. The same seed gives the same resamples, so statistics bootstrapped
    from it are paired."""
    rng = np.random.default_rng(seed)
    left = check_resamples(resamples)
    while left:
        rows = min(chunk, left)
        draws = rng.integers(0, n, (rows, n)) + n * np.arange(rows)[:, None]
        yield np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n)
        left -= rows


def percentile_interval(value: float, draws, confidence: float, method: str) -> Interval:
    """The percentile interval of the bootstrap draws around `value` (NaN draws, empty bins, are dropped)."""
    alpha = 1.0 - check_confidence(confidence)
    draws = np.asarray(draws, dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    if not math.isfinite(value) or not len(draws):
        return Interval(value, float("nan"), float("nan"), method)
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return Interval(value, float(lo), float(hi), method)


def bootstrap(statistics: dict[str, Callable[[np.ndarray], float]], n: int, *, confidence: float = CONFIDENCE,
              resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, Interval]:
    """Percentile bootstrap intervals of several statistics of the same n images, from shared resamples.

    Each statistic takes per-image multiplicity weights (all ones = the data as it is) and returns a float;
    weighted sums make a resample cost one bincount. n == 0 gives NaN everywhere."""
    method = bootstrap_method(resamples, seed)
    if n == 0:
        return {name: Interval(float("nan"), float("nan"), float("nan"), method) for name in statistics}
    values = {name: float(f(np.ones(n))) for name, f in statistics.items()}
    draws: dict[str, list[float]] = {name: [] for name in statistics}
    for chunk in resample_weights(n, resamples, seed):
        for weights in chunk:
            for name, f in statistics.items():
                draws[name].append(f(weights))
    return {name: percentile_interval(values[name], draws[name], confidence, method) for name in statistics}


def _normal_quantile(p: float) -> float:
    """The standard normal quantile (Acklam's rational approximation refined by one Halley step on erfc,
    accurate to ~1e-15)."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    if p < 0.02425 or p > 1 - 0.02425:
        q = math.sqrt(-2 * math.log(min(p, 1 - p)))
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        x = x if p < 0.5 else -x
    else:
        q = p - 0.5
        r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    e = 0.5 * math.erfc(-x / math.sqrt(2)) - p
    u = e * math.sqrt(2 * math.pi) * math.exp(x * x / 2)
    return x - u / (1 + x * u / 2)


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of k of n (Wilson 1927)."""
    z = _normal_quantile(1 - (1 - check_confidence(confidence)) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference(both: int, lost: int, gained: int, neither: int,
                      confidence: float = CONFIDENCE) -> Interval:
    """candidate - baseline accuracy on the same n images with its Newcombe (1998, method 10) interval.

    both: right in both runs; lost: right -> wrong; gained: wrong -> right; neither: wrong in both."""
    n = both + lost + gained + neither
    method = "newcombe-paired (method 10)"
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), method)
    p1, p2 = (both + lost) / n, (both + gained) / n
    l1, u1 = wilson(both + lost, n, confidence)
    l2, u2 = wilson(both + gained, n, confidence)
    margins = (both + lost) * (gained + neither) * (both + gained) * (lost + neither)
    # Newcombe's phi*: the numerator AD - BC less N/2 when positive (0 if that crosses zero), as published
    cross = both * neither - lost * gained
    cross = max(cross - n / 2, 0.0) if cross > 0 else cross
    phi = cross / math.sqrt(margins) if margins else 0.0
    delta = p2 - p1
    lower = delta - math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    upper = delta + math.sqrt(max(0.0, (u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2))
    return Interval(delta, max(-1.0, lower), min(1.0, upper), method)


def independent_difference(k1: int, n1: int, k2: int, n2: int, confidence: float = CONFIDENCE) -> Interval:
    """k2/n2 - k1/n1 for two independent sets of images, with Newcombe's hybrid score interval (1998a,
    method 10): used when the two runs cannot be paired image by image."""
    method = "newcombe-independent (method 10)"
    if not n1 or not n2:
        return Interval(float("nan"), float("nan"), float("nan"), method)
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1, confidence), wilson(k2, n2, confidence)
    delta = p2 - p1
    return Interval(delta, max(-1.0, delta - math.hypot(p2 - l2, u1 - p1)),
                    min(1.0, delta + math.hypot(u2 - p2, p1 - l1)), method)


def smallest_significant_flips(alpha: float) -> int:
    """The fewest right -> wrong flips (with no wrong -> right) that make the exact one-sided McNemar
    p-value 2**-b at most alpha."""
    if not 0.0 < alpha < 1.0:
        raise UsageError(f"alpha must be strictly between 0 and 1, got {alpha!r}.")
    return max(1, math.ceil(-math.log2(alpha) - 1e-12))


def minimal_detectable_drop(n: int, alpha: float) -> float:
    """The smallest top-1 drop (a fraction) that an exact one-sided McNemar test at `alpha` can call
    significant on n paired images: every discordant image against the candidate (NaN when n is too small)."""
    flips = smallest_significant_flips(alpha)
    return flips / n if n >= flips else float("nan")
