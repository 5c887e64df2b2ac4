"""Issue 18 (1): accuracy quantised to multiples of 1/N_val. References: a brute-force search over
denominators for the simplest fraction; accuracies made as k/N (float64 and float32, as loggers store them)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from nnprobe.diagnosis import diagnose
from nnprobe.diagnosis.resolution import count, denominator, simplest_between


def brute_simplest(lo: Fraction, hi: Fraction) -> Fraction:
    q = 1
    while True:
        p = -(-lo.numerator * q // lo.denominator)  # ceil(lo * q)
        if Fraction(p, q) <= hi:
            return Fraction(p, q)
        q += 1


def test_simplest_between_equals_a_brute_force_search():
    rng = np.random.default_rng(0)
    for _ in range(300):
        lo = Fraction(float(rng.random()))
        hi = lo + Fraction(float(rng.choice([1e-2, 1e-3, 1e-4, 1e-5]) * rng.random()))
        assert simplest_between(lo, hi) == brute_simplest(lo, hi)
    assert simplest_between(Fraction(1, 3), Fraction(1, 3)) == Fraction(1, 3)
    assert simplest_between(Fraction(0), Fraction(1, 10)) == 0


@pytest.mark.parametrize("n", [59, 359, 1000, 2999])
def test_the_denominator_of_float32_and_float64_accuracies(n):
    """float64 logs: any N; float32 logs: N <= 1000 (beyond, the float32 window holds simpler fractions)."""
    rng = np.random.default_rng(n)
    k = rng.integers(0, n + 1, 12)
    k[:2] = [n // 3, n // 2]  # at least 3 distinct counts
    exact = k / n
    assert denominator(exact) in (n, *[d for d in range(1, n) if n % d == 0 and all((k * d) % n == 0)])
    single = denominator(exact.astype(np.float32).astype(np.float64))
    assert single == denominator(exact) if n <= 1000 else single != n
    assert all(count(v, n) == kk for v, kk in zip(exact.astype(np.float32).tolist(), k.tolist()))


def test_large_n_needs_float64_and_noise_gives_none():
    k = np.array([38000, 38100, 38155, 38160])
    assert denominator(k / 50000) == 10000  # 5 divides every k: the logs show steps of 1/10000 only
    assert denominator(np.array([38001, 38100, 38155]) / 50000) == 50000
    assert denominator((np.array([38001, 38100, 38155]) / 50000).astype(np.float32)) is None  # too fine for float32
    batches = np.array([(30 / 32 + 29 / 32 + 5 / 7) / 3, (31 / 32 + 28 / 32 + 6 / 7) / 3, (0.5 + 0.75 + 4 / 7) / 3])
    assert denominator(np.concatenate([batches, [0.123456789]])) is None  # a mean of unequal batches' accuracies
    assert denominator(np.array([38 / 59])) == 59  # one exact value, a small N: believed
    assert denominator(np.array([np.float32(499 / 1000)], dtype=np.float64)) is None  # one float32 value, N > 100
    assert denominator(np.array([0.2, 1.5, 0.3])) is None


def test_constant_prediction_counts_images_when_the_denominator_is_known(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    n = 59
    accs = [20 / n, 25 / n] + [25 / n] * 8
    writer = SummaryWriter(str(tmp_path))
    for epoch, acc in enumerate(accs):
        # float32 values a step apart (what a running float32 mean can leave): the same 37 images each time
        wobble = np.float32(acc) + np.float32((epoch % 3 - 1) * 1.5e-7)
        writer.add_scalar("val/acc", float(wobble), epoch)
        writer.add_scalar("val/loss", 0.9 + 1e-4 * (epoch % 2), epoch)
        writer.add_scalar("train/loss", 0.9 + 1e-4 * (epoch % 2), epoch)
    writer.close()
    (finding,) = [f for f in diagnose(tmp_path).findings if f.id == "constant-prediction"]
    assert (finding.evidence["n_val"], finding.evidence["right"], finding.evidence["evaluations"]) == (59, 25, 9)
    assert "(25/59: every logged accuracy is a multiple of 1/59)" in finding.message
