"""The model's resize and centre crop, defined once on `torchvision.transforms.v2`.

`resize_crop(pre)` is the one place that decides sizes, interpolation and antialias; every path applies
the same transform to what it holds, and v2 picks the backend by input type:
- PIL images in the data-loader workers: resized by PIL, the same call torchvision's
  `Weights.transforms()` makes, so counts match a torchvision reference loop exactly (PIL always
  antialiases, whatever `antialias` says);
- uint8 tensors from the device decoder (`--decode device`): torch's interpolate, rounded and clamped;
- float tensors in the attack path: torch's interpolate, differentiable, so an attack can run in the
  photo's own resolution with preprocessing in the forward pass.
PIL and tensor resizes are different code (PIL's filters vs torch's kernels), so the two backends agree
within a grey level, not bit for bit: tests measure the gap.
"""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from nnprobe.errors import UsageError
from nnprobe.results import Preprocessing

if TYPE_CHECKING:
    from torchvision.transforms import InterpolationMode, v2

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def interpolation_mode(name: str) -> "InterpolationMode":
    from torchvision.transforms import InterpolationMode

    if name not in INTERPOLATIONS:
        raise UsageError(f"interpolation {name!r} is not one of {', '.join(INTERPOLATIONS)}.")
    return InterpolationMode(name)


@lru_cache(maxsize=64)
def resize_crop(pre: Preprocessing) -> "v2.Transform":
    """Resize the short side, then centre-crop, as `pre` says (either step skipped when its size is None)."""
    import torch
    from torchvision.transforms import v2

    steps: list[Any] = []
    if pre.resize_size is not None:
        steps.append(v2.Resize(pre.resize_size, interpolation=interpolation_mode(pre.interpolation),
                               antialias=pre.antialias))
        if pre.interpolation == "bicubic":
            steps.append(v2.Lambda(_clamp_float, torch.Tensor))
    if pre.crop_size is not None:
        steps.append(v2.CenterCrop(pre.crop_size))
    return v2.Compose(steps) if steps else v2.Identity()


def _clamp_float(x: Any) -> Any:
    """Bicubic overshoots [0, 1] on float tensors; PIL and uint8 tensors end in the 8-bit range, so float
    tensors are clamped to it too (uint8 tensors pass unchanged)."""
    return x.clamp(0, 1) if x.is_floating_point() else x


def crop_border(image: Any, border: int) -> Any:
    """`image` (PIL or a CHW/NCHW tensor) less `border` pixels on each side: ObjectNet's 1-pixel frame, cut
    by 2 as its own loader does, before the model's resize and crop. An image too small keeps its size."""
    if border <= 0:
        return image
    from torchvision.transforms.v2 import functional as F

    height, width = F.get_size(image)
    if height <= 2 * border or width <= 2 * border:
        return image
    return F.crop(image, border, border, height - 2 * border, width - 2 * border)
