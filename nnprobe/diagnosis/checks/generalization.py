"""Validation that disagrees with training: overfitting (gap and rising validation loss) and the reverse,
validation far above training, which points to leakage."""
from __future__ import annotations

import numpy as np

from nnprobe.diagnosis.checks._util import aligned, at, epoch_label, r
from nnprobe.diagnosis.run import at_chance
from nnprobe.diagnosis.checks.registry import Flag, RunContext, Skip, register

# AUTOTRAINER: accuracy gap train - val >= 0.10, or >= 0.07 once train accuracy is above 0.9.
ACC_GAP = 0.10
ACC_GAP_HIGH_TRAIN = 0.07
HIGH_TRAIN = 0.9
# SageMaker Debugger's overfit rule: (val - train) / train loss ratio above 0.1; we also ask each of the
# last 3 validation losses to sit 10% above the minimum, so noise around a flat minimum is not "rising"
# (a small loss on 360 images wanders +-15% around its minimum: samples/corpus/jsonl-healthy-resumed).
LOSS_RATIO = 0.1
# A validation loss that doubled from its minimum while the train loss fell is overfitting on its own,
# whatever the accuracy gap: 10x the 10% margin above, and a doubled cross-entropy means the probability
# given to the right class was squared (exp(-2L) = exp(-L)^2), i.e. confidently wrong predictions.
LOSS_DOUBLED = 2.0
# Lightning EarlyStopping's usual patience: 3 evaluations without improvement.
PATIENCE = 3
# UMLAUT: validation accuracy more than 5 points above training accuracy from epoch 3 on. An info, not a
# warning: label noise in the training set gives the same picture (train accuracy is measured on the noisy
# labels, validation on clean ones): the corpus' healthy 20%-noise runs of every logger show gaps of
# 0.12-0.18, more than leakage typically does, and the logs cannot tell the two apart.
LEAK_GAP = 0.05
LEAK_FROM_EVAL = 2  # 0-based: the third evaluation
LEAK_SHARE = 0.5  # in at least half of those evaluations, and at the last one


@register("overfitting", title="No overfitting", any_of=("val_loss", "val_acc"))
def overfitting(ctx: RunContext):
    """Error when validation loss rises for >= 3 evaluations after its minimum (to >= 1.1x it) while the
    train loss keeps falling AND the generalisation gap is large, or the rise reaches 2x the minimum;
    warning for a smaller rise alone; info for a large accuracy gap alone. Names the best epoch to stop at."""
    val_loss, train_loss = ctx.roles.get("val_loss"), ctx.roles.get("train_loss")
    val_acc, train_acc = ctx.roles.get("val_acc"), ctx.roles.get("train_acc")
    if not ((val_loss is not None and train_loss is not None) or (val_acc is not None and train_acc is not None)):
        raise Skip("needs train_loss with val_loss, or train_acc with val_acc")
    why = _not_a_learner(ctx)
    if why:
        raise Skip(why)
    evidence: dict = {}
    rising, loss_gap, best_label = False, False, None
    if val_loss is not None and train_loss is not None:
        rising, loss_gap, best_label = _loss_overfit(val_loss, train_loss, evidence)
    acc_gap = None
    if val_acc is not None and train_acc is not None:
        acc_gap, best_label = _acc_gap(val_acc, train_acc, evidence, best_label)
    gap_present = acc_gap if acc_gap is not None else loss_gap
    yield from _overfitting_flags(rising, gap_present, acc_gap, loss_gap, best_label, evidence)


def _not_a_learner(ctx: RunContext) -> str | None:
    """Why a rising validation loss in this run is not overfitting: the run never learned (its validation
    accuracy never beat chance for a known K: a net memorising shuffled labels) or its loss diverged (a
    validation loss rising after a blow-up). The chance-accuracy and divergence errors say what it is."""
    from nnprobe.diagnosis.checks.dynamics import diverged

    acc = ctx.roles.get("val_acc")
    if ctx.num_classes is not None and acc is not None and np.isfinite(acc.values).any():
        values = acc.values[np.isfinite(acc.values)]
        if at_chance(values, ctx.num_classes):
            return (f"not judged: the validation accuracy never beat chance (median {float(np.median(values)):.4f}, "
                    f"K {ctx.num_classes_source}), so a rising validation loss is no overfitting (see chance-accuracy)")
    if (message := diverged(ctx)) is not None:
        return f"not judged: the loss diverged ({message}), so a rising validation loss is no overfitting"
    return None


def _loss_overfit(val_loss, train_loss, evidence: dict) -> tuple[bool, bool, str | None]:
    """(validation loss rising after its minimum, val/train loss gap large, label of the best evaluation),
    adding the loss evidence; with fewer than PATIENCE + 1 finite evaluations a rise cannot be told."""
    mask = np.isfinite(val_loss.values)
    idx = np.flatnonzero(mask)
    if idx.size < PATIENCE + 1:
        return False, False, None
    values = val_loss.values[idx]
    k = int(np.argmin(values))
    best = int(idx[k])
    best_label = epoch_label(val_loss, best)
    train_at = aligned(train_loss, val_loss.steps[idx])
    after = idx.size - 1 - k
    rising = (after >= PATIENCE and values[-PATIENCE:].min() >= (1 + LOSS_RATIO) * values[k]
              and np.isfinite(train_at[-1]) and np.isfinite(train_at[k]) and train_at[-1] < train_at[k])
    ratio = (values[-1] - train_at[-1]) / train_at[-1] if train_at[-1] > 0 else np.nan
    evidence.update(val_series=val_loss.name, best_val_loss=r(values[k]), best_at=at(val_loss, best),
                    final_val_loss=r(values[-1]), evaluations_since_best=after,
                    train_loss_at_best=r(train_at[k]), final_train_loss=r(train_at[-1]),
                    loss_gap_ratio=r(ratio))
    return rising, bool(np.isfinite(ratio) and ratio > LOSS_RATIO), best_label


def _acc_gap(val_acc, train_acc, evidence: dict, best_label: str | None) -> tuple[bool | None, str | None]:
    """(final train - val accuracy gap over its threshold, or None with no finite evaluation; best label),
    adding the accuracy evidence; the best accuracy names the stop epoch only when the loss could not."""
    idx = np.flatnonzero(np.isfinite(val_acc.values))
    if not idx.size:
        return None, best_label
    train_at = aligned(train_acc, val_acc.steps[idx])
    gap = train_at[-1] - val_acc.values[idx[-1]]
    limit = ACC_GAP_HIGH_TRAIN if train_at[-1] > HIGH_TRAIN else ACC_GAP
    evidence.update(final_train_acc=r(train_at[-1]), final_val_acc=r(val_acc.values[idx[-1]]),
                    acc_gap=r(gap), acc_gap_threshold=limit)
    if best_label is None:
        best_label = epoch_label(val_acc, int(idx[int(np.argmax(val_acc.values[idx]))]))
    return bool(np.isfinite(gap) and gap >= limit), best_label


def _overfitting_flags(rising: bool, gap_present, acc_gap, loss_gap: bool, best_label, evidence: dict):
    """The one flag the evidence earns (error for a rise with a gap, warning for the rise, info for the
    gap alone), each with the same early-stopping hint."""
    stop = f"Stop at {best_label} (the best validation loss)" if best_label else "Stop earlier"
    hint = (f"{stop}: EarlyStopping(monitor='val_loss', patience=3) with restore_best_weights / "
            f"ModelCheckpoint on val_loss; add augmentation, weight decay or dropout, or use more data.")
    doubled = rising and evidence["final_val_loss"] >= LOSS_DOUBLED * evidence["best_val_loss"] > 0
    if rising and (gap_present or doubled):
        yield Flag("error", f"overfitting: validation loss rose for {evidence['evaluations_since_best']} "
                            f"evaluations after its minimum {evidence['best_val_loss']} ({best_label}) to "
                            f"{evidence['final_val_loss']} while the train loss kept falling"
                   + (f"; train/val accuracy gap {evidence['acc_gap']}" if acc_gap else
                      f"; val/train loss gap {evidence['loss_gap_ratio']:.0%}" if loss_gap and gap_present else
                      f"; {evidence['final_val_loss'] / evidence['best_val_loss']:.1f}x its minimum") + ".",
                   hint, evidence)
    elif rising:
        yield Flag("warning", f"validation loss rose for {evidence['evaluations_since_best']} evaluations "
                              f"after its minimum ({best_label}) while the train loss kept falling.",
                   hint, evidence)
    elif acc_gap:
        yield Flag("info", f"train accuracy is {evidence['acc_gap']} above validation accuracy at the end "
                           f"(threshold {evidence['acc_gap_threshold']}), though validation loss is not rising.",
                   hint, evidence)


@register("val-above-train", title="Validation not above training", requires=("train_acc", "val_acc"))
def val_above_train(ctx: RunContext):
    """Validation accuracy more than 5 points above training accuracy from the third evaluation on, in
    most evaluations and at the last (UMLAUT): validation data may be in the training set."""
    val, train = ctx.roles["val_acc"], ctx.roles["train_acc"]
    idx = np.flatnonzero(np.isfinite(val.values))
    if idx.size <= LEAK_FROM_EVAL:
        raise Skip(f"needs > {LEAK_FROM_EVAL} evaluations of '{val.name}', got {idx.size}")
    train_at = aligned(train, val.steps[idx])
    gap = val.values[idx] - train_at
    judged = gap[LEAK_FROM_EVAL:]
    above = np.isfinite(judged) & (judged > LEAK_GAP)
    if above.mean() >= LEAK_SHARE and above[-1]:
        yield Flag(
            "info",
            f"validation accuracy is above training accuracy by more than {LEAK_GAP} in {int(above.sum())} of "
            f"{judged.size} evaluations from the third on (last gap {gap[-1]:.3f}).",
            "Check that validation images are not also in the training set (duplicates, leakage through "
            "file names or preprocessing), and that train accuracy is measured the same way (dropout and "
            "heavy augmentation lower it by a few points; more is suspicious).",
            {"val_series": val.name, "train_series": train.name, "evaluations": int(judged.size),
             "above": int(above.sum()), "last_gap": r(gap[-1]), "max_gap": r(np.nanmax(judged)),
             **at(val, int(idx[-1]))},
        )
