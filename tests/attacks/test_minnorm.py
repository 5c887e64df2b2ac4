"""FMN (nnprobe.attacks.minnorm) against the reference's algorithm (fmn_reference.py), per sample, on
the tiny conv net: every distance at most the reference's plus a tolerance, every returned point really
fools at the distance it reports (recomputed in float64 by a plain loop), and batches cannot change a
distance."""
from __future__ import annotations

import math

import pytest
import torch

import fmn_reference
import tinymodels
from nnprobe.attacks.minnorm import MIN_NORM_IDS, build_min_norm
from nnprobe.errors import UsageError

P = {"linf": math.inf, "l2": 2, "l1": 1, "l0": 0}
STEPS = 30


@pytest.fixture(scope="module")
def setup():
    model = tinymodels.tiny_classifier()
    x, y = tinymodels.make_data(12, seed=11)
    with torch.no_grad():
        right = model(x).argmax(1) == y
    return model, x[right], y[right]


def _plain_distance(x, adv, p):
    delta = (adv.double() - x.double()).flatten(1)
    if p == 0:
        return (delta != 0).sum(dim=1).double()
    if p == math.inf:
        return delta.abs().amax(dim=1)
    return delta.abs().pow(p).sum(dim=1).pow(1 / p)


@pytest.mark.parametrize("attack_id", MIN_NORM_IDS)
def test_fmn_matches_the_reference_per_sample(setup, attack_id):
    model, x, y = setup
    assert len(y) >= 6
    norm = attack_id.split("-")[1]
    out = build_min_norm(attack_id, steps=STEPS)(model, x, y)
    with torch.enable_grad():
        ref_adv = fmn_reference.fmn(model, x, y, P[norm], steps=STEPS)
    with torch.no_grad():
        ref_fooled = model(ref_adv).argmax(1) != y
        ours_fooled = model(out.adversarial).argmax(1) != y
    ref = torch.where(ref_fooled, _plain_distance(x, ref_adv, P[norm]), torch.full((len(y),), math.inf).double())
    # every returned point fools, at exactly the distance reported; the others are the clean image and inf
    assert torch.equal(ours_fooled, out.success)
    if norm != "l0":  # L0's budget grows one value a step from 1: 30 steps do not reach every sample
        assert out.success.all(), f"{attack_id} fooled {int(out.success.sum())} of {len(y)}"
    assert torch.isinf(out.distance[~out.success]).all() and torch.equal(out.adversarial[~out.success], x[~out.success])
    ok = out.success
    assert torch.allclose(out.distance[ok], _plain_distance(x[ok], out.adversarial[ok], P[norm]), rtol=1e-6, atol=1e-9)
    assert (out.adversarial >= 0).all() and (out.adversarial <= 1).all()
    # per sample: no farther than the reference (same algorithm, plus a last look at the final iterate)
    tolerance = 1.0 if norm == "l0" else 1e-4
    assert (out.distance <= ref * (1 + 1e-3) + tolerance).all(), (attack_id, out.distance, ref)
    assert torch.isfinite(ref).sum() <= torch.isfinite(out.distance).sum()


def test_a_distance_does_not_depend_on_the_batch(setup):
    model, x, y = setup
    attack = build_min_norm("fmn-l2", steps=10)
    whole = attack(model, x, y).distance
    alone = torch.cat([attack(model, x[i:i + 1], y[i:i + 1]).distance for i in range(3)])
    assert torch.allclose(whole[:3], alone, rtol=1e-5)


def test_targeted_fmn_reaches_the_target(linear):
    x = torch.full((2, 3, tinymodels.SIZE, tinymodels.SIZE), 0.5)
    out = build_min_norm("fmn-linf", steps=40)(linear, x, torch.tensor([1, 2]), targeted=True)
    with torch.no_grad():
        assert (linear(out.adversarial).argmax(1) == torch.tensor([1, 2])).all()
    assert out.success.all() and torch.isfinite(out.distance).all()


def test_fmn_linf_is_no_weaker_than_pgd_at_its_distance(setup):
    """An independent check: where PGD-50 (a different attack) fools at eps, FMN's distance is at most a
    little above eps for nearly every sample (the min-norm curve lies below PGD's robust accuracy)."""
    from nnprobe.attacks import build

    model, x, y = setup
    distance = build_min_norm("fmn-linf", steps=100)(model, x, y).distance
    for eps in (0.01, 0.02, 0.04):
        pgd = build("pgd", eps, steps=50, random_start=False)(model, x, y, first_success=True)
        fmn_robust = int((distance > eps * 1.05).sum())
        assert fmn_robust <= int((~pgd.success).sum()) + 1, (eps, fmn_robust, int((~pgd.success).sum()))


def test_unknown_min_norm_id_is_one_sentence():
    with pytest.raises(UsageError, match="fmn-linf, fmn-l2, fmn-l1, fmn-l0"):
        build_min_norm("fmn-l3")
    with pytest.raises(UsageError, match="--steps"):
        build_min_norm("fmn-l2", steps=0)
