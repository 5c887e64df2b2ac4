"""Accuracy that says the model learned nothing: chance level, or one class predicted for everything."""
from __future__ import annotations

import math

import numpy as np

from nnprobe.diagnosis.checks._util import aligned, at, epoch_label, finite_points, r
from nnprobe.diagnosis.checks.registry import Flag, RunContext, Skip, register
from nnprobe.diagnosis.resolution import count, denominator
from nnprobe.diagnosis.run import at_chance

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


COLLAPSE_RISE = 0.2  # K unknown: accuracy that rose >= 0.2 above its first evaluation ...
COLLAPSE_BACK = 0.1  # ... and ends within 10% of that rise of its first value has collapsed back


def confidence(ctx: RunContext) -> str:
    """How sure a verdict that rests on K is: high for K the user gave or a config file saved, medium for
    K inferred from two witnesses in the logs (a loss at ln K with the accuracy at 1/K)."""
    return "high" if ctx.num_classes_trusted else "medium"


@register("chance-accuracy", title="Validation accuracy above chance", requires=("val_acc",))
def chance_accuracy(ctx: RunContext):
    """Best and final validation accuracy must beat 1/K by a gain of 0.1 (Deepchecks). K unknown: an
    accuracy that rose and then fell back to its first evaluation has collapsed (K-free); else skipped."""
    series = ctx.roles["val_acc"]
    idx, values = finite_points(series)
    if not values.size:
        raise Skip(f"'{series.name}' has no finite value")
    _judge_after(ctx, series, int(idx[-1]))
    if ctx.num_classes is None:
        yield from _collapse(ctx, series, idx, values)
        return
    k = ctx.num_classes
    chance = 1.0 / k
    threshold = chance + MIN_GAIN * (1.0 - chance)
    best_i = int(idx[int(np.argmax(values))])
    best, final = float(values.max()), float(values[-1])
    evidence = {"series": series.name, "best": r(best), "best_at": at(series, best_i), "final": r(final),
                "median": r(float(np.median(values))),
                **at(series, int(idx[-1])), "chance": r(chance), "threshold": r(threshold), "num_classes": k,
                "num_classes_source": ctx.num_classes_source, "confidence": confidence(ctx),
                "method": f"median, best 3-evaluation mean and final accuracy against 1/K + {MIN_GAIN} x (1 - 1/K), "
                          f"K {ctx.num_classes_source}"}
    if at_chance(values, k):
        yield Flag("error", f"validation accuracy never rose above chance: median {float(np.median(values)):.4f}, "
                            f"best {best:.4f} ({epoch_label(series, best_i)}) vs chance 1/{k} = {chance:.4f} "
                            f"(K {ctx.num_classes_source}; {confidence(ctx)} confidence).", CHANCE_HINT, evidence)
    elif final <= threshold and not _loss_broken_at(ctx, int(series.steps[idx[-1]])):
        yield Flag("error", f"validation accuracy fell back to chance: final {final:.4f} vs chance "
                            f"1/{k} = {chance:.4f}, after a best of {best:.4f} "
                            f"({epoch_label(series, best_i)}) (K {ctx.num_classes_source}; {confidence(ctx)} "
                            f"confidence).", CHANCE_HINT, evidence)


CHANCE_HINT = ("Check that labels match their inputs (shuffled or misaligned labels give chance accuracy), "
               "that the model gets logits and the right targets, that the learning rate is not 0 and the "
               "optimizer holds the model's parameters, and that --num-classes is right.")


def _collapse(ctx: RunContext, series, idx: np.ndarray, values: np.ndarray):
    """K unknown: an accuracy that rose >= 0.2 above its first evaluation and ends within 10% of that rise
    of it (a schedule or a blow-up that undid the learning), unless a non-finite loss explains it."""
    if values.size < 5:
        raise Skip(f"number of classes unknown and only {values.size} evaluations: pass --num-classes K")
    first, best, final = float(values[0]), float(values.max()), float(values[-1])
    rise = best - first
    if rise < COLLAPSE_RISE or final > first + COLLAPSE_BACK * rise:
        raise Skip("number of classes unknown (not in a config file, not inferable from the losses) and the "
                   "accuracy did not collapse back to its first value: pass --num-classes K")
    if _loss_broken_at(ctx, int(series.steps[idx[-1]])):
        return
    best_i = int(idx[int(np.argmax(values))])
    evidence = {"series": series.name, "first": r(first), "best": r(best), "best_at": at(series, best_i),
                "final": r(final), **at(series, int(idx[-1])), "num_classes_source": "unknown",
                "confidence": "medium", "method": f"K-free: the accuracy rose by >= {COLLAPSE_RISE} and fell "
                                                  f"back to within {COLLAPSE_BACK:.0%} of that rise of its first "
                                                  f"value"}
    yield Flag("error", f"validation accuracy collapsed back to where it started: final {final:.4f}, first "
                        f"{first:.4f}, after a best of {best:.4f} ({epoch_label(series, best_i)}); K unknown, "
                        f"judged without it (medium confidence).",
               "A learning-rate schedule that rises at the end, a blow-up (check the loss and the gradient "
               "norm near the fall), or a data loader that changed mid-run; keep the best checkpoint.", evidence)


def _judge_after(ctx: RunContext, series, index: int) -> None:
    """Skip when the last evaluation is before 30% of the run, counted in epochs when the evaluation has
    one (Keras' TensorBoard logs epoch_* at step = epoch beside batch_* at step = batch with update_freq=N:
    the two counters must not be compared), else in steps."""
    epoch = series.epoch_at(index)
    if epoch is not None:
        epochs = [float(np.nanmax(s.epochs)) for s in ctx.series.values() if len(s) and np.isfinite(s.epochs).any()]
        last = max(epochs, default=0.0)
        if last > 0 and epoch < JUDGE_AFTER * last:
            raise Skip(f"last evaluation at epoch {epoch:g} is before 30% of the run ({last:g} epochs): too "
                       f"early to judge")
        return
    last = ctx.last_step
    if last > 0 and series.steps[index] < JUDGE_AFTER * last:
        raise Skip(f"last evaluation at step {int(series.steps[index])} is before 30% of the run "
                   f"({last} steps): too early to judge")


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


def _frozen_not_constant(acc: float, run: int, label: str, share: float, evidence: dict) -> Flag:
    return Flag("info", f"validation accuracy is exactly {acc:.4f} for the last {run} evaluations (from {label}), "
                        f"far above any plausible one-class share (<= {share:.4f}): training no longer changes "
                        f"the predictions, which is not a constant output.",
                "If training should still be improving, check the learning-rate schedule (decayed to ~0?) and "
                "early stopping.", evidence)


def _lr_frozen(lr, lo_step: int, hi_step: int) -> bool:
    """The learning rate was <= 1% of its peak over [lo_step, hi_step]: the model could not change."""
    if lr is None:
        return False
    lr_values = lr.values[np.isfinite(lr.values)]
    during = lr.values[(lr.steps >= lo_step) & (lr.steps <= hi_step)]
    return bool(lr_values.size and during.size and np.nanmax(during) <= LR_FROZEN * lr_values.max())


def _frozen_window(loss, is_val: bool, series, idx: np.ndarray, run: int) -> np.ndarray:
    """The loss over the evaluations where accuracy is frozen, and only those: validation loss at those
    steps; train loss as its mean over each evaluation interval inside the window (the interval that ends
    at the first frozen evaluation began before the freeze, so it is left out: the loss fell there)."""
    steps = series.steps[idx[-run:]]
    if is_val:
        in_window = (loss.steps >= steps[0]) & (loss.steps <= steps[-1])
        return loss.values[in_window] if in_window.any() else loss.values[-run:]
    return aligned(loss, steps)[1:] if run > 2 else aligned(loss, steps)


def _loss_witness(loss, is_val: bool, series, idx: np.ndarray, run: int, acc: float, evidence: dict) -> str | None:
    """The loss's words for a constant output, or None when the loss says otherwise: non-finite in the frozen
    window, or flat (and >= h(acc)) over its last >= 3 evaluations. Only the tail need be flat: a model that
    outputs one class still fits the class prior, so its loss may fall in the first frozen evaluations."""
    for evals in range(run, CONSTANT_EVALS - 1, -1):
        window = _frozen_window(loss, is_val, series, idx, evals)
        if not np.all(np.isfinite(window)):
            if evals < run:
                return None
            evidence.update(loss_series=loss.name, loss_mean="nan")
            return f" while '{loss.name}' is not finite (a NaN network's argmax is class 0)"
        mean = float(window.mean())
        spread = float((window.max() - window.min()) / max(abs(mean), 1e-12))
        floor = binary_entropy(acc)
        if spread <= FLAT_LOSS and mean >= ENTROPY_SLACK * floor:
            evidence.update(loss_series=loss.name, loss_mean=r(mean), loss_relative_range=r(spread),
                            entropy_floor=r(floor), loss_flat_evaluations=evals)
            return (f" while '{loss.name}' sits flat at {mean:.4f} over the last {evals} evaluations (>= "
                    f"{floor:.4f}, the least loss a constant output with this accuracy can have)")
    return None


FELL_BACK = 0.1  # a frozen accuracy >= 0.1 below the run's earlier best: the model lost what it had learned


def _never_changed(values: np.ndarray, run: int) -> str | None:
    """How a frozen accuracy above any balanced one-class share still shows a constant output, K-free: it
    never changed from the first evaluation (a model that learned nothing but the label prior: under class
    imbalance its accuracy is the majority share, whatever K), or it froze >= 0.1 below an earlier best
    (dead units after a blow-up). A model frozen by a decayed learning rate rose to its best first."""
    if run == values.size:
        return f"K-free: accuracy identical at every one of the {run} evaluations, with a flat loss"
    if float(values[:-run].max()) - float(values[-1]) >= FELL_BACK:
        return (f"K-free: accuracy froze {float(values[:-run].max()) - float(values[-1]):.4g} below its earlier "
                f"best, with a flat loss")
    return None


def _train_loss_stalled(ctx: RunContext, series, idx: np.ndarray, run: int) -> bool:
    """A constant output cannot fit the training data either: its train loss stays >= h(acc) (the least
    cross-entropy of a one-class output scoring `acc`; 0.8 of it, for a training prior a little off the
    validation one). A net that overfits drives its train loss far below that while its validation accuracy
    sits still (samples/corpus/*-overfit: 0.04 against h = 0.66). True when no train loss is logged."""
    train = ctx.roles.get("train_loss")
    if train is None or not len(train):
        return True
    means = aligned(train, series.steps[idx[-run:]])
    means = means[np.isfinite(means)]
    return not means.size or bool(means[-1] >= 0.8 * binary_entropy(float(series.values[idx[-1]])))


def _one_class_share(acc: float, k: int | None) -> float:
    """The largest accuracy that predicting one class plausibly scores: a class's share of the validation
    set. A set balanced within a factor of 2 gives shares <= 2/K; a single class holding more than half of
    the set (imbalanced binary-like data) is allowed for any K, so the bound is max(2/K, 0.5); K unknown:
    0.5. Above it a frozen accuracy is a model that stopped changing (decayed learning rate), not one that
    outputs a constant."""
    return max(2.0 / k, 0.5) if k else 0.5


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
    n_val = denominator(values)  # accuracies as multiples of 1/N: frozen = the same count of right images
    run = 1
    while run < values.size and (count(values[-1 - run], n_val) == count(values[-1], n_val) if n_val else
                                 abs(values[-1 - run] - values[-1]) <= 1e-7):
        run += 1
    acc = float(values[-1])
    if run < CONSTANT_EVALS or acc >= 0.999:
        return
    first = int(idx[-run])
    lo_step, hi_step = int(series.steps[first]), int(series.steps[idx[-1]])
    if _lr_frozen(ctx.roles.get("lr"), lo_step, hi_step):
        return
    loss = ctx.roles.get("val_loss") or ctx.roles.get("train_loss")
    evidence = {"series": series.name, "value": r(acc), "evaluations": run, "from": at(series, first)}
    resolution = ""
    if n_val:
        evidence.update(n_val=n_val, right=count(acc, n_val), resolution=r(1 / n_val))
        resolution = f" ({count(acc, n_val)}/{n_val}: every logged accuracy is a multiple of 1/{n_val})"
    if loss is None:
        if run < CONSTANT_EVALS_WITHOUT_LOSS:
            return
        loss_text = ""
    else:
        loss_text = _loss_witness(loss, loss is ctx.roles.get("val_loss"), series, idx, run, acc, evidence)
        if loss_text is None:
            return
        if ctx.num_classes and "loss_relative_range" in evidence:
            evidence["ln_k"] = r(math.log(ctx.num_classes))
    share = _one_class_share(acc, ctx.num_classes)
    evidence["largest_plausible_share"] = r(share)
    how = _never_changed(values, run) if _train_loss_stalled(ctx, series, idx, run) else None
    if acc > share and how is None:
        yield _frozen_not_constant(acc, run, epoch_label(series, first), share, evidence)
        return
    evidence["method"] = how or (f"accuracy frozen over {run} evaluations at <= the largest plausible one-class "
                                 f"share {share:.4g}" + (", with the loss flat at >= h(acc)" if loss_text else ""))
    evidence["confidence"] = "high" if acc <= share and loss_text else "medium"
    yield Flag(
        "error",
        f"validation accuracy is exactly {acc:.4f}{resolution} for the last {run} evaluations (from "
        f"{epoch_label(series, first)}){loss_text}: the model predicts the same class for every input "
        f"({evidence['confidence']} confidence).",
        "Look for inputs that carry no signal (all-zero or constant images, a normalisation that wipes "
        "the data, wrong tensor passed to the model), dead ReLUs after a too-high learning rate, or a very "
        "imbalanced training set; print one batch of predictions.",
        evidence,
    )
