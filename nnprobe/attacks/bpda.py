"""BPDA with the identity (Athalye et al. 2018, "Obfuscated Gradients Give a False Sense of Security",
section 4.1): forward through the model exactly as it is, backward through each layer that passes no
gradient as if it were the identity, the stand-in for a preprocessing g(x) ≈ x (quantisation, a median
filter in numpy, JPEG, a thermometer encoding that is decoded again).

`stopping_layers` finds such layers on its own, without knowing the model: every submodule whose output
has its input's shape while its input depends on the pixels and its output passes no gradient back to it
(no autograd path, or an all-zero vector-Jacobian product with a random cotangent). `identity_backward`
patches them for the duration with forward hooks returning `x + (g(x) - x).detach()`: the same values,
the identity's gradient. A layer written inline in a module's forward (not a submodule) is out of its
reach: that model needs its own differentiable stand-in, or `--surrogate` for a transfer attack.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

ROUNDS = 3  # patching a layer lets gradients reach the layers before it: look again, a few times


def _stops(inputs, output) -> bool:
    """Whether a same-shaped layer output passes no gradient back to an input that depends on the pixels."""
    if not inputs or not isinstance(inputs[0], torch.Tensor) or not isinstance(output, torch.Tensor):
        return False
    given = inputs[0]
    if given.shape != output.shape or not given.requires_grad or not given.is_floating_point():
        return False
    if not output.requires_grad:
        return True
    cotangent = torch.randn(output.shape, generator=torch.Generator().manual_seed(0)).to(output)
    grad, = torch.autograd.grad(output, given, cotangent, allow_unused=True, retain_graph=True)
    return grad is None or not bool(grad.abs().amax() > 0)


def stopping_layers(model: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """The submodules that stop the gradient at inputs x (see the module doc), outermost first."""
    found: list[nn.Module] = []
    for _ in range(ROUNDS):
        seen: list[tuple] = []
        hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append((mod, inp, out)))
                 for m in model.modules() if m is not model]
        try:
            with identity_backward(found), torch.enable_grad():
                model(x.detach().requires_grad_(True))
        finally:
            for hook in hooks:
                hook.remove()
        new = [mod for mod, inp, out in seen if mod not in found and _stops(inp, out)]
        if not new:
            break
        found += list(dict.fromkeys(new))
    return found


@contextlib.contextmanager
def identity_backward(layers) -> Iterator[None]:
    """Each layer's output keeps its value and takes the identity's gradient while inside."""
    def straight_through(module, inputs, output):
        return inputs[0] + (output - inputs[0]).detach()

    hooks = [layer.register_forward_hook(straight_through) for layer in layers]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


class BPDA(nn.Module):
    """The model with `identity_backward` on `layers` for every forward: attack this, judge the model."""

    def __init__(self, model: nn.Module, layers) -> None:
        super().__init__()
        self.model, self.layers = model, list(layers)

    def forward(self, x):
        with identity_backward(self.layers):
            return self.model(x)
