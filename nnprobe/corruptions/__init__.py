"""ImageNet-C common corruptions computed on the fly, on the device: the registry and `corrupt`.

    corrupt(x, "fog", 3, seeds)  # x: float NCHW in [0, 1]; seeds: one int per sample

Families as in Hendrycks & Dietterich 2019 (and `imagecorruptions.get_corruption_names`): noise, blur,
weather (snow, frost, fog, brightness), digital (contrast, elastic, pixelate, JPEG).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nnprobe.errors import UsageError


@dataclass(frozen=True)
class Corruption:
    name: str
    family: str
    random: bool  # draws from the per-sample generators (the others are deterministic)


_TABLE = (("gaussian_noise", "noise", True), ("shot_noise", "noise", True), ("impulse_noise", "noise", True),
          ("defocus_blur", "blur", False), ("glass_blur", "blur", True), ("motion_blur", "blur", True),
          ("zoom_blur", "blur", False), ("snow", "weather", True), ("frost", "weather", True),
          ("fog", "weather", True), ("brightness", "weather", False), ("contrast", "digital", False),
          ("elastic_transform", "digital", True), ("pixelate", "digital", False),
          ("jpeg_compression", "digital", False))
CORRUPTIONS: dict[str, Corruption] = {name: Corruption(name, family, random) for name, family, random in _TABLE}
FAMILIES = ("noise", "blur", "weather", "digital")
ALIASES = {"gaussian": "gaussian_noise", "shot": "shot_noise", "impulse": "impulse_noise", "defocus": "defocus_blur",
           "glass": "glass_blur", "motion": "motion_blur", "zoom": "zoom_blur", "elastic": "elastic_transform",
           "jpeg": "jpeg_compression"}
SEVERITIES = (1, 2, 3, 4, 5)


def function(name: str) -> Callable:
    from nnprobe.corruptions import ops

    return getattr(ops, name)


def parse_corruptions(spec: str | Sequence[str]) -> tuple[str, ...]:
    """`all`, a family, or names (comma-separated, short aliases allowed) -> names in ImageNet-C order."""
    words = [w.strip().lower() for w in (spec.split(",") if isinstance(spec, str) else spec) if w.strip()]
    chosen: set[str] = set()
    for word in words:
        if word == "all":
            chosen.update(CORRUPTIONS)
        elif word in FAMILIES:
            chosen.update(n for n, c in CORRUPTIONS.items() if c.family == word)
        elif ALIASES.get(word, word) in CORRUPTIONS:
            chosen.add(ALIASES.get(word, word))
        else:
            raise UsageError(f"--corruptions {word!r} is not all, a family ({', '.join(FAMILIES)}) or one of "
                             f"{', '.join(CORRUPTIONS)}.")
    if not chosen:
        raise UsageError("--corruptions names no corruption: give all, a family or names.")
    return tuple(n for n in CORRUPTIONS if n in chosen)


def parse_severities(spec: str | int | Sequence[int]) -> tuple[int, ...]:
    """`1-5`, `3`, `1,3,5` (or ints) -> sorted severities in 1..5."""
    if isinstance(spec, int):
        values = [spec]
    elif isinstance(spec, str):
        values = []
        try:
            for part in (p.strip() for p in spec.split(",") if p.strip()):
                lo, _, hi = part.partition("-")
                values.extend(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise UsageError(f"--severity {spec!r} is not a range like 1-5 or a list like 1,3,5.") from None
    else:
        values = [int(v) for v in spec]
    if not values or any(v not in SEVERITIES for v in values):
        raise UsageError(f"--severity {spec!r} must name severities between 1 and 5.")
    return tuple(sorted(set(values)))


def sample_seed(seed: int, position: int, corruption: str, severity: int) -> int:
    """The generator seed of one sample at one (corruption, severity): a function of its position in the
    data set, not of its batch or rank."""
    index = list(CORRUPTIONS).index(corruption)
    return ((int(seed) * 1_000_003 + int(position)) * 16 + index) * 8 + severity & (2 ** 63 - 1)


def corrupt(x, name: str, severity: int, seeds: Sequence[int] = (), *, quantized: bool = True):
    """`x` (float NCHW in [0, 1]) corrupted by `name` at `severity`; `seeds` one per sample (random ones).
    `quantized`: onto the 8-bit grid as the reference's `np.uint8` output."""
    import torch

    from nnprobe.corruptions.ops import quantize

    if name not in CORRUPTIONS or severity not in SEVERITIES:
        raise UsageError(f"No corruption {name!r} at severity {severity}.")
    gens = None
    if CORRUPTIONS[name].random:
        if len(seeds) != x.shape[0]:
            raise UsageError(f"{name} needs one seed per sample ({x.shape[0]}), got {len(seeds)}.")
        gens = [torch.Generator(device=x.device).manual_seed(int(s)) for s in seeds]
    out = function(name)(x, severity, gens)
    return quantize(out) if quantized else out
