"""FAB's projection solves h(λ) = need per row (h(λ) = Σ_j min(rate_j·λ, weights_j), the box-constrained
step onto a hyperplane) by Newton steps from below instead of sorting the knots. Checked against a plain
Python bisection on h (small rows) and against the sort it replaced (photo-sized rows), including rows the
Newton steps do not settle within NEWTON_STEPS (the sort takes those) and rows out of reach."""
from __future__ import annotations

import pytest
import torch

from nnprobe.attacks import fab


def rows(n: int, size: int, seed: int, saturating: float = 0.0):
    """Random L∞ projection problems as project_linf builds them: knots are the pixels' room, weights
    |w|·room, rates |w|; a `saturating` share of pixels has almost no room (knots near 0)."""
    g = torch.Generator().manual_seed(seed)
    room = torch.rand(n, size, generator=g)
    room[torch.rand(n, size, generator=g) < saturating] *= 1e-3
    rate = torch.randn(n, size, generator=g).abs()
    rate[:, : size // 10] = 0  # zero weights: no slope, no saturation
    weights = rate * room
    total = weights.sum(1)
    need = total * torch.tensor([0.001, 0.05, 0.5, 0.99, 1.5]).repeat(n // 5 + 1)[:n]  # the last: out of reach
    return room, weights, rate, need


def bisection(knots, weights, rate, need) -> float:
    """h's root by plain float64 bisection, one row at a time."""
    def h(lam):
        return sum(min(r * lam, w) if r > 0 else 0.0 for r, w in zip(rate, weights))
    lo, hi = 0.0, max(knots) + 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if h(mid) < need else (lo, mid)
    return (lo + hi) / 2


def test_newton_level_equals_a_plain_bisection_on_small_rows():
    knots, weights, rate, need = rows(20, 40, seed=3, saturating=0.3)
    lam, reachable = fab._breakpoint_level(knots, weights, rate, need)
    assert reachable.tolist() == (weights.sum(1) >= need).tolist() and 0 < int(reachable.sum()) < 20
    for i in reachable.nonzero().flatten().tolist():
        expected = bisection(knots[i].double().tolist(), weights[i].double().tolist(), rate[i].double().tolist(),
                             float(need[i]))
        assert abs(float(lam[i]) - expected) <= 1e-5 * max(expected, 1e-6), i


@pytest.mark.parametrize("saturating", [0.0, 0.2, 0.9])
def test_newton_level_equals_the_sort_on_photo_sized_rows(saturating):
    knots, weights, rate, need = rows(10, 3 * 224 * 224, seed=5, saturating=saturating)
    lam, reachable = fab._breakpoint_level(knots, weights, rate, need)
    lam_sorted, reachable_sorted = fab._sorted_level(knots, weights, rate, need)
    assert torch.equal(reachable, reachable_sorted) and int((~reachable).sum()) == 2
    assert torch.allclose(lam[reachable], lam_sorted[reachable], rtol=1e-5, atol=0)


def test_rows_the_newton_steps_do_not_settle_go_to_the_sort(monkeypatch):
    """Knots spread over decades keep Newton stepping: with one step allowed, some rows are left to the
    sort, and the answers are the same as with all the steps."""
    g = torch.Generator().manual_seed(9)
    knots = 10 ** (-6 * torch.rand(6, 5000, generator=g))
    rate = torch.rand(6, 5000, generator=g)
    weights = rate * knots
    need = weights.sum(1) * 0.7
    full, _ = fab._breakpoint_level(knots, weights, rate, need)
    used = []
    original = fab._sorted_level

    def counting(k, *args):
        used.append(k.shape[0])
        return original(k, *args)

    monkeypatch.setattr(fab, "_sorted_level", counting)
    monkeypatch.setattr(fab, "NEWTON_STEPS", 1)
    one_step, _ = fab._breakpoint_level(knots, weights, rate, need)
    assert used and 0 < used[0] <= 6
    assert torch.allclose(one_step, full, rtol=1e-5, atol=0)
