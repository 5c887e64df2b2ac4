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
    snow             frames 0..30: one snow layer per image, motion-blurred (radius 14, sigma 4) at 4 i - 150
                     degrees, added and added rotated by 180 degrees to the brightened image
    spatter          frames 0..30: a liquid layer per image running down the frame, OpenCV's pipeline in torch
                     (spatter.py)

The geometric ones (translate over 41 frames, rotate, tilt, scale, shear) move pixels from outside the crop
into it (the reference transforms the whole resized image, then crops): they read the canvas around the crop
that the data path hands them (`geometric.py`). Spatter runs OpenCV's pipeline (Canny, distance transform,
histogram equalisation) as torch operations (`spatter.py`). Snow's motion blur is ImageMagick's, as
`imagecorruptions` re-implements it (ops.motion_blur_at). The published sequences are x264-encoded videos: in
memory the frames are not, unless `--x264-roundtrip` encodes and decodes each sequence as they were (`x264.py`),
as `--jpeg-roundtrip` does for ImageNet-C.

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

from nnprobe.errors import UsageError
from nnprobe.options.corruptions import NOISES, PERTURBATIONS  # noqa: E402, F401  (the names, torch-free)
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


def snow_layer(draws: torch.Tensor) -> torch.Tensor:
    """The snow layer from its normal(0.05, 0.3) draws (B, H, W): zoomed 3x about the centre (the generation
    code's own clipped_zoom, which trims the zoomed layer centrally), under 0.5 cleared, saved as 8-bit L."""
    from nnprobe.imagenet_c.ops import clipped_zoom

    h = draws.shape[-1]
    zoomed = clipped_zoom(draws[:, None], 3, cut=False)
    top = (zoomed.shape[-2] - h) // 2
    layer = zoomed[..., top:top + h, top:top + h]
    layer = torch.where(layer < 0.5, torch.zeros_like(layer), layer)
    return torch.floor(layer.clamp(0, 1) * 255) / 255  # (np.clip(...) * 255).astype(np.uint8)


def _snow_frames(x: torch.Tensor, gens):
    h = x.shape[-1]
    draws = torch.stack([0.05 + 0.3 * torch.randn((h, h), generator=g, device=g.device, dtype=torch.float64)
                         for g in gens])
    yield from snow_frames_from(x, draws.to(x.device))


def snow_frames_from(x: torch.Tensor, draws: torch.Tensor):
    """Snow given its layer draws (B, H, H) ~ normal(0.05, 0.3): one layer per image, blown along by
    ImageMagick's motion blur (radius 14, sigma 4, angle 4 i - 150)."""
    from nnprobe.imagenet_c import ops

    layer = snow_layer(draws)
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    base = 0.85 * x + (1 - 0.85) * torch.maximum(x, grey * 1.5 + 0.5)
    for i in range(FRAMES):
        flakes = ops.motion_blur_at(layer, 14, 4, [i * 4.0 - 150] * x.shape[0])
        flakes = (torch.round(flakes.clamp(0, 1) * 255) / 255).to(x.dtype)
        yield _byte(base + flakes + flakes.flip(-1, -2))


def frames(x: torch.Tensor, name: str, gens: Sequence[torch.Generator],
           context: tuple[torch.Tensor, torch.Tensor] | None = None) -> Iterator[torch.Tensor]:
    """The frames of perturbation `name` of each image in `x` (float NCHW [0, 1] on the 8-bit grid), one
    (B, C, H, W) frame at a time (FRAMES, 41 for translate); the noises draw from the samples' generators.
    context: (uint8 canvas, boxes) around `x` (`data/context.py`), which the geometric ones read."""
    from nnprobe.imagenet_c import geometric, ops

    if name in geometric.GEOMETRIC:
        if context is None:
            raise UsageError(f"ImageNet-P's {name} moves pixels from outside the crop into it: it needs the "
                             f"images themselves (a data folder), not batches at the model's crop.")
        yield from geometric.geometric_frames(*context, x.shape[-1], name)
    elif name == "gaussian_noise":
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
    elif name == "snow":
        yield from _snow_frames(x, gens)
    elif name == "spatter":
        from nnprobe.imagenet_c.spatter import spatter_frames

        yield from spatter_frames(x, gens)
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
                   gens: Sequence[torch.Generator], context: tuple[torch.Tensor, torch.Tensor] | None = None,
                   x264: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 (flips, comparisons, top-5 distance summed) over the batch's sequences of `name`, on the device,
    and a per-sample flag of non-finite logits. x264: each image's sequence encoded and decoded as the
    published videos were (`x264.py`) before it is classified."""
    reference = None
    counts = torch.zeros(3, dtype=torch.int64, device=x.device)
    broken = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    sequence = frames(x, name, gens, context)
    if x264:
        from nnprobe.imagenet_c.x264 import roundtrip_frames

        sequence = roundtrip_frames(sequence, name)
    for frame in sequence:
        logits = classify(frame)
        broken |= ~torch.isfinite(logits).all(dim=1)
        if reference is not None:
            counts[0] += (logits.argmax(dim=1) != reference.argmax(dim=1)).sum()
            counts[1] += x.shape[0]
            counts[2] += top5_distance(reference, logits).sum()
        if reference is None or name not in NOISES:
            reference = logits
    return counts, broken
