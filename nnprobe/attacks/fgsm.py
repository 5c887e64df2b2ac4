"""FGSM (Goodfellow et al. 2015): one step of eps along the sign of the input gradient."""
from __future__ import annotations

from nnprobe.attacks.base import Attack, register


@register("fgsm")
class FGSM(Attack):
    """L∞, one step of eps: the base class's update (the norm's step) taken once."""

    iterative = False
    single_gradient = True

    def default_step_size(self) -> float:
        return self.eps
