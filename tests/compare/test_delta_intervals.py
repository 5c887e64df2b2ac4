"""An interval on every delta of an eval comparison: the paired table counted here by a plain loop, the
interval from statsmodels where it has one (independent samples) and from the published formula's tested
implementation otherwise; the paired bootstrap drawn here by hand; the minimal detectable drop against scipy."""
from __future__ import annotations

import numpy as np
import pytest
from compare_helpers import eval_result, random_eval_pair
from scipy.stats import binomtest
from statsmodels.stats.proportion import confint_proportions_2indep

import nnprobe
from nnprobe.intervals import paired_difference, resample_weights


@pytest.fixture
def pair(tmp_path):
    base_rows, cand_rows = random_eval_pair(seed=5, n=300, num_classes=6, worse=0.1)
    rng = np.random.default_rng(0)
    for rows in (base_rows, cand_rows):
        for row in rows:
            row["confidence"] = float(np.round(rng.random(), 6))
    return tmp_path, base_rows, cand_rows


def test_paired_top1_interval_is_newcombes_on_the_counted_table(pair):
    tmp, base_rows, cand_rows = pair
    result = nnprobe.compare(eval_result(tmp, "b", base_rows, 6), eval_result(tmp, "c", cand_rows, 6))
    table = [0, 0, 0, 0]  # both right, right -> wrong, wrong -> right, both wrong
    for a, b in zip(base_rows, cand_rows):
        table[{(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 3}[(a["correct"], b["correct"])]] += 1
    top1 = {m.name: m for m in result.metrics}["top1"]
    assert top1.interval == paired_difference(*table)
    assert top1.interval.lo < top1.delta < top1.interval.hi
    assert result.to_dict()["metrics"][0]["interval"]["method"] == "newcombe-paired (method 10)"


def test_unpaired_top1_interval_equals_statsmodels_newcombe(pair):
    tmp, base_rows, cand_rows = pair
    base = eval_result(tmp, "b", base_rows, 6, preds=False)
    cand = eval_result(tmp, "c", cand_rows, 6, preds=False)
    result = nnprobe.compare(base, cand)
    assert not result.paired and result.minimal_detectable_drop is None
    top1 = {m.name: m for m in result.metrics}["top1"]
    k1, k2 = sum(r["correct"] for r in base_rows), sum(r["correct"] for r in cand_rows)
    ref = confint_proportions_2indep(k2, 300, k1, 300, method="newcomb", compare="diff")
    assert (top1.interval.lo, top1.interval.hi) == pytest.approx(ref, abs=1e-12)


def test_loss_delta_interval_is_a_paired_bootstrap_drawn_by_hand(pair):
    tmp, base_rows, cand_rows = pair
    result = nnprobe.compare(eval_result(tmp, "b", base_rows, 6), eval_result(tmp, "c", cand_rows, 6))
    loss = {m.name: m for m in result.metrics}["mean_loss"]
    diff = np.array([b["loss"] - a["loss"] for a, b in zip(base_rows, cand_rows)])
    draws = [float((w * diff).sum() / w.sum()) for chunk in resample_weights(300, 1000, 0) for w in chunk]
    assert (loss.interval.lo, loss.interval.hi) == pytest.approx(tuple(np.quantile(draws, [0.025, 0.975])))
    assert loss.interval.method.startswith("paired bootstrap")


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_minimal_detectable_drop_at_n_and_alpha(pair, alpha):
    tmp, base_rows, cand_rows = pair
    result = nnprobe.compare(eval_result(tmp, "b", base_rows, 6), eval_result(tmp, "c", cand_rows, 6), alpha=alpha)
    flips = round(result.minimal_detectable_drop * 300)
    assert binomtest(flips, flips, 0.5, alternative="greater").pvalue <= alpha
    assert binomtest(flips - 1, flips - 1, 0.5, alternative="greater").pvalue > alpha


def test_confidence_level_widens_the_intervals(pair):
    tmp, base_rows, cand_rows = pair
    paths = eval_result(tmp, "b", base_rows, 6), eval_result(tmp, "c", cand_rows, 6)
    wide = {m.name: m for m in nnprobe.comparison.compare(*paths, confidence=0.99).metrics}["top1"].interval
    narrow = {m.name: m for m in nnprobe.comparison.compare(*paths, confidence=0.8).metrics}["top1"].interval
    assert wide.lo < narrow.lo < narrow.hi < wide.hi
