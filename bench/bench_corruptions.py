"""`robust --corruptions all` throughput vs plain eval, and nnprobe's batched corruptions vs the reference
`imagecorruptions` (CPU, one image at a time), in one run.

    python bench/bench_corruptions.py --count 64 --batch-size 32 --device cpu
Prints: eval images/s (clean forward passes through the same loop), sweep image-corruptions/s (each a
corrupted image classified; goal >= 50% of eval images/s), and the corruption cost alone per
image-corruption: nnprobe batched vs imagecorruptions per image (needs `pip install imagecorruptions`).

    python bench/bench_corruptions.py --c-bar-reference PATH/augmentation-corruption/imagenet_c_bar
ImageNet-C-bar instead: nnprobe's 10 batched ops vs the published code (facebookresearch/augmentation-corruption,
not on PyPI: a checkout's imagenet_c_bar folder), both at the model's crop, severity 3, per image-corruption.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "corruptions"))

from nnprobe.imagenet_c import C_BAR, IMAGENET_C, corrupt, sample_seed  # noqa: E402
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
    parser.add_argument("--c-bar-reference", help="augmentation-corruption's imagenet_c_bar folder: time C-bar")
    args = parser.parse_args()
    device = torch.device(args.device)
    classifier = load_classifier(args.model)
    size = classifier.preprocessing.crop_size
    pixels = sample_batch(args.count, size)
    if args.c_bar_reference:
        return c_bar(pixels, args, device)
    labels = torch.zeros(args.count, dtype=torch.long)
    grid = [(n, s) for n in IMAGENET_C for s in range(1, 6)]
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
    for name in IMAGENET_C:
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


def c_bar(pixels: torch.Tensor, args, device: torch.device) -> None:
    """ImageNet-C-bar at severity 3: nnprobe's batched ops vs the published per-image code, per corruption."""
    sys.path.insert(0, args.c_bar_reference)
    import corrupt as published  # the reference's own module (its folder on sys.path)
    from nnprobe.imagenet_c.cbar import LEVELS

    classes = {c.name: c for c in vars(published).values() if isinstance(c, type) and hasattr(c, "tags")}
    x = pixels[:args.batch_size].to(device).float() / 255
    images = pixels[:args.reference_images].permute(0, 2, 3, 1).numpy()
    print(f"ImageNet-C-bar, severity 3, {len(x)} images batched on {device} vs {len(images)} through the reference")
    ours_total = theirs_total = 0.0
    for name in C_BAR:
        corruption_only(x[:1], [(name, 3)])  # warm-up
        ours = min(corruption_only(x, [(name, 3)]) for _ in range(2)) / len(x)
        transform = classes[name](LEVELS[name][2], images.shape[1])
        theirs = timed(lambda: [transform(image) for image in images]) / len(images)
        ours_total, theirs_total = ours_total + ours, theirs_total + theirs
        print(f"  {name:27s} nnprobe {1000 * ours:8.2f} ms, reference {1000 * theirs:9.1f} ms: {theirs / ours:7.0f}x")
    print(f"all 10: nnprobe {1000 * ours_total / 10:.2f} ms, reference {1000 * theirs_total / 10:.1f} ms per "
          f"image-corruption: nnprobe {theirs_total / ours_total:.0f}x faster")


if __name__ == "__main__":
    main()
