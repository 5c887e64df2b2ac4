"""`--jpeg-roundtrip`: corrupted images saved and decoded as the published ImageNet-C files were.

The generation code (hendrycks/robustness, ImageNet-C/create_c/make_imagenet_c.py) turns each corrupted
image into 8 bits with `np.uint8(img)` (truncation, not rounding) and saves it with PIL as JPEG,
`quality=85, optimize=True`; evaluations then decode those files. Doing the same here makes an in-memory
sweep comparable with numbers measured on the downloaded ImageNet-C (the JPEG step alone moves accuracy).
Each image goes through PIL on the CPU (a few milliseconds at 224 px) and comes back to the device.
"""
from __future__ import annotations

import io

import numpy as np
import torch

PUBLISHED_QUALITY = 85
TRUNCATION_SLACK = 1e-4  # float32 pixels k/255 can land a hair below k: truncate as float64 numpy would


def roundtrip(x: torch.Tensor, quality: int = PUBLISHED_QUALITY) -> torch.Tensor:
    """Float [0, 1] NCHW RGB -> truncated to 8 bits -> JPEG at `quality` (PIL, optimize) -> decoded, [0, 1]."""
    from PIL import Image

    pixels = torch.floor(x.detach().float().clamp(0, 1) * 255 + TRUNCATION_SLACK).clamp(0, 255).to(torch.uint8)
    out = []
    for image in pixels.permute(0, 2, 3, 1).cpu().numpy():
        buffer = io.BytesIO()
        Image.fromarray(image, "RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
        buffer.seek(0)
        out.append(np.array(Image.open(buffer).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(x.device).float().div_(255)
