"""Issue 18 (b): verdicts without being told K. Each case is a small set of series with the signature of a
real pathology; the references are closed forms (the entropy of a label prior, ln K) computed here."""
from __future__ import annotations

import math

import numpy as np

from nnprobe.diagnosis import class_count
from nnprobe.diagnosis.checks import RunContext, run_checks
from nnprobe.diagnosis.series import Series


def S(name, values, steps):
    values = np.asarray(values, dtype=float)
    return Series(name, "test", "jsonl", np.asarray(steps, dtype=np.int64), values, np.full(values.size, np.nan),
                  np.full(values.size, np.nan))


def judged(**roles):
    k, source = class_count(None, (), roles)
    context = RunContext(path="run", roles=roles, series={s.name: s for s in roles.values()}, num_classes=k,
                         num_classes_source=source)
    return k, source, {o.id: o for o in run_checks(context)}


def entropy(prior):
    return -sum(p * math.log(p) for p in prior)


EVALS = np.arange(1, 13) * 50
STEPS = np.arange(0, 600, 5)


def test_constant_prediction_under_imbalance_without_k():
    prior = (0.62, 0.25, 0.13)  # a dead-ReLU net outputs the prior: accuracy = the majority share
    val_loss = entropy(prior) + 0.002 * np.sin(np.arange(12))
    k, _, outcomes = judged(val_acc=S("val_acc", np.full(12, 0.62), EVALS), val_loss=S("val_loss", val_loss, EVALS),
                            train_loss=S("loss", np.full(STEPS.size, entropy(prior)), STEPS))
    assert k is None
    (finding,) = outcomes["constant-prediction"].findings
    assert finding.severity == "error" and finding.evidence["confidence"] == "medium"
    assert finding.evidence["method"].startswith("K-free")


def test_frozen_accuracy_after_learning_is_no_constant_output_but_a_fall_is():
    rising = np.r_[np.linspace(0.3, 0.9, 6), np.full(6, 0.9)]  # a decayed learning rate: rose, then froze
    flat_loss = np.r_[np.linspace(2.0, 0.35, 6), np.full(6, 0.35)]
    _, _, outcomes = judged(val_acc=S("val_acc", rising, EVALS), val_loss=S("val_loss", flat_loss, EVALS))
    assert [f.severity for f in outcomes["constant-prediction"].findings] in ([], ["info"])
    fell = np.r_[np.linspace(0.3, 0.9, 6), np.full(6, 0.62)]  # learned, then died to the majority class
    dead_loss = np.r_[np.linspace(2.0, 0.5, 6), np.full(6, entropy((0.62, 0.25, 0.13)))]
    _, _, outcomes = judged(val_acc=S("val_acc", fell, EVALS), val_loss=S("val_loss", dead_loss, EVALS))
    (finding,) = outcomes["constant-prediction"].findings
    assert finding.severity == "error" and "below its earlier best" in finding.evidence["method"]


def test_shuffled_labels_are_chance_not_overfitting_without_k():
    rng = np.random.default_rng(0)
    val_loss = math.log(10) + 0.01 + np.linspace(0, 0.8, 30)  # memorising: validation loss rises from ln K
    val_acc = 0.1 + 0.02 * rng.standard_normal(30)
    train_loss = np.linspace(2.3, 0.05, 300)
    evals = np.arange(1, 31) * 10
    k, source, outcomes = judged(val_loss=S("val_loss", val_loss, evals), val_acc=S("val_acc", val_acc, evals),
                                 train_loss=S("loss", train_loss, np.arange(300)),
                                 train_acc=S("train_acc", np.linspace(0.1, 1.0, 30), evals))
    assert k == 10 and "lowest validation loss" in source
    (finding,) = outcomes["chance-accuracy"].findings
    assert finding.severity == "error" and finding.evidence["confidence"] == "medium"
    assert outcomes["overfitting"].status == "skipped" and "never beat chance" in outcomes["overfitting"].reason


def test_collapse_back_to_the_first_value_without_k():
    acc = np.r_[0.21, np.linspace(0.5, 0.92, 7), 0.6, 0.3, 0.22, 0.215]
    loss = np.r_[2.0, np.linspace(1.5, 0.3, 7), 0.9, 1.6, 1.9, 1.95]
    k, _, outcomes = judged(val_acc=S("val_acc", acc, EVALS), val_loss=S("val_loss", loss, EVALS))
    assert k is None
    (finding,) = outcomes["chance-accuracy"].findings
    assert finding.severity == "error" and "collapsed" in finding.message and finding.evidence["best"] == 0.92


def test_unknown_k_on_a_run_that_learned_stays_skipped():
    acc = np.linspace(0.4, 0.93, 12)
    k, _, outcomes = judged(val_acc=S("val_acc", acc, EVALS), val_loss=S("val_loss", np.linspace(1.8, 0.3, 12), EVALS))
    assert k is None
    assert outcomes["chance-accuracy"].status == "skipped" and "--num-classes" in outcomes["chance-accuracy"].reason


def test_rising_validation_loss_after_a_blow_up_is_no_overfitting():
    train = np.r_[np.linspace(1.1, 0.4, 40), np.geomspace(10, 1e15, 20), np.full(60, 1e15)]
    val_loss = np.r_[np.linspace(1.0, 0.5, 4), np.geomspace(5, 1e14, 8)]
    _, _, outcomes = judged(train_loss=S("loss", train, np.arange(0, 600, 5)), val_loss=S("val_loss", val_loss, EVALS),
                            val_acc=S("val_acc", np.r_[np.linspace(0.5, 0.8, 4), np.full(8, 0.33)], EVALS))
    assert [f.severity for f in outcomes["divergence"].findings] == ["error"]
    assert outcomes["overfitting"].status == "skipped" and "diverged" in outcomes["overfitting"].reason
