"""Accuracy that says the model learned nothing: chance level, or one class predicted for everything."""
from __future__ import annotations

import math

import numpy as np

from nnprobe.diagnosis.checks._util import aligned, at, epoch_label, finite_points, r
from nnprobe.diagnosis.checks.registry import Flag, RunContext, Skip, register

# Deepchecks' simple-model comparison asks for a gain >= 0.1 over the trivial baseline, where
# gain = (acc - baseline) / (1 - baseline); below it the model is "at chance". AUTOTRAINER judges only
# after 30% of training.
MIN_GAIN = 0.1
JUDGE_AFTER = 0.3
# DeepDiagnosis flags a constant prediction when accuracy is identical over 5 evaluations (mean == max);
# with a flat loss as second witness 3 are enough (Lightning's patience).
CONSTANT_EVALS = 3
CONSTANT_EVALS_WITHOUT_LOSS = 5
FLAT_LOSS = 0.02  # relative range of the loss over those evaluations
ENTROPY_SLACK = 0.95  # loss >= 0.95 h(acc): room for rounding in the logs
LR_FROZEN = 0.01  # a learning rate <= 1% of its peak during those evaluations freezes the model


@register("chance-accuracy", title="Validation accuracy above chance", requires=("val_acc",),
          needs_num_classes=True)
def chance_accuracy(ctx: RunContext):
    """Best and final validation accuracy must beat 1/K by a gain of 0.1 (Deepchecks)."""
    series = ctx.roles["val_acc"]
    idx, values = finite_points(series)
    if not values.size:
        raise Skip(f"'{series.name}' has no finite value")
    last = ctx.last_step
    if last > 0 and series.steps[idx[-1]] < JUDGE_AFTER * last:
        raise Skip(f"last evaluation at step {int(series.steps[idx[-1]])} is before 30% of the run "
                   f"({last} steps): too early to judge")
    k = ctx.num_classes
    chance = 1.0 / k
    threshold = chance + MIN_GAIN * (1.0 - chance)
    best_i = int(idx[int(np.argmax(values))])
    best, final = float(values.max()), float(values[-1])
    evidence = {"series": series.name, "best": r(best), "best_at": at(series, best_i), "final": r(final),
                **at(series, int(idx[-1])), "chance": r(chance), "threshold": r(threshold), "num_classes": k,
                "num_classes_source": ctx.num_classes_source}
    hint = ("Check that labels match their inputs (shuffled or misaligned labels give chance accuracy), "
            "that the model gets logits and the right targets, that the learning rate is not 0 and the "
            "optimizer holds the model's parameters, and that --num-classes is right.")
    if best <= threshold:
        yield Flag("error", f"validation accuracy never rose above chance: best {best:.4f} "
                            f"({epoch_label(series, best_i)}) vs chance 1/{k} = {chance:.4f} "
                            f"(K {ctx.num_classes_source}).", hint, evidence)
    elif final <= threshold and not _loss_broken_at(ctx, int(series.steps[idx[-1]])):
        yield Flag("error", f"validation accuracy fell back to chance: final {final:.4f} vs chance "
                            f"1/{k} = {chance:.4f}, after a best of {best:.4f} "
                            f"({epoch_label(series, best_i)}).", hint, evidence)


def _loss_broken_at(ctx: RunContext, step: int) -> bool:
    """A non-finite loss at the last evaluation explains a fall to chance (a NaN network predicts class
    0); loss-not-finite owns that root cause, so it is not reported twice."""
    for role in ("val_loss", "train_loss"):
        loss = ctx.roles.get(role)
        if loss is not None and len(loss):
            upto = loss.values[loss.steps <= step]
            if upto.size and not np.isfinite(upto[-1]):
                return True
    return False


def binary_entropy(p: float) -> float:
    """h(p) in nats; the entropy of any label distribution with one class at share p is >= h(p)."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


@register("constant-prediction", title="Predictions vary with the input", requires=("val_acc",))
def constant_prediction(ctx: RunContext):
    """Accuracy exactly constant over the last >= 3 evaluations while the loss sits flat at a level only a
    constant output can have: predicting one class for everything scores acc = that class's share p and a
    cross-entropy >= H(labels) >= h(p) (binary entropy), so a flat loss >= h(acc) is that signature
    (DeepDiagnosis uses acc mean == max over 5 evaluations). A non-finite loss counts too: a NaN network's
    argmax is class 0. A learning rate that fell to ~0 also freezes accuracy, so then nothing is said."""
    series = ctx.roles["val_acc"]
    idx, values = finite_points(series)
    if values.size < CONSTANT_EVALS:
        raise Skip(f"needs >= {CONSTANT_EVALS} evaluations of '{series.name}', got {values.size}")
    run = 1
    while run < values.size and abs(values[-1 - run] - values[-1]) <= 1e-7:
        run += 1
    acc = float(values[-1])
    if run < CONSTANT_EVALS or acc >= 0.999:
        return
    first = int(idx[-run])
    lo_step, hi_step = int(series.steps[first]), int(series.steps[idx[-1]])
    lr = ctx.roles.get("lr")
    if lr is not None:
        lr_values = lr.values[np.isfinite(lr.values)]
        during = lr.values[(lr.steps >= lo_step) & (lr.steps <= hi_step)]
        if lr_values.size and during.size and np.nanmax(during) <= LR_FROZEN * lr_values.max():
            return
    loss = ctx.roles.get("val_loss") or ctx.roles.get("train_loss")
    evidence = {"series": series.name, "value": r(acc), "evaluations": run, "from": at(series, first)}
    if loss is None:
        if run < CONSTANT_EVALS_WITHOUT_LOSS:
            return
        loss_text = ""
    else:
        if loss is ctx.roles.get("val_loss"):
            in_window = (loss.steps >= lo_step) & (loss.steps <= hi_step)
            window = loss.values[in_window] if in_window.any() else loss.values[-run:]
        else:  # train loss: its mean over each evaluation interval
            window = aligned(loss, series.steps[idx[-run:]])
        if np.all(np.isfinite(window)):
            mean = float(window.mean())
            spread = float((window.max() - window.min()) / max(abs(mean), 1e-12))
            floor = binary_entropy(acc)
            if spread > FLAT_LOSS or mean < ENTROPY_SLACK * floor:
                return
            evidence.update(loss_series=loss.name, loss_mean=r(mean), loss_relative_range=r(spread),
                            entropy_floor=r(floor))
            loss_text = (f" while '{loss.name}' sits flat at {mean:.4f} (>= {floor:.4f}, the least loss a "
                         f"constant output with this accuracy can have)")
            if ctx.num_classes:
                evidence["ln_k"] = r(math.log(ctx.num_classes))
        else:
            evidence.update(loss_series=loss.name, loss_mean="nan")
            loss_text = f" while '{loss.name}' is not finite (a NaN network's argmax is class 0)"
    yield Flag(
        "error",
        f"validation accuracy is exactly {acc:.4f} for the last {run} evaluations (from "
        f"{epoch_label(series, first)}){loss_text}: the model predicts the same class for every input.",
        "Look for inputs that carry no signal (all-zero or constant images, a normalisation that wipes "
        "the data, wrong tensor passed to the model), dead ReLUs after a too-high learning rate, or a very "
        "imbalanced training set; print one batch of predictions.",
        evidence,
    )
