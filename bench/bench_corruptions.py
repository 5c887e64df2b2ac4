"""`robust --corruptions all` throughput vs plain eval, and nnprobe's batched corruptions vs the reference
`imagecorruptions` (CPU, one image at a time), in one run.

    python bench/bench_corruptions.py --count 64 --batch-size 32 --device cpu
Prints: eval images/s (clean forward passes through the same loop), sweep image-corruptions/s (each a
corrupted image classified; goal >= 50% of eval images/s), and the corruption cost alone per
image-corruption: nnprobe batched vs imagecorruptions per image (needs `pip install imagecorruptions`).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "corruptions"))

from nnprobe.imagenet_c import CORRUPTIONS, corrupt, sample_seed  # noqa: E402
from nnprobe.imagenet_c.sweep import sweep_batches  # noqa: E402
from nnprobe.models import load_classifier  # noqa: E402


def sample_batch(count: int, size: int) -> torch.Tensor:
    """The sample photos at the crop, repeated (flipped and shifted) up to `count`, uint8 NCHW."""
    from corruption_reference import photos

    base = torch.from_numpy(np.stack(photos(size))).permute(0, 3, 1, 2)
    out = [base[i % len(base)].roll(i // len(base), dims=-1) for i in range(count)]
    return torch.stack(out)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sweep_speed(classifier, pixels, labels, batch_size, grid, device) -> float:
    batches = [(pixels[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(labels), batch_size)]
    return timed(lambda: sweep_batches(classifier, batches, grid, device=device))


def corruption_only(x: torch.Tensor, grid) -> float:
    """Seconds to corrupt the batch `x` (float, on its device) at every (corruption, severity)."""
    def run():
        for name, severity in grid:
            corrupt(x, name, severity, [sample_seed(0, p, name, severity) for p in range(len(x))])
        if x.is_cuda:
            torch.cuda.synchronize()
    return timed(run)


def reference_only(images: np.ndarray, grid) -> float | None:
    try:
        from corruption_reference import reference

        reference()
        import imagecorruptions
    except Exception:  # noqa: BLE001 - the reference is optional here
        return None

    def run():
        for name, severity in grid:
            for image in images:
                imagecorruptions.corrupt(image, severity, name)
    return timed(run)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reference-images", type=int, default=1, help="images the reference corrupts (slow)")
    args = parser.parse_args()
    device = torch.device(args.device)
    classifier = load_classifier(args.model)
    size = classifier.preprocessing.crop_size
    pixels = sample_batch(args.count, size)
    labels = torch.zeros(args.count, dtype=torch.long)
    grid = [(n, s) for n in CORRUPTIONS for s in range(1, 6)]
    print(f"model {classifier.info.spec}, {args.count} images at {size}, batch {args.batch_size}, {device}, "
          f"torch threads {torch.get_num_threads()}")
    sweep_speed(classifier, pixels[:args.batch_size], labels[:args.batch_size], args.batch_size, grid[:2], device)
    # the fastest of several passes each: a shared machine's hiccups must not decide the ratio
    clean = min(sweep_speed(classifier, pixels, labels, args.batch_size, [], device) for _ in range(3))
    full = min(sweep_speed(classifier, pixels, labels, args.batch_size, grid, device) for _ in range(2))
    eval_rate = args.count / clean
    sweep_rate = args.count * len(grid) / full  # the clean pass it also does counts against it
    print(f"eval (clean forward) {eval_rate:.1f} images/s; sweep --corruptions all {sweep_rate:.1f} "
          f"image-corruptions/s = {100 * sweep_rate / eval_rate:.0f}% of eval (goal >= 50%)")
    x = pixels[:args.batch_size].to(device).float() / 255
    ours = corruption_only(x, grid) / (len(x) * len(grid))
    print(f"corruption alone, nnprobe batched: {1000 * ours:.2f} ms per image-corruption")
    for name in CORRUPTIONS:
        per = corruption_only(x, [(name, s) for s in range(1, 6)]) / (len(x) * 5)
        print(f"  {name:18s} {1000 * per:8.2f} ms")
    images = pixels[:args.reference_images].permute(0, 2, 3, 1).numpy()
    ref = reference_only(images, grid)
    if ref is None:
        print("imagecorruptions not installed: no reference timing")
        return
    ref /= len(images) * len(grid)
    print(f"corruption alone, imagecorruptions per image (CPU): {1000 * ref:.2f} ms per image-corruption; "
          f"nnprobe is {ref / ours:.1f}x faster")


if __name__ == "__main__":
    main()
