"""The cost of `--x264-roundtrip`: ImageNet-P's sequences scored in memory vs encoded and decoded as the published
videos were (imagenet_c/x264.py: one ffmpeg per video to encode, one to decode), on the same images, in one run.

    python bench/bench_x264.py --perturbations gaussian_noise,brightness,zoom_blur --repeats 2
Prints per image and perturbation: wall seconds and CPU seconds (this process plus its ffmpeg children) of the
sweep without and with the round trip (the clean pass and the perturbations only, no corruption grid), their
ratio, and the round trip's own share. The sample photos at the model's crop, repeated up to --count.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_corruptions import sample_batch  # noqa: E402
from nnprobe.imagenet_c.sweep import sweep_batches  # noqa: E402
from nnprobe.models import load_classifier  # noqa: E402


def cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(classifier, batches, names, x264: bool) -> tuple[float, float, torch.Tensor]:
    wall, used = time.perf_counter(), cpu()
    counts, _, _ = sweep_batches(classifier, batches, [], device="cpu", perturbations=names, x264=x264)
    return time.perf_counter() - wall, cpu() - used, counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--perturbations", default="gaussian_noise,brightness,zoom_blur")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each; the best is kept")
    args = parser.parse_args()
    classifier = load_classifier(args.model)
    names = tuple(args.perturbations.split(","))
    pixels = sample_batch(args.count, classifier.preprocessing.crop_size)
    labels = torch.zeros(len(pixels), dtype=torch.long)
    batches = [(pixels[i:i + args.batch_size], labels[i:i + args.batch_size])
               for i in range(0, len(pixels), args.batch_size)]
    best = {False: (float("inf"),) * 2, True: (float("inf"),) * 2}
    for _ in range(args.repeats):
        for x264 in (False, True):
            wall, used, counts = timed(classifier, batches, names, x264)
            best[x264] = min(best[x264], (wall, used))
            print(f"{'x264' if x264 else 'in memory'}: {wall:.2f} s wall, {used:.2f} s CPU, flips "
                  f"{counts[1:, 0].tolist()} of {counts[1:, 1].tolist()}", flush=True)
    per = args.count * len(names)
    (w0, c0), (w1, c1) = best[False], best[True]
    print(f"per image and perturbation ({args.count} images x {len(names)} perturbations, best of {args.repeats}):")
    print(f"  in memory {w0 / per:.3f} s wall, {c0 / per:.3f} s CPU")
    print(f"  x264      {w1 / per:.3f} s wall, {c1 / per:.3f} s CPU  (ratio {w1 / w0:.2f}x wall, {c1 / c0:.2f}x CPU; "
          f"the round trip {(c1 - c0) / per:.3f} s CPU per sequence)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
