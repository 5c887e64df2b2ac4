"""Rounding to 8 bits keeps the budget: hypothesis over random images, plus worked examples."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnprobe.attacks.pixels import linf_levels, quantize


def test_rounds_not_truncates():
    original = torch.tensor([100, 100, 100, 0, 255], dtype=torch.uint8).view(1, 1, 1, 5)
    adv = (torch.tensor([100.6, 99.4, 101.6, 0.4, 254.5], dtype=torch.float64) / 255).view(1, 1, 1, 5)
    q = quantize(adv, original, 2 / 255, "linf")
    assert q.flatten().tolist() == [101, 99, 102, 0, 254]  # 254.5 rounds half to even


def test_rounded_pixel_leaving_the_ball_moves_to_nearest_inside():
    original = torch.tensor([100, 100], dtype=torch.uint8).view(1, 1, 1, 2)
    adv = (torch.tensor([101.7, 98.3], dtype=torch.float64) / 255).view(1, 1, 1, 2)  # eps 1.7/255
    q = quantize(adv, original, 1.7 / 255, "linf")
    assert q.flatten().tolist() == [101, 99]  # round would give 102 and 98: outside 1.7 levels
    assert linf_levels(2 / 255) == 2 and linf_levels(1.99 / 255) == 1


def test_l2_overshoot_is_undone_largest_first():
    original = torch.full((1, 1, 1, 4), 50, dtype=torch.uint8)
    # target δ = (0.55, 0.6, 0.7, 0.8) levels: ‖δ‖ = 1.34 ≤ eps 1.35; rounding gives (1,1,1,1), ‖·‖ = 2;
    # undoing the largest overshoots first (0.45, 0.4, 0.3) brings it inside
    adv = (50 + torch.tensor([0.55, 0.6, 0.7, 0.8], dtype=torch.float64)).view(1, 1, 1, 4) / 255
    q = quantize(adv, original, 1.35 / 255, "l2")
    delta = q.to(torch.int64) - 50
    assert delta.flatten().tolist() == [0, 0, 0, 1]
    assert math.sqrt(float((delta ** 2).sum())) <= 1.35


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), levels=st.floats(0, 12), norm=st.sampled_from(["linf", "l2"]))
def test_quantized_perturbation_stays_in_budget(seed, levels, norm):
    g = torch.Generator().manual_seed(seed)
    original = torch.randint(0, 256, (1, 3, 5, 7), generator=g, dtype=torch.uint8)
    base = original.double() / 255
    eps = levels / 255 if norm == "linf" else levels * 3 / 255
    direction = torch.rand(base.shape, generator=g, dtype=torch.float64) * 2 - 1
    if norm == "linf":
        delta = direction * eps
    else:
        delta = direction / direction.norm() * eps * float(torch.rand(1, generator=g))
    adv = (base + delta).clamp(0, 1)
    q = quantize(adv.float(), original, eps, norm)
    assert q.dtype == torch.uint8
    d = q.to(torch.int64) - original.to(torch.int64)
    if norm == "linf":
        assert d.abs().max().item() <= math.floor(levels + 1e-6)
        # every pixel is the rounded value unless rounding left the ball, then it sits on the boundary
        r = torch.round(adv.float().double() * 255).to(torch.int64) - original.to(torch.int64)
        moved = r != d
        assert (d[moved].abs() == math.floor(levels + 1e-6)).all()
    else:
        assert math.sqrt(float((d ** 2).sum())) <= levels * 3 + 1e-6
        # never further from the float target than rounding, by more than one level per pixel
        assert ((q.double() - adv.float().double() * 255).abs() <= 1.0 + 1e-6).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("norm,eps", [("linf", 2 / 255), ("l2", 0.5)])
def test_quantize_of_gpu_tensors_equals_the_cpu_result(norm, eps):
    """An attack on the GPU hands CUDA tensors to quantize: the 8-bit image must be the CPU one."""
    g = torch.Generator().manual_seed(0)
    original = torch.randint(0, 256, (2, 3, 17, 13), generator=g, dtype=torch.uint8)
    adv = (original.double() / 255 + (torch.rand(original.shape, generator=g, dtype=torch.float64) - 0.5) * 0.03)
    adv = adv.clamp(0, 1).float()
    on_gpu = quantize(adv.cuda(), original.cuda(), eps, norm)
    assert on_gpu.device.type == "cpu" and torch.equal(on_gpu, quantize(adv, original, eps, norm))
