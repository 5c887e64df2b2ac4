"""MI-FGSM (Dong et al. 2018): sign steps on an accumulated, L1-normalised gradient (momentum)."""
from __future__ import annotations

import torch

from nnprobe.attacks.base import Attack, register


@register("mifgsm")
class MIFGSM(Attack):
    decay = 1.0

    def default_step_size(self) -> float:
        return self.eps / self.steps  # the paper's alpha = eps / T

    def init_state(self, x):
        return {"momentum": torch.zeros_like(x)}

    def update(self, adv, grad, state):
        scale = grad.abs().mean(dim=tuple(range(1, grad.dim())), keepdim=True).clamp_min(1e-12)
        momentum = self.decay * state["momentum"] + grad / scale
        return adv + self.ball.step(momentum, self.step_size), {"momentum": momentum}
