"""The calibration suite against the libraries that define each number: torchmetrics (ECE/MCE/RMSCE and
the per-class binary ECE), netcal (equal-mass ECE), relplot (smooth ECE), scipy (the NLL-minimising
temperature), and a plain loop (AURC). The tally is fed real torch logits, as evaluation does."""
from __future__ import annotations

import numpy as np
import pytest
import relplot
import torch
from netcal.metrics import ECE as NetcalECE
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp
from torchmetrics.functional.classification import binary_calibration_error, multiclass_calibration_error

from nnprobe import calibration_suite as cs
from nnprobe.calibration_tally import CalibrationTally


def _logits(n=1500, k=8, seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) * scale
    logits[np.arange(n), labels] += 1.5
    return torch.tensor(logits, dtype=torch.float32), torch.tensor(labels)


def _per_image(logits, labels):
    p = logits.softmax(1)
    conf, pred = p.max(1)
    nll = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    brier = (p - torch.nn.functional.one_hot(labels, p.shape[1])).square().sum(1)
    return p, conf.double().numpy(), (pred == labels).numpy(), nll.double().numpy(), brier.double().numpy()


def _tallied(logits, labels, batches=3):
    tally = CalibrationTally(logits.shape[1], torch.device("cpu"))
    for part, target in zip(logits.chunk(batches), labels.chunk(batches)):
        tally.add(part, target)
    return tally.arrays()


@pytest.mark.parametrize("seed", [0, 1])
def test_binned_errors_equal_torchmetrics(seed):
    logits, labels = _logits(seed=seed)
    p, conf, hits, nll, brier = _per_image(logits, labels)
    result = cs.suite(conf, hits, nll, brier, resamples=50)
    for norm, value in (("l1", result.ece.value), ("max", result.mce), ("l2", result.rmsce)):
        ref = float(multiclass_calibration_error(p, labels, p.shape[1], n_bins=15, norm=norm))
        assert value == pytest.approx(ref, abs=1e-6), norm


def test_equal_mass_ece_equals_netcal():
    # over-confident and under-confident images mixed, so that the binning matters
    hot, cold = _logits(n=800, seed=2, scale=3.0), _logits(n=800, seed=9, scale=0.15)
    logits, labels = torch.cat([hot[0], cold[0]]), torch.cat([hot[1], cold[1]])
    p, conf, hits, *_ = _per_image(logits, labels)
    got = cs.equal_mass_ece(conf, hits.astype(float))
    assert got == pytest.approx(NetcalECE(bins=15, equal_intervals=False).measure(p.double().numpy(), labels.numpy()),
                                abs=1e-6)
    equal_width = cs.binned_errors(conf, hits.astype(float), cs.bin_index(conf, 15), 15)[0]
    assert abs(got - equal_width) > 1e-3  # a different number, not the equal-width one under another name


def test_classwise_ece_from_the_tally_equals_torchmetrics_per_class():
    logits, labels = _logits(seed=3)
    p = logits.softmax(1)
    classwise, _ = _tallied(logits, labels)
    ref = np.mean([float(binary_calibration_error(p[:, k].contiguous(), (labels == k).long(), n_bins=15))
                   for k in range(p.shape[1])])
    assert cs.classwise_ece(*classwise) == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("seed,power", [(0, 1.0), (1, 0.3), (2, 3.0)])
def test_smooth_ece_equals_relplot(seed, power):
    rng = np.random.default_rng(seed)
    conf = rng.random(3000) ** power
    hits = (rng.random(3000) < conf ** 1.5).astype(float)
    value, sigma = cs.smooth_ece(conf, hits)
    assert value == pytest.approx(relplot.smECE(conf, hits), abs=1e-3)
    assert sigma == pytest.approx(value, abs=1e-3)  # the fixed point: smECE at sigma* is sigma*


def test_aurc_equals_the_risk_coverage_loop_and_weights_equal_repeats():
    rng = np.random.default_rng(4)
    conf = np.round(rng.random(500), 2)  # ties, broken in data order
    hits = (rng.random(500) < conf).astype(float)
    order = sorted(range(500), key=lambda i: (-conf[i], i))
    errors, area = 0.0, 0.0
    for k, i in enumerate(order, start=1):
        errors += 1 - hits[i]
        area += errors / k
    assert cs.aurc(conf, hits) == pytest.approx(area / 500, abs=1e-12)
    weights = rng.integers(0, 4, 500)
    repeat = np.repeat(np.arange(500), weights)
    assert cs.aurc(conf, hits, weights) == pytest.approx(cs.aurc(conf[repeat], hits[repeat]), abs=1e-12)


def test_fitted_temperature_equals_a_continuous_minimiser():
    logits, labels = _logits(seed=5, scale=3.0)
    _, nll_sums = _tallied(logits, labels)
    z, y = logits.double().numpy(), labels.numpy()

    def nll(log_t):
        return np.mean(logsumexp(z / np.exp(log_t), axis=1) - z[np.arange(len(y)), y] / np.exp(log_t))

    ref = minimize_scalar(nll, bounds=(-3, 3), method="bounded", options={"xatol": 1e-10})
    got = cs.fitted_temperature(nll_sums, len(y))
    assert got.inside_grid
    assert got.value == pytest.approx(np.exp(ref.x), rel=1e-4)
    assert got.nll == pytest.approx(ref.fun, abs=1e-4)
    assert got.value > 1.2  # these logits are overconfident: the temperature softens them


def test_suite_intervals_bracket_the_values_and_are_seeded():
    logits, labels = _logits(seed=6)
    _, conf, hits, nll, brier = _per_image(logits, labels)
    first = cs.suite(conf, hits, nll, brier, resamples=200, seed=3)
    again = cs.suite(conf, hits, nll, brier, resamples=200, seed=3)
    assert first == again
    for name in ("ece", "nll", "brier", "smooth_ece", "aurc"):
        interval = getattr(first, name)
        assert interval.lo < interval.value < interval.hi, name
        assert "200 resamples, seed 3" in interval.method
    narrower = cs.suite(conf, hits, nll, brier, resamples=200, seed=3, confidence=0.5)
    assert narrower.nll.hi - narrower.nll.lo < first.nll.hi - first.nll.lo


def test_suite_of_no_images_is_all_nan():
    empty = cs.suite([], [], [], [], resamples=10)
    assert np.isnan(empty.ece.value) and np.isnan(empty.smooth_ece.lo) and np.isnan(empty.aurc.value)


@pytest.mark.parametrize("spread", [1.0, 30.0])
def test_tallied_nll_on_the_temperature_grid_equals_scipy(spread):
    """The tally's NLL sums at every grid temperature against scipy's float64 logsumexp of z / T; a spread
    of 30 puts most exp terms below float32's range at small T (where the tally's exp2 form matters)."""
    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(90, 12, generator=generator) * spread
    labels = torch.randint(0, 12, (90,), generator=generator)
    _, nll_sums = _tallied(logits, labels)
    z, y = logits.double().numpy(), labels.numpy()
    expected = [(logsumexp(z / t, axis=1) - z[np.arange(len(y)), y] / t).sum() for t in cs.TEMPERATURES]
    assert nll_sums == pytest.approx(np.array(expected), rel=1e-6)


@pytest.mark.parametrize("sigma, grid", [(0.3, 11), (0.05, 41), (1.0, 21), (0.01, 401)])
def test_mass_weights_equal_the_smoothing_of_unit_masses(sigma, grid):
    """What a unit mass at each grid point adds to the smoothed density's total, from the kernel's prefix
    sums, against `_smoothed` (the FFT with the mirrored ends) applied to every unit mass."""
    expected = cs._smoothed(sigma, np.eye(grid)).sum(axis=0)
    assert cs._mass_weights(sigma, grid) == pytest.approx(expected, rel=1e-12, abs=1e-12)
