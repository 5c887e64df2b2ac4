"""The first loss of a fresh K-way classifier should be about ln K (Karpathy, "A recipe for training
neural networks": verify the loss at init)."""
from __future__ import annotations

import math

import numpy as np

from nnprobe.diagnosis.checks._util import at, is_epoch_aggregate, r
from nnprobe.diagnosis.checks.registry import Flag, RunContext, register

FAR = 0.5  # |L0 - ln K| > 0.5 ln K: warn (REFERENCE.md, Karpathy's recipe)
AT_INIT_MAX_STEP = 1  # a loss logged after step 1 (one update) is not "at init": only the high side is judged


@register("init-loss", title="First loss near ln K", requires=("train_loss",), needs_num_classes=True,
          trusted_num_classes=True)
def init_loss(ctx: RunContext):
    """First train loss > 1.5 ln K (any step), or < 0.5 ln K when logged at init (step 0 or 1)."""
    series = ctx.roles["train_loss"]
    finite = np.flatnonzero(np.isfinite(series.values))
    if not finite.size:
        return
    first = int(finite[0])
    l0 = float(series.values[first])
    ln_k = math.log(ctx.num_classes)
    at_init = int(series.steps[first]) <= AT_INIT_MAX_STEP and not is_epoch_aggregate(series)
    evidence = {"series": series.name, **at(series, first), "first_loss": r(l0), "ln_k": r(ln_k),
                "num_classes": ctx.num_classes, "at_init": at_init}
    if l0 > ln_k + FAR * ln_k:
        yield Flag("warning", f"first loss {l0:.4g} is far above ln K = {ln_k:.4g} (K = {ctx.num_classes}).",
                   "A fresh classifier head should give ~uniform predictions: initialise the last layer "
                   "small (or zero), check that logits are not scaled up, that the loss is a mean (not a "
                   "sum) and that K is right.", evidence)
    elif at_init and l0 < ln_k - FAR * ln_k:
        yield Flag("warning", f"first loss {l0:.4g} at step {int(series.steps[first])} is far below ln K = "
                              f"{ln_k:.4g}: the model knows the answers before training.",
                   "Check for label leakage into the inputs, a head that was not re-initialised for this "
                   "task, or a loss that is not cross-entropy.", evidence)
