"""Decoding JPEGs on the evaluation device (`--decode device`): nvJPEG on CUDA through torchvision's
batched `decode_jpeg`, then the model's resize and centre crop (`data/transforms.py`) on the device.

CPU workers cannot feed a fast GPU (decode + resize cost about 150-400 images/s per core), so in this
mode workers only read the bytes. Results are close to, not bit-identical with, the PIL path: the
difference is measured in tests. Files that are not JPEG still go through the PIL workers.
torchvision 0.29 deprecates its decoders in favour of TorchCodec; this module is the one place to swap.
"""
from __future__ import annotations

import warnings

import torch

from nnprobe.data.transforms import crop_border, resize_crop
from nnprobe.results import Preprocessing

SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_components(data: bytes) -> int | None:
    """Number of colour components in a JPEG's frame header (1 gray, 3 YCbCr, 4 CMYK), None if unreadable."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in SOF_MARKERS:
            return data[i + 9]
        i += 2 + length
    return None


def _decode(encoded: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | Exception]:
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return list(decode_jpeg(encoded, device=device, mode=ImageReadMode.RGB))
        except RuntimeError:  # one bad file fails the batch: find it
            out: list[torch.Tensor | Exception] = []
            for data in encoded:
                try:
                    out.append(decode_jpeg(data, device=device, mode=ImageReadMode.RGB))
                except RuntimeError as exc:
                    out.append(exc)
            return out


def decode_resize_crop(encoded: list[torch.Tensor], device: torch.device, pre: Preprocessing,
                       border: int = 0) -> tuple[torch.Tensor, list[str | None]]:
    """uint8 NCHW batch of the decodable images (less `border` pixels a side before the resize), and per
    input None or the reason it was skipped."""
    transform = resize_crop(pre)
    images, reasons = [], []
    for item in _decode(encoded, device):
        if isinstance(item, Exception):
            reasons.append(f"undecodable JPEG ({str(item).splitlines()[0][:80]})")
            continue
        images.append(transform(crop_border(item, border)))
        reasons.append(None)
    if images:
        return torch.stack(images), reasons
    return torch.empty(0, 3, 0, 0, dtype=torch.uint8, device=device), reasons
