"""Gradient-masking checks beyond AutoAttack's `checks.py`: the classes a planted-defense study found the
original six checks miss (Athalye et al. 2018; Carlini et al. 2019; Pintor et al. 2022, "Indicators of
Attack Failure"). Each runs on the first `SUBSET` samples a process sees (the probe's model-level pass):

- `inconsistent-gradients`: two backward passes at the same input whose gradients disagree (cosine below
  `CONSISTENCY_MIN`): a backward that returns noise, or a forward that is randomised;
- `gradients-vanish-after-move`: gradients that are non-zero at the clean image and all-zero at a random
  point of the budget's ball around it (a detector that stops gradients once the input moved; the clean-
  only zero-gradient check cannot see it);
- `unconstrained-attack-fails`: Pintor et al.'s unconstrained-attack indicator: with no budget at all
  (the whole pixel cube, L∞ eps 1; L2 the cube's diagonal) a working gradient attack fools every sample;
  a gradient of the wrong sign (a straight-through estimator pointing backwards), a noise gradient or a
  saturated loss does not;
- `half-precision-disagrees` (free): under bf16/fp16 the robust pass already judges each adversarial
  image again in fp32; survivors that fp32 sees fooled mean the half-precision verdict masked them.

Every finding names the follow-up that gets past it (`follow_up`: eot, square, log-probabilities,
transfer, fp32), and `robust(..., adaptive=True)` (`--adaptive`) runs it (`adaptive.py`).
"""
from __future__ import annotations

import math

import torch

from nnprobe.attacks.base import SampleRandom, frozen, objective_gradient
from nnprobe.attacks.results import RobustFinding
from nnprobe.results import format_eps

CONSISTENCY_MIN = 0.9  # cosine of two gradients at the same input; deterministic backward passes give 1
UNCONSTRAINED_STEPS = 25  # PGD steps of the unconstrained attack (no random start: it must follow the gradient)
# small steps: with steps of an eighth of the cube, even a gradient of the wrong sign wrecks the image and
# fools a large model (measured on EfficientNet-Lite0); 4/255 steps only get far by following the gradient
UNCONSTRAINED_STEP = {"linf": 4 / 255, "l2": 0.5}
MOVE_SEED_OFFSET = 7_919  # the moved points' draws differ from the attack's and the noise check's
COUNTS = ("consistency_checked", "inconsistent", "moved_checked", "moved_zero", "unconstrained_checked",
          "unconstrained_failed")


def _ce(labels: torch.Tensor):
    return lambda logits: torch.nn.functional.cross_entropy(logits, labels, reduction="sum")


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per sample cosine of two gradients; two all-zero gradients agree (1), one zero and one not (0)."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    na, nb = a.norm(dim=1), b.norm(dim=1)
    both_zero = (na == 0) & (nb == 0)
    value = (a * b).sum(dim=1) / (na * nb).clamp_min(1e-300)
    return torch.where(both_zero, torch.ones_like(value), value)


def unconstrained_attack(ball):
    """PGD with the whole pixel cube as its budget and no random start (its first step follows the
    gradient at the clean image): L∞ eps 1, or for L2 eps = the cube's diagonal set per input size."""
    from nnprobe.attacks.base import build

    def run(forward, x: torch.Tensor, labels: torch.Tensor, autocast) -> torch.Tensor:
        if ball.id == "linf":
            attack = build("pgd", 1.0, steps=UNCONSTRAINED_STEPS, step_size=UNCONSTRAINED_STEP["linf"],
                           random_start=False)
        else:
            attack = build("pgd-l2", math.sqrt(x[0].numel()), steps=UNCONSTRAINED_STEPS,
                           step_size=UNCONSTRAINED_STEP["l2"] * math.sqrt(x[0].numel() / 768), random_start=False)
        out = attack._run(forward, x, labels, False, True, True, autocast, None, None)
        return out.success

    return run


def check(classifier, xs: torch.Tensor, ys: torch.Tensor, clean_grad: torch.Tensor, right: torch.Tensor,
          ball, eps: float, random: SampleRandom, autocast) -> dict[str, torch.Tensor]:
    """The three model-level checks on a few samples: per-sample flags (bool tensors over xs)."""
    with frozen(classifier):
        again = objective_gradient(classifier, xs, _ce(ys), autocast)[0]
        moved_x = (xs + ball.random_delta(xs, max(eps, 1 / 255), random)).clamp(0, 1)
        moved = objective_gradient(classifier, moved_x, _ce(ys), autocast)[0]
        fooled = torch.zeros_like(right)
        # a sample with an all-zero clean gradient cannot move (zero-gradients reports it): counted failed
        movable = right & (clean_grad.flatten(1).abs().amax(dim=1) > 0)
        if movable.any():
            fooled[movable] = unconstrained_attack(ball)(classifier, xs[movable], ys[movable], autocast)
    clean_nonzero = clean_grad.flatten(1).abs().amax(dim=1) > 0
    return {"inconsistent": cosine(clean_grad, again) < CONSISTENCY_MIN,
            "moved_checked": clean_nonzero,
            "moved_zero": clean_nonzero & (moved.flatten(1).abs().amax(dim=1) == 0),
            "unconstrained_checked": right,
            "unconstrained_failed": right & ~fooled}


def _warning(check_id: str, message: str, hint: str, follow_up: str, **evidence) -> RobustFinding:
    return RobustFinding(id=check_id, severity="warning", message=message, hint=hint,
                         evidence={**evidence, "follow_up": follow_up})


def findings(m: dict, examples: dict) -> list[RobustFinding]:
    """The masking findings from the summed counts `m` (keys: COUNTS) and example ids per check."""
    found = []
    if m["inconsistent"]:
        found.append(_warning(
            "inconsistent-gradients",
            f"Two backward passes at the same input disagree for {m['inconsistent']} of "
            f"{m['consistency_checked']} checked samples (gradient cosine below {CONSISTENCY_MIN}): the gradient "
            "is noise, or the forward pass is randomised.",
            "Gradient attacks follow noise here and overstate robustness. Average gradients over many draws "
            "(EoT, Athalye et al. 2018) and confirm with the black-box Square attack: --adaptive runs both.",
            "eot", checked=m["consistency_checked"], inconsistent=m["inconsistent"],
            sample_ids=examples.get("inconsistent-gradients", [])))
    if m["moved_zero"]:
        found.append(_warning(
            "gradients-vanish-after-move",
            f"{m['moved_zero']} of {m['moved_checked']} checked samples have a non-zero gradient at the clean image "
            "but an all-zero one at a random point of the budget's ball around it: the model stops gradients "
            "once the input has moved (a detector or a data-dependent switch).",
            "The attack stalls after its first step. Attack without gradients (Square) or through a differentiable "
            "stand-in for the switch (BPDA, Athalye et al. 2018): --adaptive runs Square.",
            "square", checked=m["moved_checked"], zero_after_move=m["moved_zero"],
            sample_ids=examples.get("gradients-vanish-after-move", [])))
    if m["unconstrained_failed"]:
        found.append(_warning(
            "unconstrained-attack-fails",
            f"With no budget at all (the whole pixel cube) {UNCONSTRAINED_STEPS}-step PGD (steps of 4/255) left "
            f"{m['unconstrained_failed']} of {m['unconstrained_checked']} checked samples unfooled: the "
            "gradient does not lead to an adversarial even when any image is allowed.",
            "A working attack fools every sample without a budget (Pintor et al. 2022, unconstrained attack "
            "failure): the gradient is wrong (a straight-through estimator of the wrong sign, noise, a saturated "
            "loss). Attack without gradients (Square) or transfer from a surrogate model: --adaptive runs Square.",
            "square", checked=m["unconstrained_checked"], failed=m["unconstrained_failed"],
            sample_ids=examples.get("unconstrained-attack-fails", [])))
    return found


def precision_findings(points) -> list[RobustFinding]:
    """bf16/fp16 runs: adversarial images the half-precision verdict counted robust but fp32 sees fooled."""
    found = []
    for point in points:
        fp32 = point.fp32_correct_top1
        if fp32 is None or fp32 >= point.correct_top1:
            continue
        found.append(_warning(
            "half-precision-disagrees",
            f"At eps {format_eps(point.eps)}, {point.correct_top1 - fp32} of the {point.correct_top1} images "
            "judged robust in half precision are fooled when the same images are judged in fp32.",
            "Half-precision rounding hides small perturbations (and quantises gradients): report the fp32 "
            "number, or rerun with --precision fp32.",
            "fp32", eps=point.eps, half_correct_top1=point.correct_top1, fp32_correct_top1=fp32))
    return found
