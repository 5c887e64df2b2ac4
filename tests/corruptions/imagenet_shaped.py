"""The tiny striped-image net inside 1000 logits (the other 996 far below): an ImageNet-shaped classifier, so
the sweep reports mCE. Its first four class names are the tiny net's (`class0`..`class3`, the folders
tinymodels.save_class_folders writes), so a spec `imagenet_shaped.py:wide_classifier` reads those folders."""
from __future__ import annotations

import torch
from torch import nn

import tinymodels
from nnprobe.models.classifier import Classifier


class Wide(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = tinymodels.TinyNet()
        self.net.load_state_dict(tinymodels._trained_state())

    def forward(self, x):
        small = self.net(x)
        return torch.cat([small, torch.full((x.shape[0], 996), -1e4, device=x.device)], dim=1)


def wide_classifier() -> Classifier:
    names = [f"class{i}" for i in range(tinymodels.CLASSES)] + [f"c{i}" for i in range(tinymodels.CLASSES, 1000)]
    return Classifier(Wide(), tinymodels.info("wide", classes=1000), names).eval()
