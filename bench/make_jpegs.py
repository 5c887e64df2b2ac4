"""A generated ImageNet-like JPEG folder for benchmarks: wnid folders, photo-sized images (about
500x375, varied), smooth random content so that JPEG decoding costs what it costs on photos."""
from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
from PIL import Image, ImageFilter


def make(root: str | None, count: int, classes: int = 10, seed: int = 0) -> str:
    """The folder of `count` images: `root`, or (None) one per count in the temp folder. An existing `root` holding
    at least `count` images is kept as it is and timed whole, so the default is per count: a folder made for a
    larger count is never timed under a smaller one's label."""
    from nnprobe.models.imagenet import imagenet_wnids

    root = root or os.path.join(tempfile.gettempdir(), f"nnprobe-bench-jpegs-{count}")
    wnids = imagenet_wnids()
    rng = np.random.default_rng(seed)
    done = sum(len(files) for _, _, files in os.walk(root)) if os.path.isdir(root) else 0
    if done >= count:
        return root
    for i in range(count):
        width, height = int(rng.integers(400, 640)), int(rng.integers(300, 480))
        small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((width, height), Image.BILINEAR).filter(ImageFilter.DETAIL)
        folder = os.path.join(root, wnids[(i % classes) * 97])
        os.makedirs(folder, exist_ok=True)
        image.save(os.path.join(folder, f"img_{i:05d}.JPEG"), quality=90)
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    make(args.root, args.count)
