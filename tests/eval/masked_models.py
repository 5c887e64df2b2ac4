"""Tiny models whose robust runs set off the sanity checks (`tests/eval/masked_models.py:NAME`), built on
tests/tiny_models.py's colour net: a softmax inside (probabilities, not logits) and a rounded input (an
all-zero input gradient, as quantisation or JPEG inside a model gives)."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tiny_models import color_net  # noqa: E402


class Rounded(nn.Module):
    """The colour net on the input rounded to 1/8 steps: the rounding has no gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.net = color_net(1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * 8) / 8)


def softmax_color_net_1000() -> nn.Module:
    return nn.Sequential(color_net(1000), nn.Softmax(dim=1)).eval()


def rounded_color_net_1000() -> nn.Module:
    return Rounded().eval()
