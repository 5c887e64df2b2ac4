"""The exact one-sided McNemar p-value against scipy.stats.binomtest on the discordant pairs (scipy is a
test-only dependency: nnprobe computes it in integer and log arithmetic)."""
from __future__ import annotations

import itertools
import random

import pytest
from scipy.stats import binomtest

from nnprobe.comparison import mcnemar
from nnprobe.comparison.mcnemar import mcnemar_p


def reference(b: int, c: int) -> float:
    return binomtest(b, b + c, 0.5, alternative="greater").pvalue if b + c else 1.0


SMALL = list(itertools.product(range(0, 26), range(0, 26)))
LARGE = [(5000, 4800), (4800, 5000), (5000, 5000), (10_000, 9_700), (19_000, 1000), (1000, 19_000),
         (12_000, 7_000), (0, 20_000), (20_000, 0), (10_001, 9_999)]
HUGE = [(15_000, 14_000), (14_000, 15_000), (100_000, 99_000), (99_000, 100_000), (60_000, 60_000),
        (30_000, 1_000), (1_000, 30_000), (25_000, 0), (0, 25_000), (50_300, 49_700), (12_000, 11_000)]


@pytest.mark.parametrize("b, c", SMALL)
def test_small_counts_match_scipy(b, c):
    assert mcnemar_p(b, c) == pytest.approx(reference(b, c), rel=1e-12, abs=0)


@pytest.mark.parametrize("b, c", LARGE)
def test_large_counts_exact_regime_match_scipy(b, c):
    assert b + c <= mcnemar.EXACT_LIMIT
    assert mcnemar_p(b, c) == pytest.approx(reference(b, c), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("b, c", HUGE)
def test_counts_beyond_the_exact_limit_match_scipy(b, c):
    """Past EXACT_LIMIT the tail is a log-space sum: still within 1e-8 of scipy (or both 0 / 1)."""
    assert b + c > mcnemar.EXACT_LIMIT
    assert mcnemar_p(b, c) == pytest.approx(reference(b, c), rel=1e-8, abs=1e-300)


def test_random_counts_match_scipy():
    rng = random.Random(9)
    for _ in range(300):
        b, c = rng.randrange(0, 3000), rng.randrange(0, 3000)
        assert mcnemar_p(b, c) == pytest.approx(reference(b, c), rel=1e-9, abs=1e-300), (b, c)


def test_the_exact_and_log_paths_agree_at_the_limit(monkeypatch):
    exact = [mcnemar_p(b, 2000 - b) for b in range(900, 1200, 7)]
    monkeypatch.setattr(mcnemar, "EXACT_LIMIT", 10)
    logged = [mcnemar_p(b, 2000 - b) for b in range(900, 1200, 7)]
    assert logged == pytest.approx(exact, rel=1e-9)


def test_edge_cases():
    assert mcnemar_p(0, 0) == 1.0  # no discordant pair: no evidence at all
    assert mcnemar_p(0, 7) == 1.0
    assert mcnemar_p(7, 0) == 0.5 ** 7
    assert mcnemar_p(1, 1) == 0.75
    with pytest.raises(ValueError):
        mcnemar_p(-1, 3)
