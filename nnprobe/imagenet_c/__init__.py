"""ImageNet-C common corruptions computed on the fly, on the device: the registry and `corrupt`.

    corrupt(x, "fog", 3, seeds)  # x: float NCHW in [0, 1]; seeds: one int per sample

Families as in Hendrycks & Dietterich 2019 (and `imagecorruptions.get_corruption_names`): noise, blur,
weather (snow, frost, fog, brightness), digital (contrast, elastic, pixelate, JPEG) in `ops.py`; and
ImageNet-C-bar's 10 (Mintun et al. 2021), the `c-bar` family, in `cbar.py` and `cbar_shapes.py`.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from nnprobe.errors import UsageError


from nnprobe.options.corruptions import (ALIASES, BENCHMARKS, C_BAR, CORRUPTIONS, FAMILIES, IMAGENET_C,  # noqa: F401
                                        PERTURBATIONS, SEVERITIES, Corruption, parse_corruptions,
                                        parse_perturbations, parse_severities)

C_BAR_SALT = 1 << 40  # keeps ImageNet-C-bar's seeds apart from ImageNet-C's (theirs are unchanged)


def function(name: str) -> Callable:
    from nnprobe.imagenet_c import cbar, cbar_shapes, ops

    if CORRUPTIONS[name].benchmark == "ImageNet-C":
        return getattr(ops, name)
    return getattr(cbar, name, None) or getattr(cbar_shapes, name)


def sample_seed(seed: int, position: int, corruption: str, severity: int) -> int:
    """The generator seed of one sample at one (corruption, severity): a function of its position in the
    data set, not of its batch or rank."""
    names = IMAGENET_C if corruption in IMAGENET_C else C_BAR
    salt = 0 if names is IMAGENET_C else C_BAR_SALT
    return ((int(seed) * 1_000_003 + int(position)) * 16 + names.index(corruption)) * 8 + severity + salt & (2 ** 63 - 1)


def corrupt(x, name: str, severity: int, seeds: Sequence[int] = (), *, quantized: bool = True):
    """`x` (float NCHW in [0, 1]) corrupted by `name` at `severity`; `seeds` one per sample (random ones).
    `quantized`: onto the 8-bit grid as the reference's `np.uint8` output."""
    import torch

    from nnprobe.imagenet_c.ops import quantize

    if name not in CORRUPTIONS or severity not in SEVERITIES:
        raise UsageError(f"No corruption {name!r} at severity {severity}.")
    gens = None
    if CORRUPTIONS[name].random:
        if len(seeds) != x.shape[0]:
            raise UsageError(f"{name} needs one seed per sample ({x.shape[0]}), got {len(seeds)}.")
        gens = [torch.Generator(device=x.device).manual_seed(int(s)) for s in seeds]
    out = function(name)(x, severity, gens)
    return quantize(out) if quantized else out
