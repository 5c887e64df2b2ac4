"""What an attack costs, counted without a clock: forward and backward passes per image.

The unit is the *pass equivalent*: one image through the model's forward is 1, one image's backward to the
input is 2 (a backward costs about two forwards: the usual rule of thumb, e.g. Kaplan et al. 2020's 2N vs
4N FLOPs per token, and what the torch profiler shows for convolution nets), so one gradient evaluation is 3.
The count is hardware-free and exact: the same attack on the same images costs the same on a CPU and on a
GPU, in fp32 and in bf16, and two attacks compare by their counts whatever else ran on the machine.

`Meter` counts at the model's boundary (a forward pre-hook on the module), so every forward any attack,
component or follow-up runs through the model is counted, and a backward is counted when autograd reaches
that forward's input (a tensor hook): gradients w.r.t. the input only, as every attack here takes them.
A Jacobian taken class by class (FAB) counts one backward per class, as it runs one.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

FORWARD = 1  # pass equivalents per image forward
BACKWARD = 2  # pass equivalents per image backward to the input


class Meter:
    """Forward and backward image-passes through one module, while `counting()` is open."""

    def __init__(self) -> None:
        self.forwards = 0
        self.backwards = 0

    @property
    def cost(self) -> int:
        """Pass equivalents: forwards x 1 + backwards x 2."""
        return FORWARD * self.forwards + BACKWARD * self.backwards

    def _backward(self, rows: int):
        def hook(grad: torch.Tensor) -> None:
            self.backwards += rows

        return hook

    def _seen(self, module: nn.Module, args: tuple) -> None:
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or x.dim() == 0:
            return
        rows = int(x.shape[0])
        self.forwards += rows
        if x.requires_grad and torch.is_grad_enabled():
            x.register_hook(self._backward(rows))

    @contextlib.contextmanager
    def counting(self, *modules: nn.Module) -> Iterator["Meter"]:
        """Count the passes through `modules` (each hooked at its top level only) for the duration."""
        handles = [module.register_forward_pre_hook(self._seen) for module in modules if module is not None]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

