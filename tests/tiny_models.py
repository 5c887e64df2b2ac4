"""Tiny offline models with exactly known answers, loadable as factories (`tests/tiny_models.py:NAME`).

`color_net_1000`: predicts the ImageNet class whose colour is nearest to the image's mean colour.
Class k has colour (k // 100, (k // 10) % 10, k % 10) / 9, a 10x10x10 grid with spacing 1/9, so a solid
image of class k's colour (even JPEG-compressed) is classified as k, and top-5 holds its grid neighbours.
The linear head computes 2 c_k . x - |c_k|^2, which ranks classes by -|x - c_k|^2. Feed it pixels
in [0, 1] unnormalised (mean 0, std 1).
"""
from __future__ import annotations

import torch
from torch import nn


def class_color(k: int) -> tuple[float, float, float]:
    return (k // 100 / 9, (k // 10) % 10 / 9, k % 10 / 9)


def color_net(num_classes: int = 1000) -> nn.Module:
    colors = torch.tensor([class_color(k) for k in range(num_classes)], dtype=torch.float32)
    head = nn.Linear(3, num_classes)
    with torch.no_grad():
        head.weight.copy_(2 * colors)
        head.bias.copy_(-(colors**2).sum(dim=1))
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()


def color_net_1000() -> nn.Module:
    return color_net(1000)


def color_net_10() -> nn.Module:
    return color_net(10)


def random_cnn_10() -> nn.Module:
    """A seeded random CNN whose answers depend on spatial detail (so resize/crop matter)."""
    gen = torch.Generator().manual_seed(1234)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return net.eval()


def color_classifier_1000():
    """`color_net_1000` as a full Classifier carrying its own preprocessing (40 -> 32, no normalisation),
    for commands that take no preprocessing flags."""
    from nnprobe.models.classifier import from_network
    from nnprobe.results import Preprocessing

    pre = Preprocessing(resize_size=40, crop_size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                        source="tiny_models")
    return from_network(color_net(1000), spec="tiny_models:color_classifier_1000", source="factory",
                        weights=None, architecture="color_net", preprocessing=pre, num_classes=1000)
