"""`fool --min-eps` guided by a minimum-norm attack: FMN (`minnorm.py`) finds the photo's smallest fooling
distance in one run, in the attack's norm (L∞ or L2); the search then only checks the grid around it.

The answer keeps the bisection's promise: it is the smallest budget on the 1/255 grid whose 8-bit image
fools the model, as far as the checks go: the budget fools (FMN's point rounded to 8 bits inside it, or
else the attack at that budget), and the level below it was tried with the attack and did not. When the
level below does fool (FMN overshot), the bracketing search takes over below it; when FMN's budget does
not fool once rounded, the search goes up from it. Each budget tried is a `SearchTrial`, as before, and
`MinEpsSearch.method` says which way the answer was found (`fmn`, or `fmn+bisection`).
"""
from __future__ import annotations

import math

import torch

from nnprobe.attacks.base import AttackOutput, build
from nnprobe.attacks.minnorm import build_min_norm

METHOD = "fmn"


def fmn_distance(setup, photo, attack: str, steps: int | None) -> tuple[float, object]:
    """FMN in the attack's norm on the pixels the model reads: the distance (inf when not fooled) and the
    adversarial image pasted into the whole photo."""
    norm = build(attack, 0.0).norm
    minimum = build_min_norm(f"fmn-{norm}", steps)
    goal = torch.tensor([photo.goal(setup)], device=setup.device)
    out = minimum(setup.classifier, photo.window.crop(photo.x), goal, targeted=setup.targeted,
                  forward=photo.window.forward(setup.forward), autocast=setup.autocast)
    return float(out.distance[0]), photo.window.paste(out.adversarial).detach(), out.logits, minimum.steps


def guided(setup, photo, attack: str, first: int, last: int, fools, trial_of_point, bracket) -> tuple[int | None, str]:
    """The smallest fooling level from FMN's distance (see the module doc); `fools(level)` runs the attack at
    a level, `trial_of_point(level, adv, logits, steps)` judges FMN's point rounded at a level (both record
    the trial). Without any FMN adversarial, the plain bracketing search from `first`."""
    distance, adv, logits, steps = fmn_distance(setup, photo, attack, None)
    if not math.isfinite(distance):
        return bracket(fools, first, last), "bisection (fmn found no adversarial)"
    level = min(max(1, math.ceil(distance * 255 - 1e-9)), last)
    if not trial_of_point(level, adv, logits, steps) and not fools(level):
        above = bracket(lambda k: fools(level + k), 1, last - level) if level < last else None
        return (None if above is None else level + above), METHOD + "+bisection"
    if level == 1 or not fools(level - 1):
        return level, METHOD
    return bracket(fools, 1, level - 1), METHOD + "+bisection"


def point_output(adv: torch.Tensor, logits: torch.Tensor, steps: int, success: bool) -> AttackOutput:
    """FMN's image as the attack output `photo_attack.written_item` writes and judges."""
    return AttackOutput(adversarial=adv, logits=logits, success=torch.tensor([success]),
                        steps=torch.tensor([steps]), gradient_passes=steps)
