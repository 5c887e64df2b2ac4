"""FGSM (Goodfellow et al. 2015): one step of eps along the sign of the input gradient."""
from __future__ import annotations

from nnprobe.attacks.base import Attack, register


@register("fgsm")
class FGSM(Attack):
    iterative = False
    single_gradient = True

    def default_step_size(self) -> float:
        return self.eps

    def update(self, adv, grad, state):
        return adv + self.step_size * grad.sign(), state
