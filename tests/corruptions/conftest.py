"""Fixtures shared by the corruption tests."""
from __future__ import annotations

import pytest
import torch

import tinymodels


@pytest.fixture(scope="module")
def six_images():
    """Six of the tiny model's striped images as uint8 NCHW, and their labels."""
    x, y = tinymodels.make_data(6, seed=5)
    return (x * 255).round().to(torch.uint8), y
