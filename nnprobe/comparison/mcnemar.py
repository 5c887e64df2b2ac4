"""The exact one-sided McNemar test on the discordant pairs of two paired classifiers.

Of the images both runs saw, b went right -> wrong and c wrong -> right. Under "the candidate is no worse
than the baseline" each discordant image is equally likely to go either way, so b ~ Binomial(b + c, 1/2);
p = P(X >= b) is the p-value of "the candidate is worse". Computed here in exact integer arithmetic (then
one correctly rounded division) up to EXACT_LIMIT discordant pairs, and by a log-space sum of the binomial
terms beyond, so no scipy is needed at run time.
"""
from __future__ import annotations

import math
from fractions import Fraction

EXACT_LIMIT = 20_000  # discordant pairs summed as exact integers (~0.1 s at the limit)


def mcnemar_p(b: int, c: int) -> float:
    """P(X >= b) for X ~ Binomial(b + c, 1/2); 1.0 when there is no discordant pair."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0 or b == 0:
        return 1.0
    if n <= EXACT_LIMIT:
        return float(Fraction(_upper_tail_count(n, b), 1 << n))
    return _log_space_tail(n, b)


def _tail_sum(n: int, lo: int, hi: int) -> int:
    """sum of C(n, k) for k in [lo, hi], exactly: each term from the last by C(n, k+1) = C(n, k)(n-k)/(k+1)."""
    if lo > hi:
        return 0
    term = math.comb(n, lo)
    total = term
    for k in range(lo, hi):
        term = term * (n - k) // (k + 1)
        total += term
    return total


def _upper_tail_count(n: int, b: int) -> int:
    """sum_{k >= b} C(n, k), summing whichever side has fewer terms (the total is 2**n)."""
    if n - b + 1 <= b:
        return _tail_sum(n, b, n)
    return (1 << n) - _tail_sum(n, 0, b - 1)


def _log_term(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2)


def _log_sum(n: int, ks: range) -> float:
    """log of sum_{k in ks} C(n, k) / 2**n, the terms taken from the end nearest the mode, stopping once
    they fall below 1e-300 of the largest (they only shrink from there)."""
    logs: list[float] = []
    peak = -math.inf
    for k in ks:
        value = _log_term(n, k)
        peak = max(peak, value)
        if value < peak - 700:
            break
        logs.append(value)
    if not logs:
        return -math.inf
    return peak + math.log(math.fsum(math.exp(v - peak) for v in logs))


def _log_space_tail(n: int, b: int) -> float:
    """P(X >= b) for large n; the upper tail summed from b upwards when b is past the mode, else 1 minus
    the lower tail summed from b - 1 downwards (both walk away from the mode, so the break is safe)."""
    if 2 * b >= n:
        return min(1.0, math.exp(_log_sum(n, range(b, n + 1))))
    return max(0.0, 1.0 - math.exp(_log_sum(n, range(b - 1, -1, -1))))
