"""Planted gradient-masking defenses around the trained tiny net, and controls that mask nothing.

Each defense is a published way to overstate robustness (Athalye et al. 2018, Carlini et al. 2019,
Tramer et al. 2020, Pintor et al. 2022): the sanity checks of `robust` must flag every one of them, and
none of the controls. `PLANTED` maps a defense to the checks expected to fire on it; `CONTROLS` lists the
honest wrappers (a differentiable preprocessing, a plain model, a linear model)."""
from __future__ import annotations

import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # loaded by path as a --model factory too
import tinymodels  # noqa: E402
from nnprobe.models.classifier import Classifier

GRID = 255  # the planted detector's notion of an unmoved image: every pixel on the 8-bit grid


def on_grid(x: torch.Tensor) -> torch.Tensor:
    """Pixels rounded to 8 bits, as images decoded from files are."""
    return (x * GRID).round() / GRID


class NoiseBackward(torch.autograd.Function):
    """Identity forward; the backward returns random noise instead of the gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return torch.randn_like(grad)


class WrongSignQuantise(torch.autograd.Function):
    """Quantises the input to 32 levels with a straight-through gradient of the wrong sign."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x * 32) / 32

    @staticmethod
    def backward(ctx, grad):
        return -grad


def _median3(pixels: np.ndarray) -> np.ndarray:
    """A 3x3 median filter in numpy over the spatial axes (non-differentiable preprocessing)."""
    padded = np.pad(pixels, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = pixels.shape[2:]
    windows = [padded[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)]
    return np.median(np.stack(windows), axis=0)


class Quantise(nn.Module):
    """Feature squeezing as a layer: pixels rounded to `levels` steps (no gradient passes it)."""

    def __init__(self, levels: int) -> None:
        super().__init__()
        self.levels = levels

    def forward(self, x):
        return torch.round(x * self.levels) / self.levels


class Planted(nn.Module):
    """The trained tiny net behind one planted defense (or none: a control)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.net = tinymodels.TinyNet()
        self.net.load_state_dict(tinymodels._trained_state())
        self.kind = kind
        self.blur = nn.Conv2d(3, 3, 3, padding=1, groups=3, bias=False, padding_mode="replicate")
        with torch.no_grad():
            self.blur.weight.fill_(1 / 9)
        self.squeeze = Quantise(8)

    def forward(self, x):
        return getattr(self, "_" + self.kind.replace("-", "_"))(x)

    def _quantised_input(self, x):  # feature squeezing: 3-bit pixels, zero gradient almost everywhere
        return self.net(torch.round(x * 8) / 8)

    def _quantise_layer(self, x):  # the same squeezing as a submodule: what BPDA can find and straight-through
        return self.net(self.squeeze(x))

    def _numpy_preprocessing(self, x):  # median filter in numpy, re-attached to the graph with a zero gradient
        filtered = torch.as_tensor(_median3(x.detach().cpu().numpy()), dtype=x.dtype, device=x.device)
        return self.net(filtered + 0 * x)

    def _random_resize_pad(self, x):  # Xie et al. 2018: per image a random resize, then random zero padding back
        out = []
        for image in x:
            g = torch.randint(10, 15, ()).item()
            small = nn.functional.interpolate(image[None], size=(g, g), mode="bilinear", align_corners=False)
            left, top = torch.randint(0, 16 - g + 1, (2,)).tolist()
            out.append(nn.functional.pad(small, (left, 16 - g - left, top, 16 - g - top)))
        return self.net(torch.cat(out))

    def _saturated_logits(self, x):  # logits scaled by 1e5: the softmax saturates, cross-entropy has no gradient
        return self.net(x) * 1e5

    def _softmax_output(self, x):
        return self.net(x).softmax(dim=1)

    def _noise_backward(self, x):
        return self.net(NoiseBackward.apply(x))

    def _thermometer(self, x):  # Buckman et al. 2018, hard encoding with 16 levels, decoded: no autograd path
        levels = torch.linspace(0, 1, 17, device=x.device)[1:-1]
        return self.net((x[..., None] > levels).float().mean(dim=-1))

    def _noisy_forward(self, x):  # random noise on the input at every call (Gaussian data augmentation left on)
        return self.net(x + 0.1 * torch.randn_like(x))

    def _detector(self, x):  # a detector that stops gradients once any pixel leaves the 8-bit grid
        logits = self.net(x)
        moved = ((x * GRID) - (x * GRID).round()).abs().flatten(1).amax(dim=1) > 1e-3
        return torch.where(moved[:, None], logits.detach(), logits)

    def _wrong_sign_ste(self, x):
        return self.net(WrongSignQuantise.apply(x))

    # ------------------------------------------------------------------ controls
    def _plain(self, x):
        return self.net(x)

    def _differentiable_blur(self, x):  # an honest preprocessing: a 3x3 mean filter, differentiable
        return self.net(self.blur(x))


PLANTED = {
    "quantised-input": {"zero-gradients"},
    "quantise-layer": {"zero-gradients"},
    "numpy-preprocessing": {"zero-gradients"},
    "random-resize-pad": {"randomised-forward"},
    "saturated-logits": {"zero-gradients"},
    "softmax-output": {"probabilities-not-logits"},
    "noise-backward": {"inconsistent-gradients"},
    "thermometer": {"zero-gradients"},
    "noisy-forward": {"randomised-forward"},
    "detector": {"gradients-vanish-after-move"},
    "wrong-sign-ste": {"unconstrained-attack-fails"},
}
# the planted defenses the binarization test (`--binarization-test`, 999 inner points) flags on all 16 probed
# samples with PGD-10 at 8/255: every one whose gradient is absent, stopped, noise, of the wrong sign or saturated.
# Not in it (measured, every attack: bench/bench_binarization.py, docs/fool.md): softmax-output (the readout's
# logits span 1, so the softmax after it never saturates: 0 of 16 failed with every attack), noisy-forward and
# random-resize-pad (their randomised forwards answer the training points differently when run again: most samples
# cannot be set up; randomised-forward flags them)
BINARIZATION = ("quantised-input", "quantise-layer", "numpy-preprocessing", "saturated-logits", "noise-backward",
                "thermometer", "detector", "wrong-sign-ste")
CONTROLS = ("plain", "differentiable-blur", "linear")


def classifier(kind: str) -> Classifier:
    if kind == "linear":
        return tinymodels.linear_classifier()
    return Classifier(Planted(kind), tinymodels.info(kind),
                      [f"class{i}" for i in range(tinymodels.CLASSES)]).eval()


def thermometer_classifier() -> Classifier:
    """`--model tests/attacks/planted.py:thermometer_classifier`: the CLI path of a model with no autograd path."""
    return classifier("thermometer")


def wrong_sign_ste_classifier() -> Classifier:
    """`--model tests/attacks/planted.py:wrong_sign_ste_classifier`: a wrong-sign straight-through quantiser."""
    return classifier("wrong-sign-ste")
