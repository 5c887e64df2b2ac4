"""What accuracy a log can show: an accuracy over N validation images is a multiple of 1/N, so N (or a divisor
of it) is the common denominator of the logged values. With N known, "frozen to the last digit" means the
same count of right images (not two floats within 1e-7 of each other, which float32 logs may miss), and 1/N
is the smallest accuracy change the logs can show.

Each value's simplest fraction (smallest denominator) within a tolerance of it is found by continued
fractions (the Stern-Brocot descent); N is the least common multiple of those denominators. Two tolerances:
float64 logs (HF Trainer, JSON lines, MLflow) hold k/N to ~1e-16, so 1e-12 finds any N up to 10^6; float32
logs (TensorBoard scalars, Keras, Lightning) hold it to 2^-24 relative (6e-8), so 2e-7, and N up to 1000:
fractions with denominators up to 1000 are at least 1/1000^2 = 1e-6 apart, more than the 4e-7 window, so
the simplest fraction in it is the one logged. A float that is no fraction (a mean of per-batch accuracies over unequal batches) pushes the
least common multiple past the cap: no N, and the 1e-7 comparison stays."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

# (half window, largest N, largest N from fewer than 3 distinct values): float64 logs, then float32 logs. A
# random float lies within 1e-12 of some k/q with q <= 10^4 with probability ~(3/pi^2) 10^8 2e-12 = 6e-5, and
# within 2e-7 of one with q <= 100 with ~(3/pi^2) 10^4 4e-7 = 1e-3; with 3 values or more the least common
# multiple must also stay under the cap, so a larger N is believed then.
TOLERANCES = ((1e-12, 10**6, 10**4), (2e-7, 1000, 100))
MIN_DISTINCT = 3


def simplest_between(lo: Fraction, hi: Fraction) -> Fraction:
    """The fraction with the smallest denominator in [lo, hi] (0 <= lo <= hi)."""
    whole = math.floor(lo)
    if whole == lo:
        return Fraction(whole)
    if whole + 1 <= hi:
        return Fraction(whole + 1)
    return whole + 1 / simplest_between(1 / (hi - whole), 1 / (lo - whole))


def denominator(values: np.ndarray) -> int | None:
    """N such that every finite value in [0, 1] is a multiple of 1/N (the smallest such N that the
    tolerances allow), or None: no value, a value outside [0, 1], or no N under the cap (a lower cap for
    fewer than 3 distinct values, e.g. a frozen accuracy)."""
    finite = np.unique(values[np.isfinite(values)])
    if not finite.size or finite[0] < 0 or finite[-1] > 1:
        return None
    for tol, cap, cap_few in TOLERANCES:
        cap = cap if finite.size >= MIN_DISTINCT else cap_few
        n = 1
        for value in finite.tolist():
            fraction = simplest_between(Fraction(max(value - tol, 0.0)), Fraction(min(value + tol, 1.0)))
            n = math.lcm(n, fraction.denominator)
            if n > cap:
                break
        else:
            return n
    return None


def count(value: float, n: int) -> int:
    """How many of the N images a logged accuracy stands for."""
    return int(round(value * n))
