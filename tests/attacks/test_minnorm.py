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


def test_option_choices_are_the_attack_ids():
    from nnprobe.options.attack import MIN_NORM

    assert MIN_NORM == MIN_NORM_IDS


def test_robust_min_norm_distribution_from_the_per_sample_distances(setup):
    """The record's quantiles and curve against a plain count over FMN's own distances (computed here
    again on the same samples: a distance does not depend on the batch)."""
    import numpy as np

    from nnprobe.attacks.robustness import robust

    model, _, _ = setup
    x, y = tinymodels.make_data(16, seed=5)
    result = robust(model, [(x[:7], y[:7]), (x[7:], y[7:])], eps=[0, 4 / 255, 8 / 255], device="cpu",
                    min_norm="fmn-l2", min_norm_steps=20)
    m = result.min_norm
    with torch.no_grad():
        right = model(x).argmax(1) == y
    d = build_min_norm("fmn-l2", steps=20)(model, x[right], y[right]).distance.numpy()
    assert (m.attack, m.norm, m.steps, m.attacked, m.found) == ("fmn-l2", "l2", 20, int(right.sum()),
                                                                 int(np.isfinite(d).sum()))
    ordered = np.sort(d)
    for level, value in zip(m.levels, m.quantiles):
        expected = ordered[max(0, math.ceil(level * len(d)) - 1)]  # the inverted-CDF quantile, by hand
        assert (value is None and not np.isfinite(expected)) or value == pytest.approx(expected, rel=1e-6)
    assert m.median == m.quantiles[m.levels.index(0.5)]
    assert len(m.curve) >= 21 and m.curve[0].eps == 0 and m.curve[0].correct_top1 == int(right.sum())
    for point in m.curve:
        assert point.total == 16 and point.correct_top1 == int((d > point.eps).sum())
    assert m.gradient_passes == 20 * int(right.sum())
    # the L2 record leaves the L∞ run's budgets out of its curve (other units)
    assert 4 / 255 not in [c.eps for c in m.curve]


def test_robust_cli_min_norm_json_table_plot_and_refusals(tmp_path, invoke):
    import json

    tinymodels.save_class_folders(tmp_path / "data", 12, seed=3)
    tiny = f"{tinymodels.__file__}:tiny_classifier"
    args = ["robust", str(tmp_path / "data"), "--model", tiny, "--eps", "0,8/255", "--workers", "0",
            "--device", "cpu", "--min-norm", "fmn-linf", "--min-norm-steps", "30"]
    plot = tmp_path / "curve.png"
    proc = invoke(*args, "--format", "json", "--plot", str(plot))
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    m = body["min_norm"]
    assert m["attack"] == "fmn-linf" and m["steps"] == 30 and m["attacked"] == body["points"][0]["clean_correct"]
    at = {c["eps"]: c["correct_top1"] for c in m["curve"]}
    assert 8 / 255 in at and 0.0 in at and at[0.0] == body["points"][0]["correct_top1"]
    assert open(plot, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    table = invoke(*args)
    assert table.returncode == 0, table.stderr
    assert "minimum-norm distances (fmn-linf, 30 steps" in table.stdout and "pgd count" in table.stdout
    plain = invoke(*args[:-4], "--format", "json")
    assert "min_norm" not in json.loads(plain.stdout)  # a run without --min-norm: JSON unchanged
    for extra, message in ((["--shard", "1/2"], "on a --shard slice needs --save-predictions"),
                           (["--min-norm", "fmn-l3"], "fmn-l3")):
        bad = invoke(*args, *extra)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr
    lone = invoke(*args[:-4], "--min-norm-steps", "5")
    assert lone.returncode == 2 and "give --min-norm too" in lone.stderr


def test_min_norm_beats_a_weak_attack_is_a_finding(setup):
    """PGD with one step leaves samples whose FMN distance is inside the budget: flagged, with the counts."""
    from nnprobe.attacks.robustness import robust

    model, x, y = setup
    result = robust(model, [(x, y)], eps=[0, 8 / 255], steps=1, device="cpu", min_norm="fmn-linf",
                    min_norm_steps=50)
    finding = next(f for f in result.findings if f.id == "min-norm-beats-attack")
    at = {c.eps: c.correct_top1 for c in result.min_norm.curve}
    assert finding.evidence["min_norm_correct_top1"] == at[8 / 255] < result.points[1].correct_top1
    assert finding.evidence["attack_correct_top1"] == result.points[1].correct_top1
