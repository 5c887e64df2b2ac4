"""nnprobe eval vs a timm-validate-style plain loop, same JPEG folder, model, batch and workers, one run.

The plain loop is what timm's validate.py and torchvision's reference do: ImageFolder with
Resize/CenterCrop/ToTensor/Normalize in the workers, float batches to the device, forward, top-k.
nnprobe's workers stop at uint8 (4x less to move) and normalise on the device.

    python bench/bench_eval.py --count 400 --model resnet18 --workers 2 --batch-size 32
Prints images/s of each, and the ratio nnprobe / plain (goal >= 0.97 on CPU), and the cost of writing the
per-sample file (`--save-predictions`, goal <= 2% of eval time).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch
from torchvision import datasets, transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_jpegs import make  # noqa: E402

from nnprobe.data.layouts import find_images  # noqa: E402
from nnprobe.evaluation import evaluate  # noqa: E402
from nnprobe.models import load_classifier  # noqa: E402


def plain_loop(root, classifier, device, batch_size, workers) -> tuple[float, int]:
    pre = classifier.preprocessing
    tf = transforms.Compose([
        transforms.Resize(pre.resize_size, interpolation=transforms.InterpolationMode(pre.interpolation),
                          antialias=True),
        transforms.CenterCrop(pre.crop_size), transforms.ToTensor(), transforms.Normalize(pre.mean, pre.std)])
    dataset = datasets.ImageFolder(root, transform=tf)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                         pin_memory=device.type == "cuda")
    net = classifier.net.to(device).eval()
    correct = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for x, y in loader:
            logits = net(x.to(device, non_blocking=True))
            correct += int((logits.argmax(1).cpu() == y).sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(dataset) / (time.perf_counter() - start), correct


def nnprobe_run(root, classifier, device, batch_size, workers, save_predictions=None) -> float:
    """images/s of nnprobe's evaluate, timed from the first batch to the summed counts, plus the per-sample
    file when asked (written after the counts: its cost is timed here, outside the images/s)."""
    images = find_images(root, class_names=classifier.class_names, wnids=classifier.wnids,
                         num_classes=classifier.num_classes)
    start = time.perf_counter()
    result = evaluate(classifier, images, device=str(device), batch_size=batch_size, workers=workers,
                      channels_last=False, save_predictions=save_predictions,
                      setup_checks=False)  # random weights are near chance: the setup diagnosis would run
    return result.total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "nnprobe-bench-jpegs"))
    args = parser.parse_args()
    root = make(args.root, args.count)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    classifier = load_classifier(args.model, weights=args.weights)
    plain, ours, saving = [], [], []
    rows = os.path.join(tempfile.gettempdir(), "nnprobe-bench-rows.jsonl")
    for _ in range(args.repeats):  # interleaved, best of each, so drift hits all
        plain.append(plain_loop(root, classifier, device, args.batch_size, args.workers)[0])
        ours.append(nnprobe_run(root, classifier, device, args.batch_size, args.workers))
        saving.append(nnprobe_run(root, classifier, device, args.batch_size, args.workers, save_predictions=rows))
    print(f"device={device} model={args.model} images={args.count} batch={args.batch_size} workers={args.workers}")
    print(f"plain loop (timm-validate style): {max(plain):8.1f} images/s  runs={[round(v, 1) for v in plain]}")
    print(f"nnprobe evaluate:                 {max(ours):8.1f} images/s  runs={[round(v, 1) for v in ours]}")
    print(f"nnprobe + --save-predictions:     {max(saving):8.1f} images/s  runs={[round(v, 1) for v in saving]}")
    print(f"ratio nnprobe/plain: {max(ours) / max(plain):.3f}   (whole call, model load excluded)")
    print(f"per-sample file cost: {100 * (max(ours) / max(saving) - 1):+.2f}% of eval time (goal <= 2%)")


if __name__ == "__main__":
    main()
