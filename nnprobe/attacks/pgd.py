"""PGD (Madry et al. 2018): iterated steepest ascent from a random point in the ball, L∞ or L2.

The start, the step and the projection belong to the norm (`norms.py`); PGD only turns the random
start on, so an L1 PGD would be one more class here with `ball = L1`.
"""
from __future__ import annotations

from nnprobe.attacks.base import Attack, register
from nnprobe.attacks.norms import L2


@register("pgd")
class PGD(Attack):
    """L∞: step along sign(grad); random start uniform in [-eps, eps] per pixel."""

    default_random_start = True
    supports_random_start = True


@register("pgd-l2")
class PGDL2(PGD):
    """L2: step along grad/‖grad‖₂; random start uniform in radius, uniform in direction."""

    ball = L2
