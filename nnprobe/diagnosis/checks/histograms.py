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
        + (f"; {len(dead) - 1} more layer(s) too." if len(dead) > 1 else "."),
        "Lower the learning rate (a large step can push biases far negative), check the initialisation "
        "(He/Kaiming for ReLU, biases not negative), normalise the inputs, or use LeakyReLU/GELU.",
        {"layer": tag, "zero_fraction": r(last[-1].zero_fraction), "step": last[-1].step,
         "layers": [t for t, _ in dead][:20]},
    )


@register("vanishing-gradients", title="Gradients reach the first layers")
def vanishing_gradients(ctx: RunContext):
    """The first layer's gradient RMS below 1e-3 of the last layer's, at the median over the steps both
    were logged (weights' gradients when they are named, else all)."""
    tags = _tags(ctx, "gradient")
    weights = [t for t in tags if {"weight", "weights", "kernel"} & set(NAME_SPLIT.split(t.lower()))]
    tags = weights if len(weights) >= 2 else tags
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
