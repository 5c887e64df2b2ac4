"""Fixtures for the model-loading tests: tiny offline networks, a private torch hub cache, no network."""
from __future__ import annotations

from pathlib import Path

import pytest
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


@pytest.fixture
def tiny_net():
    torch.manual_seed(0)
    return TinyNet(10).eval()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch hub cache (torch.hub.get_dir() reads TORCH_HOME on each call)."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv("NNPROBE_OFFLINE", raising=False)
    return home


@pytest.fixture(scope="session")
def resnet18_state():
    """State dict of a random-init torchvision resnet18 with a 10-class head (shared, read-only)."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).state_dict()


def write_bytes(path: Path, seed: int = 0, size: int = 4096) -> Path:
    """Deterministic junk that is not a zip archive and not a pickle (first byte is not PROTO 0x80)."""
    import random

    data = bytearray(random.Random(seed).randbytes(size))
    data[0] = 0x13
    path.write_bytes(bytes(data))
    return path


def sample_photos() -> list[Path]:
    return sorted(p for p in SAMPLES.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
