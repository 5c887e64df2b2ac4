"""Tiny offline models for attack tests: a conv net trained in a second on synthetic data, and a
linear model with known weights. Importable as a `--model tests/attacks/tinymodels.py:tiny_classifier`
factory so the CLI tests run the real loading path."""
from __future__ import annotations

import functools

import torch
from torch import nn

from nnprobe.models.classifier import Classifier
from nnprobe.results import ModelInfo, Preprocessing

SIZE = 16
CLASSES = 4
PRE = Preprocessing(resize_size=SIZE, crop_size=SIZE, interpolation="bilinear", antialias=True,
                    mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), source="tiny test model")


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class k: stripes at one of four orientations, random phase and contrast, plus noise; in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % CLASSES
    coords = torch.arange(SIZE, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    angles = y.float() * (torch.pi / CLASSES)
    phase = torch.rand(n, generator=g) * 2 * torch.pi
    wave = torch.sin(0.9 * (xx[None] * torch.cos(angles)[:, None, None] + yy[None] * torch.sin(angles)[:, None, None])
                     + phase[:, None, None])
    contrast = 0.05 + 0.05 * torch.rand(n, 1, 1, generator=g)
    x = 0.5 + contrast * wave
    x = x[:, None].repeat(1, 3, 1, 1) + 0.03 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    return x.clamp(0, 1), y


class TinyNet(nn.Module):
    """Has BatchNorm and Dropout, so train mode would change its outputs (the mode invariant matters)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Dropout(0.2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(16, CLASSES)

    def forward(self, x):
        return self.head(self.features(x))


def _train(steps: int, eps: float | None = None) -> dict:
    """The tiny net trained on 512 synthetic images; with eps, adversarially (FGSM with a random start, Wong
    et al. 2020, at that L∞ budget). Trained on one thread whatever the process's thread count: 50 Adam steps
    on 2 threads end up to 0.45 away from the same steps on 1, so a pytest worker (every core) and the
    OMP_NUM_THREADS=1 subprocess a test starts would otherwise hold different models."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_on_this_thread(steps, eps)
    finally:
        torch.set_num_threads(threads)


def _train_on_this_thread(steps: int, eps: float | None) -> dict:
    torch.manual_seed(0)
    net = TinyNet()
    x, y = make_data(512, seed=1)
    mean = torch.tensor(PRE.mean).view(1, 3, 1, 1)
    std = torch.tensor(PRE.std).view(1, 3, 1, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.03)
    for step in range(steps):
        idx = torch.randint(0, len(x), (32,))
        xb, yb = x[idx], y[idx]
        if eps is not None:
            delta = ((torch.rand_like(xb) * 2 - 1) * eps).requires_grad_(True)
            net.eval()
            loss = nn.functional.cross_entropy(net(((xb + delta).clamp(0, 1) - mean) / std), yb)
            grad, = torch.autograd.grad(loss, delta)
            xb = (xb + (delta + 1.25 * eps * grad.sign()).clamp(-eps, eps)).clamp(0, 1).detach()
            net.train()
        loss = nn.functional.cross_entropy(net((xb - mean) / std), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.clone() for k, v in net.state_dict().items()}


@functools.lru_cache(maxsize=1)
def _trained_state() -> dict:
    return _train(50)


@functools.lru_cache(maxsize=1)
def _robust_state() -> dict:
    """Adversarially trained at 8/255: a model with survivors under AutoAttack at 8/255, in a few seconds."""
    return _train(60, 8 / 255)


def info(name: str, pre: Preprocessing = PRE, classes: int = CLASSES) -> ModelInfo:
    return ModelInfo(spec=name, source="factory", weights=None, architecture=name, num_classes=classes,
                     preprocessing=pre)


def tiny_classifier() -> Classifier:
    """A fresh copy each call (tests change its modes and flags)."""
    net = TinyNet()
    net.load_state_dict(_trained_state())
    return Classifier(net, info("tiny"), [f"class{i}" for i in range(CLASSES)]).eval()


def robust_tiny_classifier() -> Classifier:
    """The tiny net adversarially trained at 8/255 (a fresh copy each call)."""
    net = TinyNet()
    net.load_state_dict(_robust_state())
    return Classifier(net, info("robust-tiny"), [f"class{i}" for i in range(CLASSES)]).eval()


class Linear(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.fc = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(weight)
            self.fc.bias.copy_(bias)

    def forward(self, x):
        return self.fc(x.flatten(1))


def linear_classifier(bias: torch.Tensor | None = None) -> Classifier:
    """Known weights: class k's weight is +1 on channel k mod 3 and −1 elsewhere (scaled), so any
    target is reachable by brightening one channel: an easy model for targeted attacks."""
    d = 3 * SIZE * SIZE
    weight = torch.full((CLASSES, 3, SIZE, SIZE), -1.0)
    for k in range(CLASSES):
        weight[k, k % 3] = 1.0
        if k == 3:
            weight[k] = weight[k] * 0.5
    weight = weight.reshape(CLASSES, d) / d
    pre = Preprocessing(resize_size=SIZE, crop_size=SIZE, interpolation="bilinear", antialias=True,
                        mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), source="linear test model")
    net = Linear(weight, bias if bias is not None else torch.zeros(CLASSES))
    return Classifier(net, info("linear", pre), [f"class{i}" for i in range(CLASSES)]).eval()


def rounding_edge_classifier() -> Classifier:
    """The linear model with class 0 ahead of class 1 by 0.001 on a mid-grey image: an attack below half
    a grey level flips it in float, and rounding to 8 bits undoes that (the perturbation rounds to 0)."""
    return linear_classifier(torch.tensor([0.001, 0.0, -1.0, -1.0]))


def save_photo(path, seed: int, size=(24, 20)) -> str:
    """A synthetic 8-bit photo (stripes of a random class, upscaled) saved losslessly; returns the path."""
    import numpy as np
    from PIL import Image

    x, _ = make_data(1, seed=seed)
    image = Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), "RGB")
    image = image.resize(size, Image.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return str(path)


def save_class_folders(root, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`root/class{k}/img{i}.png` from make_data, 16x16 8-bit; returns (uint8 pixels, labels) in the
    order the data layer lists them (sorted folders, sorted files)."""
    import numpy as np
    from PIL import Image

    x, y = make_data(n, seed=seed)
    pixels = (x * 255).round().to(torch.uint8)
    order = []
    for i in range(n):
        folder = root / f"class{int(y[i])}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i].permute(1, 2, 0).numpy().astype(np.uint8), "RGB").save(folder / f"img{i:03d}.png")
        order.append((int(y[i]), f"img{i:03d}.png", i))
    order.sort()
    index = torch.tensor([i for _, _, i in order])
    return pixels[index], y[index]


class NonFinite(nn.Module):
    """The tiny net's logits, made non-finite where `mask(x)` says so (per sample): NaN or +Inf."""

    def __init__(self, value: float, when: str) -> None:
        super().__init__()
        self.net = TinyNet()
        self.net.load_state_dict(_trained_state())
        self.value, self.when = value, when

    def forward(self, x):
        logits = self.net(x)
        if self.when == "always":
            bad = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        elif self.when == "bright":  # mean of the normalised input above 1 (pixels above 0.75 on average)
            bad = x.flatten(1).mean(1) > 1.0
        else:  # "half": imitates a layer that overflows fp16/bf16 under autocast and not in fp32
            bad = torch.full((x.shape[0],), torch.is_autocast_enabled(x.device.type), device=x.device)
        return torch.where(bad[:, None], torch.full_like(logits, self.value), logits)


def _nonfinite(name: str, value: float, when: str) -> Classifier:
    return Classifier(NonFinite(value, when), info(name), [f"class{i}" for i in range(CLASSES)]).eval()


def nan_classifier() -> Classifier:
    """NaN logits for every input."""
    return _nonfinite("nan", float("nan"), "always")


def inf_on_bright_classifier() -> Classifier:
    """+Inf logits for bright inputs only (mean pixel above 0.75); ordinary logits otherwise."""
    return _nonfinite("inf-on-bright", float("inf"), "bright")


def half_overflow_classifier() -> Classifier:
    """+Inf logits under autocast (bf16/fp16), finite in fp32: autocast overflow, as a real fp16 model can."""
    return _nonfinite("half-overflow", float("inf"), "half")
