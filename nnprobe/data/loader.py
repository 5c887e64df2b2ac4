"""Data loading for evaluation: workers decode and resize/crop to uint8; the device does the rest.

Broken files do not stop the run: a worker returns the reason instead of a tensor, the collate keeps
the good images and the reasons, and the caller reports each skip (or fails on the first, --strict).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from nnprobe.data.decode import UndecodableImage, decode_rgb
from nnprobe.data.transforms import crop_border, resize_crop
from nnprobe.results import Preprocessing


class ImageSamples(Dataset):
    """(path, label) pairs -> (uint8 CHW tensor or None, label, position, converted, skip reason,
    encoded JPEG bytes or None[, box]).

    With `encoded_jpeg=True` JPEG files are returned as their bytes, for decoding on the device. With
    `context=N` each image is the N x N canvas around the model's crop (`data/context.py`) and its box."""

    def __init__(self, samples: Sequence[tuple[str, int]], preprocessing: Preprocessing,
                 positions: Sequence[int] | None = None, encoded_jpeg: bool = False, border: int = 0,
                 context: int = 0) -> None:
        self.samples = samples
        self.context = context
        self.border = border
        self.preprocessing = preprocessing
        self.positions = list(positions) if positions is not None else list(range(len(samples)))
        self.encoded_jpeg = encoded_jpeg and not context

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int):
        position = self.positions[i]
        path, label = self.samples[position]
        if self.encoded_jpeg and path.lower().endswith((".jpg", ".jpeg")):
            encoded = _read_jpeg(path)
            if encoded is not None:
                data, components = encoded
                return None, label, position, components != 3, None, data
        try:
            image, converted = decode_rgb(path)
        except UndecodableImage as exc:
            return None, label, position, False, str(exc), None
        if self.context:
            from nnprobe.data.context import context_canvas

            canvas, box = context_canvas(crop_border(image, self.border), self.preprocessing, self.context)
            return torch.from_numpy(canvas).permute(2, 0, 1), label, position, converted, None, None, box
        return model_pixels(image, self.preprocessing, self.border), label, position, converted, None, None


def model_pixels(image, preprocessing: Preprocessing, border: int = 0) -> torch.Tensor:
    """A decoded RGB image as the model's uint8 CHW input: the border cut, then the model's resize and crop (the
    one definition, PIL backend)."""
    image = resize_crop(preprocessing)(crop_border(image, border))
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


def _read_jpeg(path: str) -> tuple[torch.Tensor, int] | None:
    """The file's bytes if it looks like a decodable-size JPEG; None sends it down the PIL path (which
    gives the precise skip reason for empty, truncated, bomb or special files: only regular files are
    read here too, so a FIFO or /dev/zero named x.jpg cannot hang or fill memory)."""
    import io

    from nnprobe.data.decode import MAX_PIXELS
    from nnprobe.data.device_decode import jpeg_components
    from nnprobe.io import open_regular

    try:
        with open_regular(path) as handle:
            data = handle.read()
    except OSError:
        return None
    components = jpeg_components(data)
    if components is None or not data.endswith(b"\xff\xd9"):
        return None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            if image.size[0] * image.size[1] > MAX_PIXELS // 2:
                return None
    except Exception:
        return None
    return torch.frombuffer(bytearray(data), dtype=torch.uint8), components


@dataclass
class Batch:
    pixels: torch.Tensor  # uint8 NCHW (possibly empty)
    labels: torch.Tensor  # int64 N
    positions: list[int]
    converted: int
    skipped: list[tuple[int, str]]  # (position, reason)
    encoded: list[torch.Tensor]  # JPEG bytes to decode on the device (--decode device)
    encoded_labels: torch.Tensor
    encoded_positions: list[int]
    boxes: torch.Tensor | None = None  # int64 N x 4 with a context canvas: the resized image's (top, left, h, w)


def collate(items) -> Batch:
    good = [item for item in items if item[0] is not None]
    encoded = [item for item in items if item[5] is not None]
    skipped = [(item[2], item[4]) for item in items if item[0] is None and item[5] is None]
    if good:
        sizes = {tuple(item[0].shape) for item in good}
        if len(sizes) > 1:
            raise ValueError(f"images of different sizes in one batch: {sorted(sizes)[:2]}")
        pixels = torch.stack([item[0] for item in good])
    else:
        pixels = torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    labels = torch.tensor([item[1] for item in good], dtype=torch.int64)
    boxes = (torch.tensor([item[6] for item in good], dtype=torch.int64).reshape(-1, 4)
             if any(len(item) > 6 for item in items) else None)
    return Batch(pixels, labels, [item[2] for item in good], sum(item[3] for item in good + encoded), skipped,
                 [item[5] for item in encoded], torch.tensor([item[1] for item in encoded], dtype=torch.int64),
                 [item[2] for item in encoded], boxes)


def make_loader(dataset: Dataset, *, batch_size: int, workers: int, pin_memory: bool,
                collate_fn=collate) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate_fn,
                      pin_memory=pin_memory, persistent_workers=False,
                      worker_init_fn=freeze_inherited if workers > 0 else None,
                      prefetch_factor=4 if workers > 0 else None)


def freeze_inherited(_worker_id: int) -> None:
    """A forked worker's garbage collector leaves alone the objects it inherited (gc.freeze, as the gc docs
    advise after fork): a full collection in each worker walked the parent's ~340,000 objects (torch, the
    model, the file list), 0.18 s of CPU per worker and a copy of every page it touched, while the first
    batches were being decoded."""
    import gc

    gc.freeze()
