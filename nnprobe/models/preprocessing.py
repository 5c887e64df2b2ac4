"""The model's preprocessing: flags over what the model carries, and the resize/crop in the two forms
its callers hold (both apply the one definition, `nnprobe.data.transforms.resize_crop`).

- `pil_resize_crop`: what data-loader workers run on decoded PIL images (PIL's resize, as torchvision's
  `Weights.transforms()`, so counts match a torchvision reference loop exactly).
- `tensor_resize_crop`: the same resize and centre crop on float tensors, differentiable, so an attack
  can run in the photo's own resolution with preprocessing in the forward pass.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from nnprobe.data.transforms import INTERPOLATIONS, interpolation_mode, resize_crop
from nnprobe.errors import UsageError
from nnprobe.results import Preprocessing

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = ["INTERPOLATIONS", "pil_resize_crop", "tensor_resize_crop", "with_overrides"]


def with_overrides(base: Preprocessing, *, resize: int | None = None, crop: int | None = None,
                   interpolation: str | None = None, mean=None, std=None) -> Preprocessing:
    """Flags win over what the model carries; the result says so in `source`."""
    import dataclasses

    changes = {k: v for k, v in dict(resize_size=resize, crop_size=crop, interpolation=interpolation,
                                     mean=mean, std=std).items() if v is not None}
    if not changes:
        return base
    for key in ("resize_size", "crop_size"):
        if key in changes and changes[key] <= 0:
            raise UsageError(f"--{key.split('_')[0]} must be a positive number of pixels.")
    if "interpolation" in changes:
        interpolation_mode(changes["interpolation"])
    for key in ("mean", "std"):
        if key in changes and len(changes[key]) != 3:
            raise UsageError(f"--{key} needs three values (red, green, blue), got {len(changes[key])}.")
    if "std" in changes and any(s <= 0 for s in changes["std"]):
        raise UsageError("--std values must be positive.")
    return dataclasses.replace(base, **changes, source=f"{base.source} + flags ({', '.join(sorted(changes))})")


def pil_resize_crop(image: "Image.Image", pre: Preprocessing) -> "Image.Image":
    return resize_crop(pre)(image)


def tensor_resize_crop(x: "torch.Tensor", pre: Preprocessing) -> "torch.Tensor":
    """Float NCHW in [0, 1] at any size -> model input size, differentiable (antialias as `pre` says)."""
    return resize_crop(pre)(x)
