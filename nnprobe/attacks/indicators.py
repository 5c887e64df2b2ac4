"""Two of Pintor et al. 2022's indicators of attack failure ("Indicators of Attack Failure: Debugging and
Improving Optimization of Adversarial Examples", NeurIPS 2022), read from the main attack's own loss
trajectory on the probe's samples (the first `sanity.SUBSET` a process sees), at the largest budget:

- `silent-success`: an iterate fooled the model but the last one does not. `robust` counts a sample as
  fooled at its first fooling iterate, so its numbers keep these; an attack that returns its last iterate
  (torchattacks, ART, foolbox's PGD) reports them robust. It also says the step overshoots: the loss
  oscillates around the boundary instead of settling past it;
- `incomplete-optimisation`: a sample never fooled whose loss still rose over the last fifth of the
  steps by more than `STILL_RISING` of its whole rise (the attack stopped before its loss settled), and
  which the same attack with `LONGER` times the steps, from the same start, does fool: the attack
  stopped too early, and the reported robust accuracy is overstated. (A rising loss alone is common for a
  short PGD on an honest model that more steps do not break; only the longer run's verdict is evidence.)

One extra run of the main attack (same instance, seed and sample ids, so the same random start) with the
last iterate returned and every step's logits recorded: `steps + 1` forwards and `steps` backward passes
over at most `SUBSET` samples; then, for the samples whose loss still rose, one run with `LONGER` times
the steps. Attacks that are not a plain iteration of the base class (APGD, FAB, Square,
AutoAttack: their own loops, restarts and step rules) and one-step attacks are not checked (counted as such).
"""
from __future__ import annotations

import torch

from nnprobe.attacks.base import Attack, build
from nnprobe.attacks.masking import _warning

COUNTS = ("trajectory_checked", "silent_success", "incomplete")
LATE = 0.2  # the last fifth of the steps
STILL_RISING = 0.1  # share of the loss's whole rise that came in the last fifth: not converged
MIN_STEPS = 5
LONGER = 5  # the confirming run's steps, as a multiple of the attack's (its step size kept)


def checkable(attack) -> bool:
    """A plain base-class iteration with enough steps to have a last fifth, at a budget above 0."""
    return (isinstance(attack, Attack) and type(attack)._run is Attack._run and attack.iterative
            and attack.steps >= MIN_STEPS and attack.eps > 0)


def trajectory(attack, classifier, xs: torch.Tensor, ys: torch.Tensor, ids: torch.Tensor, right: torch.Tensor,
               autocast) -> dict[str, torch.Tensor]:
    """Per sample flags over xs (bool tensors): checked, silent success, incomplete optimisation."""
    flags = {name: torch.zeros_like(right) for name in COUNTS}
    if not checkable(attack) or not right.any():
        return flags
    calls: list[torch.Tensor] = []

    def recorded(x):
        out = classifier(x)
        calls.append(out.detach().float())
        return out

    chosen = right.nonzero().flatten()
    labels = ys[chosen]
    attack._run(recorded, xs[chosen], labels, False, False, False, autocast, None, ids[chosen.cpu()])
    losses = torch.stack([torch.nn.functional.cross_entropy(c, labels, reduction="none") for c in calls])
    fooled = torch.stack([c.argmax(1) != labels for c in calls])
    late = max(1, round(attack.steps * LATE))
    rise = losses[-1] - losses[0]
    still = (losses[-1] - losses[-1 - late]) > STILL_RISING * rise.clamp_min(0)
    finite = torch.isfinite(losses).all(dim=0)
    flags["trajectory_checked"][chosen] = True
    flags["silent_success"][chosen] = fooled[:-1].any(dim=0) & ~fooled[-1]
    rising = ~fooled.any(dim=0) & (rise > 0) & still & finite
    if rising.any():
        longer = build(attack.id, attack.eps, steps=attack.steps * LONGER, step_size=attack.step_size,
                       random_start=attack.random_start, seed=attack.seed)
        picked = chosen[rising]
        out = longer._run(classifier, xs[picked], ys[picked], False, True, True, autocast, None, ids[picked.cpu()])
        flags["incomplete"][picked] = out.success
    return flags


# a confirmed incomplete optimisation must exceed this share of the checked samples (and one sample): a few
# samples that a five times longer run fools are what any short fixed-step PGD leaves on an honest model
# (measured at 8/255 with PGD-10: 1 of 16 on the tiny net, 2 of 16 behind a differentiable blur), while an
# attack that cannot reach its budget (PGD at 8/255 with 0.4/255 steps) leaves 12 of 16; the same idea as
# AutoAttack's checks.py allowing Square a 0.2% margin. The counts are in the evidence whether or not it fires.
INCOMPLETE_MARGIN = 0.25


def findings(m: dict, examples: dict) -> list:
    """The indicators' findings from the summed counts `m` (keys: COUNTS) and example ids per check."""
    found = []
    checked = m["trajectory_checked"]
    if m["silent_success"]:
        found.append(_warning(
            "silent-success",
            f"For {m['silent_success']} of {checked} checked samples an iterate of the attack fooled the model but "
            "its last iterate does not (Pintor et al. 2022, silent success): nnprobe counts them fooled, an attack "
            "that returns its last iterate would report them robust.",
            "The step overshoots the boundary and the loss oscillates: use a smaller or adaptive step (APGD, "
            "--attack apgd-ce or autoattack), and count any fooling iterate when comparing with other tools.",
            "autoattack", checked=checked, silent=m["silent_success"],
            sample_ids=examples.get("silent-success", [])))
    if m["incomplete"] > max(1, INCOMPLETE_MARGIN * checked):
        found.append(_warning(
            "incomplete-optimisation",
            f"For {m['incomplete']} of {checked} checked samples the attack's loss was still rising over its last "
            f"fifth of steps and the same attack with {LONGER}x the steps, from the same start, fools them "
            "(Pintor et al. 2022, incomplete optimisation): robust accuracy is overstated.",
            "The attack stopped before it converged: rerun with more --steps (or APGD's adaptive step, --attack "
            "apgd-ce / autoattack).", "more-steps", checked=checked, confirmed=m["incomplete"],
            longer_steps_factor=LONGER, sample_ids=examples.get("incomplete-optimisation", [])))
    return found
