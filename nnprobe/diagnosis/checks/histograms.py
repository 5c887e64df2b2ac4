"""Checks that need more than scalars: TensorBoard histograms of parameters, gradients and activations
(`SummaryWriter.add_histogram`), as SageMaker Debugger's built-in rules had them (dead ReLU, vanishing
gradient) plus a layer that never changes. Each histogram is reduced to its range, mean, root mean square
and share of exact zeros (readers.base.HistogramStats). A tag's kind comes from its name: `grad` marks a
gradient, `activation`/`relu`/`act`/`output` an activation, `weight`/`bias`/`kernel`/`param` a parameter;
layers are in the order of the numbers in their names when all have one (Sequential's `0.weight`, W&B's
`graph_12.weight`), else in the order their tags were first logged (a model's named_parameters order).
W&B histograms (wandb.watch(model, log="all")) are read the same way (readers/wandb.py)."""
from __future__ import annotations

import numpy as np

from nnprobe.diagnosis.checks._util import r
from nnprobe.diagnosis.checks.registry import Flag, RunContext, Skip, register
from nnprobe.diagnosis.roles import NAME_SPLIT

MIN_HISTOGRAMS = 3  # per tag: the checks judge a trend, not one snapshot
# SageMaker Debugger's DeadRelu rule flags a layer where > 50% of the units are active < 1% of the time;
# a histogram holds values, not units, so we ask >= 90% of all the layer's activations to be exactly 0 at
# each of its last 3 histograms (a healthy ReLU layer outputs ~40-60% zeros: the corpus' tb-hist-healthy).
DEAD_ZEROS = 0.9
# SageMaker's VanishingGradient rule: mean absolute gradient below 1e-7. Scale-free here: the first layer's
# gradient RMS below 1e-3 of the last layer's (three orders of magnitude) at the median histogram.
VANISHING_RATIO = 1e-3
_GRAD = {"grad", "grads", "gradient", "gradients"}
_ACT = {"activation", "activations", "act", "acts", "relu", "output", "outputs"}
_PARAM = {"weight", "weights", "bias", "biases", "kernel", "param", "params", "parameter", "parameters"}


def _kind(tag: str) -> str | None:
    tokens = {t for t in NAME_SPLIT.split(tag.lower()) if t}
    if tokens & _GRAD:
        return "gradient"
    if tokens & _ACT:
        return "activation"
    if tokens & _PARAM:
        return "parameter"
    return None


def _layer_order(tags: list[str]) -> list[str]:
    """Tags in layer order: by the numbers in their names when every tag has one (`0.weight`, `graph_12.bias`:
    W&B's hooks log gradients last layer first), else in the order they were first logged."""
    import re

    keys = [[int(n) for n in re.findall(r"\d+", tag)] for tag in tags]
    if all(keys):
        return [tag for _, tag in sorted(zip(keys, tags))]
    return tags


def _tags(ctx: RunContext, kind: str) -> list[str]:
    found = _layer_order([tag for tag, stats in ctx.histograms.items()
                          if _kind(tag) == kind and len(stats) >= MIN_HISTOGRAMS])
    if not found:
        raise Skip(f"no {kind} histograms with >= {MIN_HISTOGRAMS} steps (SummaryWriter.add_histogram of the "
                   f"model's {kind}s, tags naming them)")
    return found


def _more_layers(count: int) -> str:
    """The end of a finding's sentence about the first of `count` layers."""
    return f"; {count - 1} more layer(s) too." if count > 1 else "."


def _weight_gradients(ctx: RunContext) -> list[str]:
    """Gradient tags in layer order: the weights' when they are named, else all."""
    tags = _tags(ctx, "gradient")
    weights = [t for t in tags if {"weight", "weights", "kernel"} & set(NAME_SPLIT.split(t.lower()))]
    return weights if len(weights) >= 2 else tags


@register("frozen-layer", title="Every layer changes")
def frozen_layer(ctx: RunContext):
    """Parameter histograms identical at every step (range, mean and RMS) while other layers change: a
    layer frozen by mistake, or parameters missing from the optimizer."""
    tags = _tags(ctx, "parameter")
    if len(tags) < 2:
        raise Skip("needs >= 2 layers' parameter histograms to tell a frozen layer from a run that stopped")
    frozen = [tag for tag in tags if len({(s.min, s.max, s.mean, s.rms) for s in ctx.histograms[tag]}) == 1]
    if not frozen or len(frozen) == len(tags):
        return
    stats = ctx.histograms[frozen[0]]
    yield Flag(
        "warning",
        f"{len(frozen)} of {len(tags)} parameter tensors never changed from step {stats[0].step} to step "
        f"{stats[-1].step} while the others did: first '{frozen[0]}'.",
        "Check that these parameters are in the optimizer (optimizer = Adam(model.parameters()) after the "
        "model is complete; a layer added later is missing), that requires_grad is True, and that no "
        "torch.no_grad() or .detach() cuts them off; ignore if the layer is frozen on purpose.",
        {"frozen": frozen[:20], "tensors": len(tags), "fraction": r(len(frozen) / len(tags)),
         "from_step": stats[0].step, "to_step": stats[-1].step},
    )


@register("dead-relu", title="Activations are not all zero")
def dead_relu(ctx: RunContext):
    """Activation histograms with >= 90% exact zeros at each of their last 3 steps (dead ReLUs)."""
    dead = []
    for tag in _tags(ctx, "activation"):
        last = ctx.histograms[tag][-MIN_HISTOGRAMS:]
        if min(s.zero_fraction for s in last) >= DEAD_ZEROS:
            dead.append((tag, last))
    if not dead:
        return
    tag, last = dead[0]
    yield Flag(
        "warning",
        f"'{tag}' outputs exactly 0 for {last[-1].zero_fraction:.1%} of its values at step {last[-1].step} (and "
        f">= {DEAD_ZEROS:.0%} at its last {len(last)} histograms): its ReLUs are dead"
        + _more_layers(len(dead)),
        "Lower the learning rate (a large step can push biases far negative), check the initialisation "
        "(He/Kaiming for ReLU, biases not negative), normalise the inputs, or use LeakyReLU/GELU.",
        {"layer": tag, "zero_fraction": r(last[-1].zero_fraction), "step": last[-1].step,
         "layers": [t for t, _ in dead][:20]},
    )


@register("vanishing-gradients", title="Gradients reach the first layers")
def vanishing_gradients(ctx: RunContext):
    """The first layer's gradient RMS below 1e-3 of the last layer's, at the median over the steps both
    were logged (weights' gradients when they are named, else all)."""
    tags = _weight_gradients(ctx)
    if len(tags) < 2:
        raise Skip("needs >= 2 layers' gradient histograms")
    first, last = ctx.histograms[tags[0]], ctx.histograms[tags[-1]]
    last_at = {s.step: s.rms for s in last}
    ratios = [s.rms / last_at[s.step] for s in first if last_at.get(s.step, 0) > 0 and np.isfinite(s.rms)]
    if len(ratios) < MIN_HISTOGRAMS:
        raise Skip(f"the first and last layers' gradients share fewer than {MIN_HISTOGRAMS} steps")
    ratio = float(np.median(ratios))
    if ratio > VANISHING_RATIO:
        return
    yield Flag(
        "warning",
        f"gradients vanish: '{tags[0]}' has {ratio:.2g}x the gradient RMS of '{tags[-1]}' (median over "
        f"{len(ratios)} steps): the first layers barely learn.",
        "Use ReLU-family activations instead of sigmoid/tanh in deep stacks, add normalisation (BatchNorm/"
        "LayerNorm) or residual connections, and check the initialisation (Xavier/He).",
        {"first_layer": tags[0], "last_layer": tags[-1], "ratio": r(ratio), "steps": len(ratios)},
    )


# Exploding gradients: SageMaker Debugger's ExplodingTensor rule only fires on NaN/Inf, too late to act on;
# the scalar rule (REFERENCE: grad norm > 10x its rolling median, SageMaker/AUTOTRAINER) judges one norm. Here
# a layer's gradient RMS at or above 100x (two orders) its median over its first 3 histograms, before any
# histogram turns non-finite: growth by orders across steps, while the run can still be stopped.
EXPLODING_RATIO = 100.0


def _growth(stats: list) -> tuple[float, int, int, int | None] | None:
    """(largest RMS over the starting median, its index, the index where it first reached 100x, the step of
    the first non-finite histogram) over one tag's histograms before the first non-finite one; None when it
    never grows >= 100x."""
    finite = []
    broken = None
    for s in stats:
        if not np.isfinite((s.rms, s.min, s.max)).all():
            broken = s.step
            break
        finite.append(s)
    if len(finite) <= MIN_HISTOGRAMS:
        return None
    start = float(np.median([s.rms for s in finite[:MIN_HISTOGRAMS]]))
    if not start > 0:
        return None
    ratios = np.array([s.rms for s in finite]) / start
    peak = int(np.argmax(ratios))
    if ratios[peak] < EXPLODING_RATIO:
        return None
    return float(ratios[peak]), peak, int(np.argmax(ratios >= EXPLODING_RATIO)), broken


@register("exploding-gradients", title="Gradients do not grow by orders")
def exploding_gradients(ctx: RunContext):
    """A layer's gradient RMS >= 100x its median over its first 3 histograms, before any non-finite
    histogram (the growth that precedes a NaN)."""
    tags = _weight_gradients(ctx)
    grown = [(tag, *found) for tag in tags if (found := _growth(ctx.histograms[tag])) is not None]
    if not grown:
        return
    tag, ratio, peak, crossed, broken = max(grown, key=lambda g: g[1])
    stats = ctx.histograms[tag]
    yield Flag(
        "warning",
        f"gradients explode: '{tag}' grew to {ratio:.3g}x its starting RMS by step {stats[peak].step} (100x "
        f"first at step {stats[crossed].step})" + (f", before its gradients turned non-finite at step {broken}"
                                                   if broken is not None else "")
        + f"; {len(grown)} of {len(tags)} layers grew >= {EXPLODING_RATIO:g}x.",
        "Lower the learning rate (or stop its warmup/ramp earlier), clip gradients (clip_grad_norm_ to ~1), "
        "check the loss for a numerically unstable form (log of softmax) and the inputs for outliers.",
        {"layer": tag, "ratio": r(ratio), "step": stats[peak].step, "first_step_over": stats[crossed].step,
         "nonfinite_step": broken, "layers": [g[0] for g in grown][:20]},
    )


# Saturated tanh/sigmoid: SageMaker Debugger's SaturatedActivation rule flags a layer when >= 50%
# (threshold_layer) of its units' inputs are past the saturating bounds (tanh |x| >= 9.4999, sigmoid x <= -23
# or >= 17). Outputs are what is logged here, so a value counts as saturated within 5% of the output range
# from either bound (tanh |y| >= 0.9, where the derivative 1 - y^2 is below 0.19; sigmoid y <= 0.05 or >= 0.95),
# and a layer is saturated when >= 60% of its values are, at each of its last 3 histograms (above SageMaker's
# 50%: the corpus' healthy 3-layer tanh net, tb-hist-healthy-tanh, has 42% in its deepest layer; the saturated
# one, tb-hist-saturated, 95-100%).
SATURATED_SHARE = 0.6
_SIGMOID = {"sigmoid", "logistic"}


def _bounded(tag: str, stats: list) -> str | None:
    """'tanh' or 'sigmoid' when every histogram's values stay within that function's range (a sigmoid's
    smallest value is also above 0, unlike a ReLU's, unless the tag names it)."""
    if not all(np.isfinite((s.min, s.max)).all() for s in stats):
        return None
    if all(-1.0 <= s.min and s.max <= 1.0 for s in stats) and any(s.min < 0 for s in stats):
        return "tanh"
    named = bool(_SIGMOID & set(NAME_SPLIT.split(tag.lower())))
    if all(0.0 <= s.min and s.max <= 1.0 and (named or s.min > 0) for s in stats):
        return "sigmoid"
    return None


def _saturated_share(kind: str, s) -> float | None:
    if kind == "tanh":
        low, high = s.share_within(-1.0, -0.9), s.share_within(0.9, 1.0)
    else:
        low, high = s.share_within(0.0, 0.05), s.share_within(0.95, 1.0)
    return None if low is None else low + high


@register("saturated-activations", title="tanh/sigmoid activations are not saturated")
def saturated_activations(ctx: RunContext):
    """A tanh- or sigmoid-bounded activation histogram with >= 50% of its values within 5% of the range
    from either bound at each of its last 3 histograms."""
    bounded = [(tag, kind) for tag in _tags(ctx, "activation")
               if (kind := _bounded(tag, ctx.histograms[tag][-MIN_HISTOGRAMS:])) is not None]
    if not bounded:
        raise Skip("no activation histograms bounded like tanh ([-1, 1]) or sigmoid ([0, 1])")
    saturated = []
    for tag, kind in bounded:
        last = ctx.histograms[tag][-MIN_HISTOGRAMS:]
        shares = [_saturated_share(kind, s) for s in last]
        if None in shares:
            continue
        if min(shares) >= SATURATED_SHARE:
            saturated.append((tag, kind, shares[-1], last[-1].step))
    if not saturated:
        return
    tag, kind, share, step = max(saturated, key=lambda s: s[2])
    zone = "|y| >= 0.9" if kind == "tanh" else "y <= 0.05 or y >= 0.95"
    yield Flag(
        "warning",
        f"'{tag}' ({kind}-bounded) is saturated: {share:.1%} of its outputs at step {step} are at its bounds "
        f"({zone}), and >= {SATURATED_SHARE:.0%} at its last {MIN_HISTOGRAMS} histograms"
        + _more_layers(len(saturated)),
        "Normalise the inputs (zero mean, unit variance), use Xavier/Glorot initialisation for tanh/sigmoid, "
        "lower the learning rate, or add normalisation (BatchNorm/LayerNorm) before the activation; ReLU-family "
        "activations do not saturate for positive inputs.",
        {"layer": tag, "function": kind, "fraction": r(share), "step": step,
         "layers": [s[0] for s in saturated][:20]},
    )


# Poor initialisation: SageMaker Debugger's PoorWeightInitialization rule compares the variance of the
# activation inputs across layers and fires above a ratio of 10 (of variances). Here the hidden activations'
# RMS at the first histogram: the deepest layer's over the first's outside [1e-2, 1e2] (a variance ratio of
# 1e4), so that torch's default init of a few ReLU layers (RMS x ~0.4 a layer) passes while a scale that
# shrinks or grows by orders with depth does not.
INIT_RATIO = 100.0
INIT_LAYERS = 3


@register("poor-initialization", title="Activation scale holds with depth at the start")
def poor_initialization(ctx: RunContext):
    """At the first step activations were logged, the deepest hidden layer's activation RMS below 1/100 or
    above 100x the first hidden layer's (>= 3 layers): the initialisation shrinks or blows up the signal."""
    tags = _layer_order([tag for tag, stats in ctx.histograms.items() if _kind(tag) == "activation"])
    if len(tags) < INIT_LAYERS:
        raise Skip(f"needs activation histograms of >= {INIT_LAYERS} layers (forward hooks or the layers' "
                   f"outputs, SummaryWriter.add_histogram)")
    step = min(ctx.histograms[tag][0].step for tag in tags)
    at = {tag: next((s for s in ctx.histograms[tag] if s.step == step), None) for tag in tags}
    tags = [tag for tag in tags if at[tag] is not None and np.isfinite(at[tag].rms)]
    if len(tags) < INIT_LAYERS:
        raise Skip(f"fewer than {INIT_LAYERS} layers' activations were logged at the first step ({step})")
    first, deepest = at[tags[0]].rms, at[tags[-1]].rms
    ratio = deepest / first if first > 0 else float("inf")
    if 1 / INIT_RATIO <= ratio <= INIT_RATIO:
        return
    way = "collapses" if ratio < 1 else "explodes"
    yield Flag(
        "warning",
        f"poor initialisation: at step {step} the activation scale {way} with depth, '{tags[-1]}' has "
        f"{ratio:.2g}x the RMS of '{tags[0]}' ({len(tags)} layers).",
        "Initialise for the activation: He/Kaiming (kaiming_normal_, nonlinearity='relu') for ReLU, Xavier/"
        "Glorot for tanh/sigmoid; avoid a fixed small std such as normal_(0, 0.01) in deep stacks; or add "
        "normalisation layers.",
        {"step": step, "first_layer": tags[0], "last_layer": tags[-1], "ratio": r(ratio),
         "rms": {tag: r(at[tag].rms) for tag in tags}},
    )
