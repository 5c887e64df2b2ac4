"""Norms as strategy classes (foolbox 3's `LinfBaseGradientDescent` / `L2BaseGradientDescent`).

A norm owns everything about its eps ball: a random start inside it, the steepest-ascent direction of
a gradient (a step of size s moves a distance s), the projection onto it, and the distance.
An attack names its norm (`ball = L2`) and the base class asks it, so adding L1 touches no attack.
Norms are stateless: the classes themselves are the strategies (no instances).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

if TYPE_CHECKING:
    from nnprobe.attacks.base import SampleRandom

NORMS: dict[str, type["Norm"]] = {}


def register_norm(cls: type["Norm"]) -> type["Norm"]:
    """Class decorator: make a norm available under its `id`; a duplicate id raises."""
    if cls.id in NORMS:
        raise ValueError(f"norm id {cls.id!r} is already registered by {NORMS[cls.id].__name__}")
    NORMS[cls.id] = cls
    return cls


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-sample vector shaped to broadcast over a batch like `like` (N, 1, 1, ...)."""
    return values.view(-1, *([1] * (like.dim() - 1)))


class Norm:
    """Base class of a norm: every method works on a batch of perturbations, first dim = samples."""

    id: ClassVar[str] = ""  # reported as AttackSettings.norm (`linf`, `l2`)
    symbol: ClassVar[str] = ""  # for messages: `L∞`
    max_eps: ClassVar[float | None] = None  # a larger budget is a user's mistake (L∞: pixels are in [0, 1])

    @staticmethod
    def random_delta(x: torch.Tensor, eps: float, random: SampleRandom) -> torch.Tensor:
        """A random perturbation inside the eps ball, one per sample of x."""
        raise NotImplementedError

    @staticmethod
    def step(grad: torch.Tensor, size: float) -> torch.Tensor:
        """The steepest-ascent step along `grad` for this norm, of distance `size` (0 where grad is 0)."""
        raise NotImplementedError

    @staticmethod
    def project(delta: torch.Tensor, eps: float) -> torch.Tensor:
        """`delta` moved into the eps ball; a delta already inside is returned unchanged."""
        raise NotImplementedError

    @staticmethod
    def distance(delta: torch.Tensor) -> torch.Tensor:
        """The norm of each sample's perturbation."""
        raise NotImplementedError


@register_norm
class Linf(Norm):
    """L∞: uniform start per pixel, sign steps, projection by clamping each pixel."""

    id = "linf"
    symbol = "L∞"
    max_eps = 1.0

    @staticmethod
    def random_delta(x, eps, random):
        return (2 * random.uniform(x.shape, x.dtype) - 1) * eps

    @staticmethod
    def step(grad, size):
        return size * grad.sign()

    @staticmethod
    def project(delta, eps):
        return torch.clamp(delta, min=-eps, max=eps)

    @staticmethod
    def distance(delta):
        return delta.flatten(1).abs().amax(dim=1)


@register_norm
class L2(Norm):
    """L2: start uniform in radius and direction, steps along grad/‖grad‖₂, projection by rescaling."""

    id = "l2"
    symbol = "L2"

    @staticmethod
    def random_delta(x, eps, random):
        direction = random.normal(x.shape, x.dtype)
        radius = random.uniform((x.shape[0],), x.dtype)
        norms = direction.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)
        return direction * per_sample(radius * eps / norms, x)

    @staticmethod
    def step(grad, size):
        return size * grad / per_sample(grad.flatten(1).norm(p=2, dim=1) + 1e-10, grad)

    @staticmethod
    def project(delta, eps):
        norms = delta.flatten(1).norm(p=2, dim=1)
        factor = torch.where(norms > eps, eps / norms.clamp_min(1e-12), torch.ones_like(norms))
        return delta * per_sample(factor, delta)

    @staticmethod
    def distance(delta):
        return delta.flatten(1).norm(p=2, dim=1)
