"""BIM / I-FGSM (Kurakin et al. 2017): FGSM repeated with a small step, projected after each step."""
from __future__ import annotations

from nnprobe.attacks.base import Attack, register


@register("bim")
class BIM(Attack):
    def update(self, adv, grad, state):
        return adv + self.step_size * grad.sign(), state
