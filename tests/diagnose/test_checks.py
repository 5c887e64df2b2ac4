"""Each check on small synthetic series: it fires on the pathology, stays quiet on the healthy variant,
and skips (with a reason) when its metric is missing. The registry is tested as a registry."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from nnprobe.diagnosis.checks import CHECKS, RunContext, register, run_checks
from nnprobe.diagnosis.series import Series

from diagnose_helpers import curve


def S(name, values, steps=None, *, epochs=None, walls=None, fmt="jsonl"):
    values = np.asarray(values, dtype=float)
    n = values.size
    steps = np.arange(n) if steps is None else np.asarray(steps)
    return Series(name, "test", fmt, steps.astype(np.int64), values,
                  np.full(n, np.nan) if walls is None else np.asarray(walls, dtype=float),
                  np.full(n, np.nan) if epochs is None else np.asarray(epochs, dtype=float))


def ctx(k=None, source="from --num-classes", meta=None, issues=(), **roles):
    return RunContext(path="run", roles=roles, series={s.name: s for s in roles.values()}, num_classes=k,
                      num_classes_source=source if k else "unknown", issues=tuple(issues), meta=meta or {})


def run(check_id, context):
    (outcome,) = run_checks(context, [check_id])
    return outcome


def fired(check_id, context):
    return [(f.severity, f.message) for f in run(check_id, context).findings]


# ------------------------------------------------------------------------------------------- registry

def test_duplicate_id_raises():
    with pytest.raises(ValueError, match="registered twice"):
        register("loss-not-finite", title="again")(lambda c: [])


@pytest.mark.parametrize("check_id", sorted(CHECKS))
def test_every_check_is_documented_and_skips_without_its_metric(check_id):
    check = CHECKS[check_id]
    assert re.fullmatch(r"[a-z]+(-[a-z]+)*", check_id)
    assert check.func.__doc__ and len(check.func.__doc__) > 30, "thresholds are documented beside each check"
    outcome = run(check_id, ctx())
    if check_id == "log-unreadable":  # a run with no point at all must not pass: it is the one that flags
        assert [f.severity for f in outcome.findings] == ["error"]
        assert run(check_id, ctx(train_loss=S("loss", [1.0]))).status == "passed"
    elif check.requires or check.any_of:
        assert outcome.status == "skipped" and "--metric" in outcome.reason
    else:
        assert outcome.status in ("passed", "skipped")
        assert outcome.status == "passed" or outcome.reason


def test_check_catalogue_is_complete():
    assert set(CHECKS) == {
        "loss-not-finite", "loss-negative", "chance-accuracy", "constant-prediction", "overfitting",
        "val-above-train", "divergence", "plateau", "spikes", "oscillation", "init-loss", "lr-range",
        "grad-norm", "log-truncated", "log-corrupt", "run-stopped-early", "run-stalled", "run-restarted",
        "metric-not-finite", "log-unreadable", "num-classes-ignored", "frozen-layer", "dead-relu",
        "vanishing-gradients", "gpu-utilization", "memory-growth", "exploding-gradients", "saturated-activations",
        "poor-initialization", "metric-unrecognised"}


# ------------------------------------------------------------------------------------------- loss values

def test_loss_not_finite_first_step_and_count():
    values = [2.0, 1.5, 1.2, math.nan, 1.0, math.inf, math.nan]
    outcome = run("loss-not-finite", ctx(train_loss=S("loss", values, steps=[0, 10, 20, 30, 40, 50, 60])))
    (finding,) = outcome.findings
    assert finding.severity == "error"
    assert finding.evidence["step"] == 30 and finding.evidence["count"] == 3 and finding.evidence["last_finite"] == 1.2
    assert run("loss-not-finite", ctx(train_loss=S("loss", [2.0, 1.0]))).status == "passed"


def test_hf_masked_nan_needs_two_zero_logs_with_nonfinite_grad_norm():
    loss = S("loss", [2.0, 1.0, 0.0, 0.0, 0.0], steps=[10, 20, 30, 40, 50])
    grad = S("grad_norm", [1.0, 1.0, math.nan, math.nan, 0.5], steps=[10, 20, 30, 40, 50])
    (finding,) = run("loss-not-finite", ctx(train_loss=loss, grad_norm=grad)).findings
    assert finding.evidence["steps"] == [30, 40] and finding.evidence["step"] == 30
    once = S("grad_norm", [1.0, 1.0, math.nan, 1.0, 0.5], steps=[10, 20, 30, 40, 50])
    assert run("loss-not-finite", ctx(train_loss=loss, grad_norm=once)).findings == ()


def test_negative_loss():
    assert [s for s, _ in fired("loss-negative", ctx(train_loss=S("loss", [1.0, 0.2, -0.3])))] == ["warning"]
    assert fired("loss-negative", ctx(train_loss=S("loss", [1.0, 0.2, 0.0]))) == []


# ------------------------------------------------------------------------------------------- accuracy

def test_chance_accuracy_never_and_fell_back():
    never = S("val_acc", [0.10, 0.12, 0.11, 0.13])
    assert "never rose" in fired("chance-accuracy", ctx(k=10, val_acc=never))[0][1]
    fell = S("val_acc", [0.5, 0.6, 0.7, 0.12])
    assert "fell back" in fired("chance-accuracy", ctx(k=10, val_acc=fell))[0][1]
    good = S("val_acc", [0.3, 0.5, 0.6, 0.65])
    assert fired("chance-accuracy", ctx(k=10, val_acc=good)) == []
    # 0.19 is exactly 1/10 + 0.1 * 0.9: at the threshold counts as chance, just above does not.
    assert fired("chance-accuracy", ctx(k=10, val_acc=S("val_acc", [0.1, 0.19])))
    assert fired("chance-accuracy", ctx(k=10, val_acc=S("val_acc", [0.1, 0.1901]))) == []


def test_chance_accuracy_skips_without_k_and_when_too_early():
    outcome = run("chance-accuracy", ctx(val_acc=S("val_acc", [0.1, 0.1])))
    assert outcome.status == "skipped" and "--num-classes" in outcome.reason
    early = ctx(k=10, val_acc=S("val_acc", [0.1], steps=[10]), train_loss=S("loss", [2.3, 2.0], steps=[0, 1000]))
    assert run("chance-accuracy", early).status == "skipped"


def test_chance_fall_caused_by_nan_loss_is_left_to_loss_check():
    acc = S("val_acc", [0.8, 0.85, 0.1], steps=[10, 20, 30])
    loss = S("val_loss", [0.5, 0.4, math.nan], steps=[10, 20, 30])
    assert fired("chance-accuracy", ctx(k=10, val_acc=acc, val_loss=loss)) == []


def test_constant_prediction_uses_the_entropy_floor():
    acc = S("val_acc", [0.3, 0.5, 0.5, 0.5, 0.5])
    at_prior = S("val_loss", [1.5, 1.36, 1.355, 1.36, 1.358])  # >= h(0.5) = 0.693 and flat
    (finding,) = run("constant-prediction", ctx(val_acc=acc, val_loss=at_prior)).findings
    assert finding.severity == "error" and finding.evidence["evaluations"] == 4
    converged = S("val_loss", [1.0, 0.5, 0.5, 0.5, 0.5])  # below h(acc): a model that learned, frozen
    assert fired("constant-prediction", ctx(val_acc=acc, val_loss=converged)) == []
    moving = S("val_loss", [1.5, 1.4, 1.3, 1.2, 1.1])
    assert fired("constant-prediction", ctx(val_acc=acc, val_loss=moving)) == []
    frozen_lr = S("lr", [0.1, 1e-6, 1e-6, 1e-6, 1e-6])  # decayed to ~0 when accuracy froze
    assert fired("constant-prediction", ctx(val_acc=acc, val_loss=at_prior, lr=frozen_lr)) == []
    varying = S("val_acc", [0.3, 0.5, 0.51, 0.5, 0.5])
    assert fired("constant-prediction", ctx(val_acc=varying, val_loss=at_prior)) == []


def test_constant_prediction_without_loss_needs_five_evaluations():
    assert fired("constant-prediction", ctx(val_acc=S("val_acc", [0.2, 0.4, 0.4, 0.4, 0.4]))) == []
    assert len(fired("constant-prediction", ctx(val_acc=S("val_acc", [0.2, 0.4, 0.4, 0.4, 0.4, 0.4])))) == 1


def test_constant_prediction_from_nan_network():
    acc = S("val_acc", [0.8, 0.1, 0.1, 0.1])
    loss = S("val_loss", [0.5, math.nan, math.nan, math.nan])
    (finding,) = run("constant-prediction", ctx(val_acc=acc, val_loss=loss)).findings
    assert "not finite" in finding.message


# ------------------------------------------------------------------------------------------- generalisation

def overfit_case(rise=1.3, train_end=0.2):
    epochs = np.arange(10.0)
    val = [1.5, 1.1, 0.9, 0.8, 0.82, 0.85, 0.9, 0.95, 1.0, 0.8 * rise]
    train = list(np.linspace(1.4, train_end, 10))
    return dict(val_loss=S("val_loss", val, epochs=epochs), train_loss=S("loss", train, epochs=epochs))


def test_overfitting_error_names_best_epoch():
    roles = overfit_case()
    roles.update(train_acc=S("acc", np.linspace(0.5, 0.99, 10)), val_acc=S("val_acc", [0.5] + [0.8] * 9))
    (finding,) = run("overfitting", ctx(**roles)).findings
    assert finding.severity == "error"
    assert finding.evidence["best_at"] == {"step": 3, "epoch": 3.0} and finding.evidence["evaluations_since_best"] == 6
    assert "Stop at epoch 3" in finding.hint


def test_overfitting_rise_without_gap_is_a_warning_and_gap_alone_is_info():
    epochs = np.arange(6.0)
    val = S("val_loss", [1.2, 1.0, 0.95, 1.06, 1.07, 1.08], epochs=epochs)  # each of the last 3 >= 1.1x the min
    train = S("loss", [1.3, 1.15, 1.1, 1.05, 1.02, 1.0], epochs=epochs)
    assert [s for s, _ in fired("overfitting", ctx(val_loss=val, train_loss=train))] == ["warning"]
    gap = dict(train_acc=S("acc", [0.6, 0.8, 0.95]), val_acc=S("val_acc", [0.55, 0.75, 0.85]))
    assert [s for s, _ in fired("overfitting", ctx(**gap))] == ["info"]
    small = dict(train_acc=S("acc", [0.6, 0.8, 0.95]), val_acc=S("val_acc", [0.55, 0.75, 0.89]))
    assert fired("overfitting", ctx(**small)) == []


def test_overfitting_a_minimum_wandered_back_to_is_not_rising():
    epochs = np.arange(12.0)  # jsonl-healthy-resumed's validation loss: noise around a flat minimum
    val = S("val_loss", [0.839, 0.263, 0.181, 0.132, 0.128, 0.111, 0.105, 0.121, 0.092, 0.103, 0.1, 0.105],
            epochs=epochs)
    train = S("loss", np.linspace(0.9, 0.066, 12), epochs=epochs)
    assert fired("overfitting", ctx(val_loss=val, train_loss=train)) == []


def test_overfitting_noise_below_ten_percent_is_not_rising():
    roles = overfit_case(rise=1.05)
    roles["val_loss"] = S("val_loss", [1.5, 1.1, 0.9, 0.8, 0.82, 0.81, 0.83, 0.82, 0.84, 0.83])
    assert fired("overfitting", ctx(**roles)) == []


def test_val_above_train():
    train = S("acc", [0.3, 0.4, 0.5, 0.55, 0.6])
    assert [s for s, _ in fired("val-above-train", ctx(train_acc=train, val_acc=S("v", [0.5, 0.6, 0.7, 0.75, 0.8])))] \
        == ["info"]  # label noise in the training set looks the same: an info (docs/diagnose.md)
    assert fired("val-above-train", ctx(train_acc=train, val_acc=S("v", [0.32, 0.43, 0.53, 0.57, 0.62]))) == []


# ------------------------------------------------------------------------------------------- dynamics

def test_divergence_warning_error_and_single_spike():
    # ends 3.5x its start: an error since issue 12 (AUTOTRAINER and Lightning stop training at 3x)
    assert [s for s, _ in fired("divergence", ctx(train_loss=S("loss", np.linspace(2, 7, 50))))] == ["error"]
    assert [s for s, _ in fired("divergence", ctx(train_loss=S("loss", np.linspace(-2, 0, 50))))] == ["warning"]
    assert [s for s, _ in fired("divergence", ctx(train_loss=S("loss", np.linspace(2, 60, 50))))] == ["error"]
    spike = np.linspace(2, 0.5, 50)
    spike[45] = 100.0
    assert fired("divergence", ctx(train_loss=S("loss", spike))) == []


def test_plateau_on_accuracy_and_loss_but_not_on_rising_loss():
    assert fired("plateau", ctx(val_acc=S("val_acc", [0.3, 0.305, 0.302, 0.301])))
    assert fired("plateau", ctx(val_acc=S("val_acc", [0.9, 0.905, 0.902, 0.901]))) == []  # above 0.7: converged
    assert fired("plateau", ctx(train_loss=S("loss", [2.3] * 20)))
    assert fired("plateau", ctx(train_loss=S("loss", np.linspace(2.3, 5.0, 20)))) == []


def test_spikes_quiet_on_noisy_curve_and_found_when_present():
    noisy = curve(2000, 2.3, 0.3, noise=0.15, seed=1)
    assert fired("spikes", ctx(train_loss=S("loss", noisy))) == []
    noisy[1500] = noisy[1499] * 6
    (finding,) = run("spikes", ctx(train_loss=S("loss", noisy, steps=np.arange(2000) * 10))).findings
    assert finding.evidence["count"] == 1 and finding.evidence["step"] == 15000


def test_oscillation():
    swings = S("val_acc", [0.5, 0.6, 0.5, 0.62, 0.52, 0.63, 0.55, 0.64])
    assert len(fired("oscillation", ctx(val_acc=swings))) == 1
    smooth = S("val_acc", [0.5, 0.6, 0.65, 0.68, 0.67, 0.69, 0.7, 0.7])
    assert fired("oscillation", ctx(val_acc=smooth)) == []


def test_init_loss_high_low_and_skipped_when_k_is_inferred():
    assert "far above" in fired("init-loss", ctx(k=10, train_loss=S("loss", [5.0, 2.0])))[0][1]
    assert "far below" in fired("init-loss", ctx(k=10, train_loss=S("loss", [0.2, 0.1])))[0][1]
    later = S("loss", [0.2, 0.1], steps=[500, 1000])  # not at init: only the high side is judged
    assert fired("init-loss", ctx(k=10, train_loss=later)) == []
    assert fired("init-loss", ctx(k=10, train_loss=S("loss", [2.4, 2.0]))) == []
    inferred = ctx(k=10, source="inferred from the first loss", train_loss=S("loss", [5.0, 2.0]))
    assert run("init-loss", inferred).status == "skipped"


# ------------------------------------------------------------------------------------------- optimiser

def test_lr_range():
    assert fired("lr-range", ctx(lr=S("lr-Adam", [1e-3, 0.05, 1e-3])))
    assert fired("lr-range", ctx(lr=S("lr-SGD", [0.1, 0.4, 0.1]))) == []
    assert "is 0 throughout" in fired("lr-range", ctx(lr=S("lr", [0.0, 0.0])))[0][1]
    assert "0 at" in fired("lr-range", ctx(lr=S("lr", [0.1, 0.0, 0.0, 0.0])))[0][1]
    assert fired("lr-range", ctx(lr=S("lr", [1e-9, 1e-9])))
    warmup_then_decay = [0.0] + list(np.linspace(0.1, 0.0, 20))  # starts and ends at 0
    assert fired("lr-range", ctx(lr=S("lr", warmup_then_decay))) == []


def test_grad_norm_explosion_vanishing_and_nan_left_alone():
    calm = [1.0 + 0.1 * math.sin(i) for i in range(60)]
    assert fired("grad-norm", ctx(grad_norm=S("grad_norm", calm))) == []
    jump = calm.copy()
    jump[40] = 25.0
    (finding,) = run("grad-norm", ctx(grad_norm=S("grad_norm", jump))).findings
    assert finding.evidence["step"] == 40 and finding.evidence["count"] == 1
    assert "vanished" in fired("grad-norm", ctx(grad_norm=S("grad_norm", [1.0] * 5 + [1e-9] * 12)))[0][1]
    skipped_steps = calm.copy()
    skipped_steps[30] = math.nan  # a GradScaler-skipped step
    assert fired("grad-norm", ctx(grad_norm=S("grad_norm", skipped_steps))) == []


# ------------------------------------------------------------------------------------------- integrity

def test_stall_and_stopped_early():
    walls = np.arange(100) * 2.0
    walls[60:] += 3600
    loss = S("loss", np.linspace(2, 1, 100), walls=walls)
    (finding,) = run("run-stalled", ctx(train_loss=loss)).findings
    assert finding.evidence["step"] == 60 and finding.evidence["gap_seconds"] == 3602
    steady = S("loss", np.linspace(2, 1, 100), walls=np.arange(100) * 2.0)
    assert fired("run-stalled", ctx(train_loss=steady)) == []
    stopped = ctx(train_loss=steady, meta={"max_steps": 1000, "global_step": 400, "finished": False})
    assert "step 400 of 1000" in fired("run-stopped-early", stopped)[0][1]
    done = ctx(train_loss=steady, meta={"max_steps": 1000, "global_step": 1000, "finished": True})
    assert fired("run-stopped-early", done) == []


# ------------------------------------------------------------------------------------- any metric finite

def series_ctx(**named):
    """A context whose roles are mapped from the names, as diagnose does."""
    from nnprobe.diagnosis.roles import map_roles

    series = {name: S(name, values) for name, values in named.items()}
    roles, _ = map_roles(series, {})
    return RunContext(path="run", roles=roles, series=series, num_classes=None, num_classes_source="unknown")


def test_metric_not_finite_severity_per_kind():
    found = fired("metric-not-finite", series_ctx(
        loss=[2.0, 1.0, 0.5], val_acc=[0.5, math.nan, 0.6], loss_cls=[1.0, math.inf, 1.0],
        epoch=[0.0, 1.0, math.nan], lr=[0.1, math.nan, 0.1], samples_per_second=[3.0, 3.0, 3.0]))
    assert found == [
        ("warning", "'epoch' becomes nan at step 2: 1 of 3 points are not finite."),
        ("error", "'loss_cls' becomes inf at step 1: 1 of 3 points are not finite."),  # a loss not chosen for a role
        ("error", "'val_acc' becomes nan at step 1: 1 of 3 points are not finite."),
    ]  # lr is lr-range's, the chosen loss loss-not-finite's


def test_non_finite_grad_norm_is_info_unless_the_loss_explains_it():
    quiet_loss = series_ctx(loss=[2.0, 1.0, 0.5], grad_norm=[1.0, math.inf, 1.0])
    assert [sev for sev, _ in fired("metric-not-finite", quiet_loss)] == ["info"]
    broken_loss = series_ctx(loss=[2.0, math.nan, 0.5], grad_norm=[1.0, math.inf, 1.0])
    assert run("metric-not-finite", broken_loss).status == "passed"
    assert run("metric-not-finite", series_ctx(loss=[2.0, 1.0], val_acc=[0.5, 0.6])).status == "passed"
