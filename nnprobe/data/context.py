"""The model's crop with the pixels around it: a square canvas centred on the crop, for operations that move
pixels from outside the crop into it (ImageNet-P's geometric sequences transform the resized image, then crop).

    canvas, box = context_canvas(image, preprocessing, size)

`image` is resized as the model's preprocessing says (`transforms.resize_crop`, the one definition) but not
cropped; the canvas is `size` x `size`, the model's crop sits at its centre, at `crop_offset(size, crop)`
on both axes, equal pixel for pixel to what `resize_crop` crops; canvas pixels outside the resized image are
0. `box` = (top, left, height, width): where the whole resized image lies in canvas coordinates (it may
reach beyond the canvas), which the geometric operations need to place its centre and its edges.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from nnprobe.errors import UsageError
from nnprobe.results import Preprocessing


def crop_offset(size: int, crop: int) -> int:
    return (size - crop) // 2


def crop_origin(extent: int, crop: int) -> int:
    """Where torchvision's CenterCrop starts a `crop` on an axis of `extent` pixels (negative: it pads)."""
    if extent >= crop:
        return int(round((extent - crop) / 2.0))
    return -((crop - extent) // 2)


def context_canvas(image: Any, pre: Preprocessing, size: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The uint8 HWC canvas of `size` around the model's crop of `image` (PIL), and the resized image's box."""
    from nnprobe.data.transforms import resize_crop

    crop = pre.crop_size
    if crop is None or (size - crop) % 2 or size < crop:
        raise UsageError("A context canvas needs the model's crop size, and a larger size of the same parity.")
    resized = np.asarray(resize_crop(dataclasses.replace(pre, crop_size=None))(image), dtype=np.uint8)
    height, width = resized.shape[:2]
    margin = crop_offset(size, crop)
    top, left = margin - crop_origin(height, crop), margin - crop_origin(width, crop)
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, size), min(left + width, size)
    if y1 > y0 and x1 > x0:
        canvas[y0:y1, x0:x1] = resized[y0 - top:y1 - top, x0 - left:x1 - left]
    return canvas, (top, left, height, width)
