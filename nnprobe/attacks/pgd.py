"""PGD (Madry et al. 2018): iterated steepest ascent from a random point in the ball, L∞ or L2."""
from __future__ import annotations

from nnprobe.attacks.base import Attack, register


@register("pgd")
class PGD(Attack):
    """L∞: step along sign(grad); random start uniform in [-eps, eps] per pixel."""

    default_random_start = True
    supports_random_start = True

    def start(self, x, random):
        return x + (2 * random.uniform(x.shape, x.dtype) - 1) * self.eps

    def update(self, adv, grad, state):
        return adv + self.step_size * grad.sign(), state

@register("pgd-l2")
class PGDL2(Attack):
    """L2: step along grad/‖grad‖₂; random start uniform in radius, uniform in direction."""

    norm = "l2"
    default_random_start = True
    supports_random_start = True

    def start(self, x, random):
        n = x.shape[0]
        direction = random.normal(x.shape, x.dtype)
        radius = random.uniform((n,), x.dtype)
        norms = direction.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)
        return x + direction * (radius * self.eps / norms).view(n, 1, 1, 1)

    def update(self, adv, grad, state):
        norms = grad.flatten(1).norm(p=2, dim=1) + 1e-10
        return adv + self.step_size * grad / norms.view(-1, *([1] * (grad.dim() - 1))), state
