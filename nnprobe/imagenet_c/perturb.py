"""ImageNet-P (Hendrycks & Dietterich 2019): perturbation sequences generated on the device, and the flip
probability (FP) and top-5 distance (T5D) of a classifier along them, counted in exact integers.

Sequences follow `ImageNet-P/create_p/make_imagenet_p.py` (hendrycks/robustness) at difficulty 1, on the
model's input crop, each frame truncated to 8 bits as the reference's `np.uint8`/`ToPILImage` saves do:

    gaussian_noise   frame 0 clean, frames 1..30: x + N(0, 0.03)
    shot_noise       frame 0 clean, frames 1..30: Poisson(300 x) / 300
    speckle_noise    frame 0 clean, frames 1..30: x + x N(0, 0.05)
    brightness       frames 0..30: HSV value + (i - 15) / 50
    gaussian_blur    frames 0..30: Gaussian blur, sigma 0.25 + 0.035 i (truncate 6)
    zoom_blur        frame 0 clean, frame i: the mean of frame 0 and zooms 1 + 0.004 j, j = 1..i
    motion_blur      frames 0..30: motion blur radius 10, sigma 3, angle 4 (i - 30) degrees

The geometric ones (translate, rotate, tilt, scale, shear) move pixels from outside the crop into it (the
reference transforms the 256-pixel image, then crops), and spatter and snow need OpenCV's and ImageMagick's
pipelines; they are not generated here. The published sequences were also x264-encoded videos: in memory
the frames are not, as `--jpeg-roundtrip` is to ImageNet-C.

Metrics as `ImageNet-P/test.py`: for the noise sequences each frame is compared with frame 0, for the others
each frame with the one before. FP = share of compared frames whose top-1 differs; T5D = mean over compared
frames of sum_{k<5} |k - min(sigma_k - 1, 5)|, sigma_k the rank in the later frame of the class ranked k+1 in
the earlier one (ranks as scipy's rankdata(-logits, 'ordinal')). Every sequence has the same length, so the
reference's mean over videos of each video's mean equals flips / comparisons: counts add up over batches and
ranks.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from nnprobe.options.corruptions import PERTURBATIONS  # noqa: E402  (the names, torch-free)
NOISES = ("gaussian_noise", "shot_noise", "speckle_noise")  # compared with frame 0 (test.py's noise_perturbation)
FRAMES = 31
P_SALT = 1 << 41  # keeps the sequences' seeds apart from the corruptions'


def perturbation_seed(seed: int, position: int, name: str) -> int:
    return ((int(seed) * 1_000_003 + int(position)) * 16 + PERTURBATIONS.index(name)) + P_SALT & (2 ** 63 - 1)


def _truncate(x: torch.Tensor) -> torch.Tensor:
    """np.uint8(255 * clip(x, 0, 1)) / 255, keeping values already on the 8-bit grid there."""
    return torch.floor(x.clamp(0, 1) * 255 + 1e-4) / 255


def _byte(x: torch.Tensor) -> torch.Tensor:
    """ToPILImage's pic.mul(255).byte() on [0, 1] floats, without slack: the reference's own float rounding."""
    return torch.floor(x.clamp(0, 1) * 255) / 255


def _noise_frames(x: torch.Tensor, gens, make: Callable[[torch.Tensor, torch.Generator], torch.Tensor]):
    yield x
    for _ in range(1, FRAMES):
        yield _byte(torch.stack([make(image, g) for image, g in zip(x, gens)]))


def _zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """torchvision's affine(scale=factor) about the centre, bilinear, on 8 bits as PIL's: truncated (the 1e-3
    stands for PIL's own rounding of its coefficients; measured, it leaves ~0.5% of values a level apart)."""
    import torch.nn.functional as F

    theta = torch.tensor([[1 / factor, 0, 0], [0, 1 / factor, 0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return torch.floor(sampled * 255 + 1e-3) / 255


def _zoom_frames(x: torch.Tensor):
    total = x.clone()
    yield x
    for i in range(1, FRAMES):
        total += _zoom(x, 1 + 0.004 * i)
        yield _byte(total / (i + 1))


def frames(x: torch.Tensor, name: str, gens: Sequence[torch.Generator]) -> Iterator[torch.Tensor]:
    """The FRAMES frames of perturbation `name` of each image in `x` (float NCHW [0, 1] on the 8-bit grid),
    one (B, C, H, W) frame at a time; the noises draw from the samples' generators."""
    from nnprobe.imagenet_c import ops

    if name == "gaussian_noise":
        yield from _noise_frames(x, gens, lambda im, g: im + 0.03 * torch.randn(im.shape, generator=g,
                                                                              device=im.device, dtype=im.dtype))
    elif name == "shot_noise":
        yield from _noise_frames(x, gens, lambda im, g: torch.poisson(im * 300, generator=g) / 300)
    elif name == "speckle_noise":
        yield from _noise_frames(x, gens, lambda im, g: im + im * 0.05 * torch.randn(im.shape, generator=g,
                                                                                   device=im.device, dtype=im.dtype))
    elif name == "brightness":
        v = x.amax(dim=1, keepdim=True)
        for i in range(FRAMES):
            bright = (v + (i - 15) * 2 / 100.).clamp(0, 1)
            yield _truncate(torch.where(v > 0, x * bright / v.clamp_min(1e-12), bright.expand_as(x)))
    elif name == "gaussian_blur":
        for i in range(FRAMES):  # float64 as skimage's: a value a hair off a grey level truncates as there
            yield _truncate(ops.gaussian_filter(x.double(), 0.25 + 0.035 * i, mode="nearest", truncate=6.0)).to(x.dtype)
    elif name == "zoom_blur":
        yield from _zoom_frames(x)
    elif name == "motion_blur":
        for i in range(FRAMES):  # ImageMagick's output is rounded to 8 bits
            yield torch.round(ops.motion_blur_at(x, 10, 3, [(i - 30) * 4.0] * x.shape[0]).clamp(0, 1) * 255) / 255
    else:
        raise KeyError(name)


def top5_distance(earlier: torch.Tensor, later: torch.Tensor) -> torch.Tensor:
    """Per sample, test.py's dist(perm2[argsort(perm1)], 'top5') from two frames' logits (B, K)."""
    k = min(5, earlier.shape[1])
    top = torch.argsort(-earlier, dim=1, stable=True)[:, :k]  # classes ranked 1..k in the earlier frame
    order = torch.argsort(-later, dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(1, order.shape[1] + 1, device=order.device).expand_as(order))
    sigma = ranks.gather(1, top)
    position = torch.arange(k, device=sigma.device)
    return (position - (sigma - 1).clamp(max=5)).abs().sum(dim=1)


def count_sequence(classify: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, name: str,
                   gens: Sequence[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 (flips, comparisons, top-5 distance summed) over the batch's sequences of `name`, on the device,
    and a per-sample flag of non-finite logits."""
    reference = None
    counts = torch.zeros(3, dtype=torch.int64, device=x.device)
    broken = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for frame in frames(x, name, gens):
        logits = classify(frame)
        broken |= ~torch.isfinite(logits).all(dim=1)
        if reference is not None:
            counts[0] += (logits.argmax(dim=1) != reference.argmax(dim=1)).sum()
            counts[1] += x.shape[0]
            counts[2] += top5_distance(reference, logits).sum()
        if reference is None or name not in NOISES:
            reference = logits
    return counts, broken
