"""Intervals against independent references: scipy's exact binomial interval and normal quantile,
statsmodels' Clopper-Pearson and Newcombe intervals, a published paired example, and plain resampling."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from nnprobe import intervals as iv
from nnprobe.comparison.mcnemar import mcnemar_p
from nnprobe.errors import UsageError


def test_clopper_pearson_three_of_three_is_the_reference_figure():
    got = iv.clopper_pearson(3, 3)
    assert got.value == 1.0 and got.hi == 1.0 and got.method == "clopper-pearson"
    assert got.lo == pytest.approx(0.2924017738212866, abs=1e-12)


@pytest.mark.parametrize("confidence", [0.95, 0.99, 0.8])
def test_clopper_pearson_equals_scipy_and_statsmodels(confidence):
    rng = np.random.default_rng(7)
    n = np.concatenate([[1, 2, 5, 50_000, 50_000, 50_000], rng.integers(1, 60_000, 60)])
    k = np.concatenate([[0, 1, 5, 0, 38_064, 50_000], (rng.random(60) * (n[6:] + 1)).astype(int).clip(0, n[6:])])
    lo, hi = iv.clopper_pearson_bounds(k, n, confidence)
    for kk, nn, a, b in zip(k.tolist(), n.tolist(), lo, hi):
        ref = stats.binomtest(kk, nn).proportion_ci(confidence, method="exact")
        sm = proportion_confint(kk, nn, alpha=1 - confidence, method="beta")
        assert a == pytest.approx(ref.low, abs=1e-10) and b == pytest.approx(ref.high, abs=1e-10), (kk, nn)
        assert a == pytest.approx(np.nan_to_num(sm[0]), abs=1e-10) and b == pytest.approx(np.nan_to_num(sm[1], nan=1.0), abs=1e-10)


def test_no_images_gives_no_interval_and_bad_counts_are_refused():
    empty = iv.clopper_pearson(0, 0)
    assert math.isnan(empty.value) and math.isnan(empty.lo) and math.isnan(empty.hi)
    impossible = iv.clopper_pearson(4, 3)  # a damaged count: no interval, and no exception in a renderer
    assert math.isnan(impossible.lo) and math.isnan(impossible.hi)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, float("nan"), "x"])
def test_confidence_outside_zero_one_is_refused(bad):
    with pytest.raises(UsageError, match="--confidence"):
        iv.check_confidence(bad)


def test_normal_quantile_equals_scipy():
    for p in (1e-12, 1e-4, 0.005, 0.025, 0.1, 0.5, 0.9, 0.975, 0.995):
        assert iv._normal_quantile(p) == pytest.approx(stats.norm.ppf(p), abs=1e-9)


def test_wilson_equals_statsmodels():
    for k, n in ((0, 10), (3, 10), (10, 10), (761, 1000)):
        assert iv.wilson(k, n, 0.95) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-12)


def test_paired_difference_matches_the_published_example():
    # Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables", ch. 8: the paired table
    # [[59, 6], [16, 80]] gives -0.0621 (95% CI -0.1186 to -0.0046) by Newcombe's square-and-add method
    got = iv.paired_difference(both=59, lost=16, gained=6, neither=80)
    assert (round(got.value, 4), round(got.lo, 4), round(got.hi, 4)) == (-0.0621, -0.1186, -0.0046)


@pytest.mark.parametrize("table", [(20, 10, 20, 10), (6, 2, 3, 1), (40, 4, 10, 1)])
def test_paired_difference_without_correlation_is_newcombes_independent_interval(table):
    both, lost, gained, neither = table  # both * neither == lost * gained: phi = 0
    n = sum(table)
    got = iv.paired_difference(*table)
    ref = confint_proportions_2indep(both + gained, n, both + lost, n, method="newcomb", compare="diff")
    assert got.value == pytest.approx((gained - lost) / n)
    assert (got.lo, got.hi) == pytest.approx(ref, abs=1e-12)


def test_minimal_detectable_drop_is_where_mcnemar_first_reaches_alpha():
    for alpha in (0.05, 0.01, 0.001):
        b = iv.smallest_significant_flips(alpha)
        assert mcnemar_p(b, 0) <= alpha < mcnemar_p(b - 1, 0)
        assert iv.minimal_detectable_drop(10_000, alpha) == b / 10_000
    assert iv.smallest_significant_flips(0.05) == 5
    assert math.isnan(iv.minimal_detectable_drop(3, 0.05))  # 3 images: no drop can be significant


def test_bootstrap_is_seeded_and_matches_plain_resampling():
    rng = np.random.default_rng(3)
    x = rng.random(200)
    mean = {"mean": lambda w: float((w * x).sum() / w.sum())}
    first = iv.bootstrap(mean, len(x), resamples=200, seed=11)["mean"]
    assert first == iv.bootstrap(mean, len(x), resamples=200, seed=11)["mean"]
    assert first != iv.bootstrap(mean, len(x), resamples=200, seed=12)["mean"]
    assert first.method == "bootstrap-percentile (200 resamples, seed 11)"
    # the same resamples drawn by hand: the same generator, indices in rows of n, counted
    plain_rng = np.random.default_rng(11)
    draws = [x[plain_rng.integers(0, len(x), len(x))].mean() for _ in range(200)]
    assert (first.lo, first.hi) == pytest.approx(tuple(np.quantile(draws, [0.025, 0.975])), abs=1e-12)
    assert first.lo < x.mean() < first.hi


def test_bootstrap_resamples_are_checked():
    with pytest.raises(UsageError, match="resamples"):
        iv.check_resamples(5)


def test_beta_quantile_equals_scipy_across_shapes_and_tails():
    # the safeguarded Newton inversion against scipy's beta.ppf: tails, lopsided and huge shapes, shapes below 1
    rng = np.random.default_rng(11)
    a = np.concatenate([[1, 1, 60_000, 0.5, 2, 1, 38_064], rng.uniform(0.5, 80, 40), rng.integers(1, 60_000, 40)])
    b = np.concatenate([[1, 60_000, 1, 0.5, 2, 49_999, 11_937], rng.uniform(0.5, 80, 40), rng.integers(1, 60_000, 40)])
    q = np.concatenate([[1e-10, 0.5, 1 - 1e-10, 0.025, 0.975, 0.005, 0.995], rng.random(80)])
    got = iv.beta_ppf(q, a, b)
    ref = stats.beta.ppf(q, a, b)
    assert np.allclose(got, ref, rtol=1e-9, atol=1e-13), np.abs(got - ref).max()


def test_clopper_pearson_is_remembered_and_unchanged_by_it():
    first = iv.clopper_pearson(38_064, 50_000, 0.95)
    assert iv.clopper_pearson(38_064, 50_000, 0.95) is first
    ref = stats.binomtest(38_064, 50_000).proportion_ci(0.95, method="exact")
    assert (first.lo, first.hi) == pytest.approx((ref.low, ref.high), abs=1e-12)
