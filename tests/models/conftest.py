"""Fixtures for the model-loading tests: tiny offline networks, a private torch hub cache, no network."""
from __future__ import annotations

import pytest
import torch

from model_helpers import TinyNet


@pytest.fixture
def tiny_net():
    torch.manual_seed(0)
    return TinyNet(10).eval()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch hub cache (torch.hub.get_dir() reads TORCH_HOME on each call), and no network even on a
    machine that has one: urllib honours the proxy variables, and nothing listens on port 9."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("NNPROBE_OFFLINE", raising=False)
    return home


@pytest.fixture(scope="session")
def resnet18_state():
    """State dict of a random-init torchvision resnet18 with a 10-class head (shared, read-only)."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).state_dict()
