"""Helpers for the model-loading tests (a uniquely named module: `from helpers import` is ambiguous once
other test folders have their own conftest.py)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "imagenet"


class TinyNet(nn.Module):
    """A few hundred parameters; any input size; k logits."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))


def write_bytes(path: Path, seed: int = 0, size: int = 4096) -> Path:
    """Deterministic junk that is not a zip archive and not a pickle (first byte is not PROTO 0x80)."""
    import random

    data = bytearray(random.Random(seed).randbytes(size))
    data[0] = 0x13
    path.write_bytes(bytes(data))
    return path


def sample_photos() -> list[Path]:
    return sorted(p for p in SAMPLES.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
