"""Several models on one JPEG folder: each image decoded once for all of them (what `nnprobe eval --model A
--model B ...` does) vs each model decoding the folder again (the per-model path it replaced), same models,
images, batch and workers, interleaved in one run.

    python bench/bench_many.py --count 200 --models mobilenet_v3_small,mobilenet_v3_small,resnet18 --workers 2
Prints each path's wall time for all the models (model loading excluded) and the ratio per-model / shared
(> 1: the shared pass is faster), and checks that both paths give every model the same counts. `--mixed` gives
the models different resizes (256/224 bilinear, 232/224 bilinear, 256/224 bicubic, ...) so that each takes its
own resize of the one decode instead of sharing the tensor.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_jpegs import make  # noqa: E402

from nnprobe import api  # noqa: E402
from nnprobe.data.shared_decode import evaluate_shared  # noqa: E402
from nnprobe.evaluation import evaluate  # noqa: E402

MIXED = [dict(), dict(resize=232), dict(interpolation="bicubic"), dict(resize=240, interpolation="bicubic")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--models", default="mobilenet_v3_small,mobilenet_v3_small,resnet18")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mixed", action="store_true", help="a different resize per model")
    parser.add_argument("--root", help="the JPEG folder (default: one per --count in the temp folder)")
    args = parser.parse_args()
    root = make(args.root, args.count)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    names = args.models.split(",")
    classifiers = [api.load_classifier(name, weights="none", **(MIXED[i % len(MIXED)] if args.mixed else {}))
                   for i, name in enumerate(names)]
    images = api.find_images(root, classifiers[0], limit=args.count)
    keywords = dict(device=device, batch_size=args.batch_size, workers=args.workers, setup_checks=False)
    alone, shared = [], []
    for _ in range(args.repeats):  # interleaved, best of each, so drift hits both
        start = time.perf_counter()
        one_by_one = [evaluate(c, images, **keywords) for c in classifiers]
        alone.append(time.perf_counter() - start)
        start = time.perf_counter()
        together = evaluate_shared(classifiers, images, keywords)
        shared.append(time.perf_counter() - start)
        same = [(r.correct_top1, r.correct_top5, r.total) for r in one_by_one] == \
               [(r.correct_top1, r.correct_top5, r.total) for r in together]
        if not same:
            raise SystemExit("the two paths disagree on a model's counts")
    pixels = sorted({(c.preprocessing.resize_size, c.preprocessing.crop_size, c.preprocessing.interpolation)
                     for c in classifiers})
    print(f"device={device} models={names} images={len(images.samples)} batch={args.batch_size} "
          f"workers={args.workers} resizes={pixels}")
    print(f"each model decodes (per-model path): {min(alone):7.2f} s  runs={[round(v, 2) for v in alone]}")
    print(f"one decode for all (shared pass):    {min(shared):7.2f} s  runs={[round(v, 2) for v in shared]}")
    print(f"ratio per-model / shared: {min(alone) / min(shared):.3f}   (whole calls, model loading excluded; "
          "both gave every model the same counts)")


if __name__ == "__main__":
    main()
