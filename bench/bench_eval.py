"""nnprobe eval vs a timm-validate-style plain loop, same JPEG folder, model, batch and workers, one run.

The plain loop is what timm's validate.py and torchvision's reference do: ImageFolder with
Resize/CenterCrop/ToTensor/Normalize in the workers, float batches to the device, forward, top-k.
nnprobe's workers stop at uint8 (4x less to move) and normalise on the device.

    python bench/bench_eval.py --count 400 --model resnet18 --workers 2 --batch-size 32
Prints images/s of each, and the ratio nnprobe / plain (goal >= 0.97 on CPU), and the cost of writing the
per-sample file (`--save-predictions`, goal <= 2% of eval time). Beside them, the CPU milliseconds per image of
the main process and of the loader workers, and their ratio: on a machine others load, wall-clock ratios swing
by more than the 3% at stake, the CPU each side spends much less.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

import torch
from torchvision import datasets, transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_jpegs import make  # noqa: E402

from nnprobe.variants.labelling import variant_images  # noqa: E402
from nnprobe.evaluation import evaluate  # noqa: E402
from nnprobe.models import load_classifier  # noqa: E402


class Clock:
    """Wall seconds, this process's CPU seconds, and its reaped children's (the loader workers, joined when
    the loader is exhausted): on a machine others load, the CPU seconds per image move far less than wall."""

    def __init__(self) -> None:
        self.wall, self.main, self.workers = time.perf_counter(), time.process_time(), _children_cpu()

    def per_image(self, images: int) -> tuple[float, float, float]:
        """(images/s, main-process CPU ms per image, workers' CPU ms per image) since the clock started."""
        wall = time.perf_counter() - self.wall
        return (images / wall, 1000 * (time.process_time() - self.main) / images,
                1000 * (_children_cpu() - self.workers) / images)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plain_loop(root, classifier, device, batch_size, workers, columns=None) -> tuple[tuple[float, ...], int]:
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
    clock = Clock()
    with torch.inference_mode():
        for x, y in loader:
            logits = net(x.to(device, non_blocking=True))
            if columns is not None:  # hendrycks/natural-adv-examples eval.py: output[:, indices_in_1k]
                logits = logits[:, columns]
            correct += int((logits.argmax(1).cpu() == y).sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    return clock.per_image(len(dataset)), correct


def nnprobe_run(root, classifier, device, batch_size, workers, save_predictions=None,
                variant=None) -> tuple[float, float, float]:
    """`Clock.per_image` of the whole `evaluate` call (checks, loop, intervals, calibration suite, result),
    with the per-sample file written when asked; the folder's listing is not timed (nor the plain loop's)."""
    images = variant_images(root, variant, class_names=classifier.class_names, wnids=classifier.wnids,
                            num_classes=classifier.num_classes)
    clock = Clock()
    result = evaluate(classifier, images, device=str(device), batch_size=batch_size, workers=workers,
                      channels_last=False, save_predictions=save_predictions,
                      setup_checks=False)  # random weights are near chance: the setup diagnosis would run
    return clock.per_image(result.total)


def variant_folder(root: str, variant: str) -> tuple[str, list[int]]:
    """`root`'s JPEGs linked under the first 10 wnids of `variant` (ImageFolder's 0..9 are then the first 10 of
    the variant's sorted indices), and the variant's 200 ImageNet indices."""
    from nnprobe.models.imagenet import wnid_to_index
    from nnprobe.variants.protocols import subset_wnids

    wnids = sorted(subset_wnids(variant))
    out = f"{root}-{variant}"
    for folder, wnid in zip(sorted(os.listdir(root)), wnids):
        os.makedirs(os.path.join(out, wnid), exist_ok=True)
        for name in os.listdir(os.path.join(root, folder)):
            target = os.path.join(out, wnid, name)
            if not os.path.exists(target):
                os.link(os.path.join(root, folder, name), target)
    return out, sorted(wnid_to_index()[w] for w in wnids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--root", help="the JPEG folder, made when absent (default: a temporary folder per "
                        "--count: make() keeps a folder that already holds at least COUNT images, and one made "
                        "for a larger count would be timed whole)")
    parser.add_argument("--no-save-predictions", action="store_true",
                        help="skip the --save-predictions runs (a third of the time)")
    parser.add_argument("--variant", choices=("imagenet-a", "imagenet-r"), help="the same JPEGs under the first "
                        "10 classes of the variant: nnprobe applies its protocol, the plain loop its eval.py's mask")
    args = parser.parse_args()
    root = make(args.root, args.count)
    columns = None
    if args.variant:
        root, columns = variant_folder(root, args.variant)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    classifier = load_classifier(args.model, weights=args.weights)
    plain, ours, saving = [], [], []
    rows = os.path.join(tempfile.gettempdir(), "nnprobe-bench-rows.jsonl")
    for _ in range(args.repeats):  # interleaved, best of each, so drift hits all
        plain.append(plain_loop(root, classifier, device, args.batch_size, args.workers, columns)[0])
        ours.append(nnprobe_run(root, classifier, device, args.batch_size, args.workers, variant=args.variant))
        if not args.no_save_predictions:
            saving.append(nnprobe_run(root, classifier, device, args.batch_size, args.workers,
                                      save_predictions=rows, variant=args.variant))
    found = sum(len(files) for _, _, files in os.walk(root))
    print(f"device={device} model={args.model} images={found} batch={args.batch_size} workers={args.workers}"
          f" variant={args.variant}")
    for name, runs in (("plain loop (timm-validate style)", plain), ("nnprobe evaluate", ours),
                       ("nnprobe + --save-predictions", saving)):
        if not runs:
            continue
        rates = [round(r[0], 1) for r in runs]
        print(f"{name + ':':34s}{max(rates):8.1f} images/s  runs={rates}   CPU ms/image (least of the runs): "
              f"main {min(r[1] for r in runs):.1f}, workers {min(r[2] for r in runs):.1f}")
    best = {name: max(r[0] for r in runs) for name, runs in (("plain", plain), ("ours", ours), ("saving", saving))
            if runs}
    print(f"ratio nnprobe/plain: {best['ours'] / best['plain']:.3f}   (whole call, model load excluded)")
    cpu = [min(r[1] + r[2] for r in runs) for runs in (plain, ours)]
    print(f"CPU ratio plain/nnprobe: {cpu[0] / cpu[1]:.3f}   (main + workers CPU per image, least of the runs)")
    if saving:
        print(f"per-sample file cost: {100 * (best['ours'] / best['saving'] - 1):+.2f}% of eval time (goal <= 2%)")


if __name__ == "__main__":
    main()
