"""The shape of the curves: divergence, plateau (no learning), spikes, oscillation."""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nnprobe.diagnosis.checks._util import at, finite_points, r, where_text
from nnprobe.diagnosis.checks.registry import Flag, RunContext, Skip, register

# AUTOTRAINER / Lightning's divergence_threshold: loss >= 1e3, or > 3x the first logged loss (an error:
# both stop training there). We compare medians of the first and last 10% of points (at most 10) so that
# one spike is not a divergence.
DIVERGE_FACTOR = 3.0
DIVERGE_ABSOLUTE = 1e3
# A cross-entropy that ends far above ln K (the loss of a uniform guess) after a blow-up is a diverged
# model even when the loss came down from it: > 10x ln K (an order of magnitude). A blow-up
# is a peak >= 1e6: a sum-reduced cross-entropy at init is batch x ln K, < 1e5 for any usual batch, so a
# healthy loss with reduction='sum' is not taken for one. With K unknown, ln 1000 (ImageNet-1k) stands in.
CHANCE_FACTOR = 10.0
BLOWUP = 1e6
UNKNOWN_LN_K = 6.907755  # ln 1000
# AUTOTRAINER's plateau: max change of accuracy < delta = 0.01 while best accuracy < theta = 0.7;
# for the loss: < 1% improvement from start to end.
PLATEAU_DELTA = 0.01
PLATEAU_THETA = 0.7
PLATEAU_LOSS = 0.01
# W&B's alert filter: robust z-score >= 3 over a 30-point window. Per-batch losses are heavy-tailed (one
# misclassified example moves a small loss a lot), so a spike must also be >= 2x the window median and jump
# by >= 25% of the loss scale of the run (its 90th percentile, i.e. roughly its early level).
SPIKE_WINDOW = 30
SPIKE_Z = 3.0
SPIKE_RATIO = 2.0
SPIKE_JUMP = 0.25
# Calibrated on the corpus (samples/corpus, 57 healthy runs of 9 loggers): healthy per-batch losses have
# isolated points up to 4.8x their window median (a small late loss, one misclassified example) and, at
# batch 8 with 20% label noise, stretches up to 3.6x; a corrupt data block and a diverging learning rate
# reach 7.5-97x. So a warning needs an episode (consecutive spikes) peaking >= 5x the median, and a lone
# spike must also jump by >= the run's loss scale (90th percentile).
SPIKE_PEAK = 5.0
SPIKE_LONE_JUMP = 1.0
# AUTOTRAINER's oscillation: accuracy turns up/down by >= 0.03 at >= 20% of the evaluations.
OSC_AMPLITUDE = 0.03
OSC_SHARE = 0.2
OSC_MIN_EVALS = 5


def _ends(values: np.ndarray) -> tuple[float, float, int]:
    k = max(1, min(10, values.size // 10))
    return float(np.median(values[:k])), float(np.median(values[-k:])), k


@register("divergence", title="Loss does not diverge", any_of=("train_loss", "val_loss"))
def divergence(ctx: RunContext):
    """Error for a loss that ends > 3x where it started or >= 1e3 (AUTOTRAINER, Lightning), or that blew up
    (peak >= 1e6) and ends > 10x ln K, the loss of a uniform guess; a loss that starts <= 0 and rises by
    > 1 is a warning."""
    series = ctx.roles.get("train_loss") or ctx.roles["val_loss"]
    idx, values = finite_points(series)
    if values.size < 3:
        raise Skip(f"needs >= 3 finite points of '{series.name}', got {values.size}")
    flag = _diverged(ctx, series, idx, values)
    if flag is not None:
        yield flag


def diverged(ctx: RunContext) -> str | None:
    """Why the run's loss diverged (the divergence error's message), or None: for checks whose verdict a
    diverged run would fool (a validation loss rising after a blow-up is not overfitting)."""
    series = ctx.roles.get("train_loss") or ctx.roles.get("val_loss")
    if series is None:
        return None
    idx, values = finite_points(series)
    flag = _diverged(ctx, series, idx, values) if values.size >= 3 else None
    return flag.message if flag is not None and flag.severity == "error" else None


def _diverged(ctx: RunContext, series, idx: np.ndarray, values: np.ndarray) -> Flag | None:
    start, end, k = _ends(values)
    peak = int(idx[int(np.argmax(values))])
    grew = end > DIVERGE_FACTOR * start if start > 0 else end > start + 1.0
    ln_k = math.log(ctx.num_classes) if ctx.num_classes else UNKNOWN_LN_K
    above_chance = end > CHANCE_FACTOR * ln_k and values.max() >= BLOWUP
    if not (grew or end >= DIVERGE_ABSOLUTE or above_chance):
        return None
    chance_text = (f", {end / ln_k:.0f}x the loss of a uniform guess (ln K = {ln_k:.4g}"
                   f"{'' if ctx.num_classes else ', K unknown: ln 1000'})" if above_chance else "")
    return Flag(
        "error" if start > 0 or end >= DIVERGE_ABSOLUTE or above_chance else "warning",
        f"'{series.name}' diverged: it ends at {end:.4g} (median of the last {k} points) after starting at "
        f"{start:.4g}{chance_text}; highest {series.values[peak]:.4g} at {where_text(series, peak)}.",
        "Lower the learning rate (try 10x lower) or add warmup, clip gradients, and check that the "
        "optimizer minimises the loss (sign) and that the schedule does not raise the LR.",
        {"series": series.name, "start": r(start), "end": r(end), "ratio": r(end / start) if start > 0 else None,
         "peak": r(series.values[peak]), "peak_at": at(series, peak), "ln_k": r(ln_k)},
    )


@register("plateau", title="Training makes progress", any_of=("train_loss", "val_acc", "train_acc"))
def plateau(ctx: RunContext):
    """No learning: accuracy moves < 0.01 over the run while below 0.7, or the train loss changes < 1%
    from start to end (a loss that rises is the divergence check's business)."""
    acc = ctx.roles.get("val_acc") or ctx.roles.get("train_acc")
    if acc is not None:
        _, values = finite_points(acc)
        if values.size >= 3 and values.max() - values.min() < PLATEAU_DELTA and values.max() < PLATEAU_THETA:
            yield Flag(
                "warning",
                f"'{acc.name}' stays between {values.min():.4f} and {values.max():.4f} over {values.size} "
                f"evaluations: no learning.",
                "Raise the learning rate or check it is not 0, check that the optimizer holds the model's "
                "parameters and that zero_grad/backward/step run in order, and normalise the inputs.",
                {"series": acc.name, "min": r(values.min()), "max": r(values.max()), "evaluations": int(values.size)},
            )
            return
    loss = ctx.roles.get("train_loss")
    if loss is None:
        return
    _, values = finite_points(loss)
    if values.size < 5:
        return
    start, end, k = _ends(values)
    if start > 0 and abs(start - end) / start < PLATEAU_LOSS:
        yield Flag(
            "warning",
            f"'{loss.name}' did not decrease: {start:.4g} at the start, {end:.4g} at the end (medians of {k} "
            f"points).",
            "Raise the learning rate or check it is not 0, check that gradients reach the weights "
            "(requires_grad, the optimizer's parameter list, zero_grad/backward/step order).",
            {"series": loss.name, "start": r(start), "end": r(end), "improvement": r((start - end) / start)},
        )


@register("spikes", title="No loss spikes", requires=("train_loss",))
def spikes(ctx: RunContext):
    """Points far above the preceding 30-point window (robust z >= 3, >= 2x the median, and a jump of
    >= 25% of the run's loss scale), warned about when they form an episode peaking >= 5x the median (or a
    lone spike >= 5x that jumps by the whole loss scale): see SPIKE_PEAK."""
    series = ctx.roles["train_loss"]
    idx, values = finite_points(series)
    if values.size <= SPIKE_WINDOW:
        raise Skip(f"needs > {SPIKE_WINDOW} finite points of '{series.name}', got {values.size}")
    windows = sliding_window_view(values[:-1], SPIKE_WINDOW)  # window i precedes point i + SPIKE_WINDOW
    level = float(np.percentile(values, 90))
    # median >= min, so a point under 2x its window's min, or less than the jump above it, is no spike:
    # medians only where that cheap bound allows one (exact; 30x less work on a 200k-point loss)
    low = windows.min(axis=1)
    cand = np.flatnonzero((values[SPIKE_WINDOW:] >= SPIKE_RATIO * low)
                          & (values[SPIKE_WINDOW:] - low >= SPIKE_JUMP * abs(level)))
    median = np.full(low.size, np.nan)
    median[cand] = np.median(windows[cand], axis=1)
    mad = np.median(np.abs(windows[cand] - median[cand, None]), axis=1) * 1.4826
    current = values[SPIKE_WINDOW:]
    c, m = current[cand], median[cand]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(mad > 0, (c - m) / mad, np.where(c > m, np.inf, 0.0))
    hit = (z >= SPIKE_Z) & (c >= SPIKE_RATIO * m) & (c - m >= SPIKE_JUMP * abs(level))
    positions = cand[hit]
    if not positions.size or not _episode(positions, c[hit] / m[hit], (c[hit] - m[hit]) / max(abs(level), 1e-12)):
        return
    first = int(idx[positions[0] + SPIKE_WINDOW])
    worst = int(positions[np.argmax(current[positions] / np.maximum(median[positions], 1e-12))])
    yield Flag(
        "warning",
        f"'{series.name}' has {positions.size} spike(s); the first at {where_text(series, first)}: "
        f"{series.values[first]:.4g} against a recent median of {median[positions[0]]:.4g}.",
        "Look at the batches at those steps (corrupt images or labels), lower the learning rate or add "
        "warmup, clip gradients, and check fp16 overflow.",
        {"series": series.name, "count": int(positions.size), **at(series, first),
         "value": r(series.values[first]), "window_median": r(median[positions[0]]),
         "worst_value": r(current[worst]), "worst_at": at(series, int(idx[worst + SPIKE_WINDOW])),
         "steps": [int(series.steps[idx[p + SPIKE_WINDOW]]) for p in positions[:10]]},
    )


def _episode(positions: np.ndarray, ratios: np.ndarray, jumps: np.ndarray) -> bool:
    """Whether the spikes at `positions` hold one worth a warning: consecutive spikes peaking >= 5x their
    window median, or a lone spike >= 5x that also jumps by >= the run's loss scale (see SPIKE_PEAK)."""
    starts = np.flatnonzero(np.diff(positions, prepend=positions[0] - 2) != 1)
    for begin, end in zip(starts, np.append(starts[1:], positions.size)):
        peak = int(begin + np.argmax(ratios[begin:end]))
        if ratios[peak] >= SPIKE_PEAK and (end - begin >= 2 or jumps[peak] >= SPIKE_LONE_JUMP):
            return True
    return False


@register("oscillation", title="Accuracy does not oscillate", requires=("val_acc",))
def oscillation(ctx: RunContext):
    """Validation accuracy that turns up/down by >= 0.03 at >= 20% of the evaluations (AUTOTRAINER)."""
    series = ctx.roles["val_acc"]
    idx, values = finite_points(series)
    if values.size < OSC_MIN_EVALS:
        raise Skip(f"needs >= {OSC_MIN_EVALS} evaluations of '{series.name}', got {values.size}")
    d = np.diff(values)
    turns = (d[:-1] * d[1:] < 0) & (np.minimum(np.abs(d[:-1]), np.abs(d[1:])) >= OSC_AMPLITUDE)
    count = int(turns.sum())
    if count >= 2 and count >= OSC_SHARE * values.size:
        first = int(idx[int(np.flatnonzero(turns)[0]) + 1])
        yield Flag(
            "warning",
            f"'{series.name}' swings up and down by >= {OSC_AMPLITUDE} at {count} of {values.size} "
            f"evaluations (first at {where_text(series, first)}).",
            "Lower the learning rate or decay it, raise the batch size; if the validation set is small, "
            "its accuracy is noisy (std ~ sqrt(p(1-p)/N)): use more images.",
            {"series": series.name, "turns": count, "evaluations": int(values.size), **at(series, first),
             "max_swing": r(np.abs(d).max())},
        )
