"""GPU evaluation throughput: nnprobe vs timm's own validation path, same JPEG folder and model.

timm path = `timm.data.create_dataset` + `create_loader(use_prefetcher=True)` (uint8 batches normalised
on the GPU by its prefetcher), as timm's validate.py does. Also forward-only images/s on a synthetic
device tensor (the ceiling). ResNet-50, fp32 and bf16. Weights are random (no network on the GPU
machine): throughput does not depend on them.

    python bench/bench_eval_gpu.py --count 5000 --batch-size 256 --workers 14
Goals (issue 2): end-to-end >= 1.5x timm; >= 80% of forward-only images/s.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_jpegs import make  # noqa: E402

from nnprobe.data.layouts import find_images  # noqa: E402
from nnprobe.device import autocast  # noqa: E402
from nnprobe.evaluation import evaluate  # noqa: E402
from nnprobe.models import load_classifier  # noqa: E402


def timm_validate(root, classifier, batch_size, workers, precision) -> float:
    from timm.data import create_dataset, create_loader

    pre = classifier.preprocessing
    dataset = create_dataset(root=root, name="", split="validation")
    loader = create_loader(dataset, input_size=(3, pre.crop_size, pre.crop_size), batch_size=batch_size,
                           use_prefetcher=True, interpolation=pre.interpolation, mean=pre.mean, std=pre.std,
                           num_workers=workers, crop_pct=pre.crop_size / pre.resize_size, pin_memory=True)
    net = classifier.net.cuda().eval().to(memory_format=torch.channels_last)
    device = torch.device("cuda")
    start = time.perf_counter()
    with torch.inference_mode():
        for x, _ in loader:
            with autocast(device, precision):
                net(x.contiguous(memory_format=torch.channels_last))
    torch.cuda.synchronize()
    return len(dataset) / (time.perf_counter() - start)


def forward_only(classifier, batch_size, precision, iters=30) -> float:
    device = torch.device("cuda")
    model = classifier.cuda().eval().to(memory_format=torch.channels_last)
    size = classifier.preprocessing.crop_size
    x = torch.rand(batch_size, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), autocast(device, precision):
        for _ in range(5):
            model(x)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iters):
            model(x)
        torch.cuda.synchronize()
    return batch_size * iters / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--root", help="the JPEG folder, made when absent (default: a temporary folder per --count, "
                        "as bench_eval.py: make() keeps a folder that already holds at least COUNT images)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_eval_gpu.py needs a CUDA GPU")
    root = make(args.root, args.count)
    classifier = load_classifier("resnet50", weights="none")
    images = find_images(root, class_names=classifier.class_names, wnids=classifier.wnids, num_classes=1000)
    print(f"gpu={torch.cuda.get_device_name()} torch={torch.__version__} images={args.count} "
          f"batch={args.batch_size} workers={args.workers}")
    for precision in ("fp32", "bf16"):
        ceiling = forward_only(classifier, args.batch_size, precision)
        theirs = timm_validate(root, classifier, args.batch_size, args.workers, precision)
        for decode in ("workers", "device"):
            ours = evaluate(classifier, images, device="cuda", precision=precision, batch_size=args.batch_size,
                            workers=args.workers, decode=decode).images_per_second
            print(f"{precision} decode={decode}: forward-only {ceiling:8.1f}/s  timm validate {theirs:8.1f}/s  "
                  f"nnprobe {ours:8.1f}/s  nnprobe/timm {ours / theirs:.2f}x  nnprobe/forward-only {ours / ceiling:.0%}")


if __name__ == "__main__":
    main()
