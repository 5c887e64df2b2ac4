"""The reference implementation (`imagecorruptions` 1.1.2, test-only) importable on today's stack, and
the sample photos at the 224 crop as uint8 HWC.

Shims, none of which changes the arithmetic: `pkg_resources.resource_filename` (gone from setuptools),
`np.float_` (gone from numpy 2; it was float64), and skimage's `multichannel=True` (now channel_axis=-1).
"""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "imagenet"


def reference():
    """The `imagecorruptions.corruptions` module (a test dependency). The pkg_resources shim lives only while
    it is imported (it binds the function then), so no other test sees a fake pkg_resources."""
    if not hasattr(np, "float_"):
        np.float_ = np.float64
    if "imagecorruptions.corruptions" not in sys.modules and "pkg_resources" not in sys.modules:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda module, path: os.path.join(os.path.dirname(sys.modules[module].__file__), path)
        sys.modules["pkg_resources"] = shim
        try:
            import imagecorruptions.corruptions  # noqa: F401
        finally:
            del sys.modules["pkg_resources"]
    import imagecorruptions.corruptions as ic
    if not getattr(ic, "_nnprobe_shimmed", False):
        plain = ic.gaussian

        def gaussian(image, sigma=1, multichannel=None, **kw):
            return plain(image, sigma=sigma, channel_axis=-1 if multichannel else None, **kw)

        ic.gaussian = gaussian
        ic._nnprobe_shimmed = True
    return ic


def photos(size: int = 224) -> list[np.ndarray]:
    """Each sample photo resized (shorter side 256, bilinear) and centre-cropped to `size`, uint8 HWC."""
    from PIL import Image

    out = []
    for path in sorted(p for p in SAMPLES.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")):
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = 256 / min(im.size)
            im = im.resize((max(size, round(im.width * scale)), max(size, round(im.height * scale))),
                           Image.BILINEAR)
            left, top = (im.width - size) // 2, (im.height - size) // 2
            out.append(np.array(im.crop((left, top, left + size, top + size))))
    return out


def to_tensor(images: list[np.ndarray]):
    import torch

    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def to_uint8(x) -> np.ndarray:
    return np.round(x.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
