"""What `nnprobe merge` costs: N slices of an ImageNet-sized eval (1000 classes, 50,000 images with their
per-sample files) merged, against the time one eval of that size takes (minutes to hours): negligible.

    python bench/bench_merge.py --slices 8 --images 50000
    python bench/bench_merge.py --slices 10000 --images 50000 --glob   # goal: <= 10 s, exact
Prints the seconds to merge the counts alone, and with the per-sample files merged and verified too, and
checks the merged counts against the plain sums of the slices' counts (exact, or the run fails).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from nnprobe.merging import merge
from nnprobe.per_sample import EvalSamples, eval_rows, write


def make_parts(folder: str, slices: int, images: int, classes: int = 1000) -> list[str]:
    """Slice result JSONs shaped like `nnprobe eval --shard K/N --format json`, with per-sample files."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, images)
    top = np.where(rng.random((images, 1)) < 0.75, labels[:, None], rng.integers(0, classes, (images, 1)))
    top = np.concatenate([top, rng.integers(0, classes, (images, 4))], axis=1)
    paths = []
    for k in range(1, slices + 1):
        mine = np.arange(k - 1, images, slices)
        samples = EvalSamples(mine, labels[mine], top[mine], rng.random(len(mine)), rng.random(len(mine)),
                              rng.random(len(mine)))
        rows = os.path.join(folder, f"part{k}.preds")
        saved = write(rows, {"kind": "eval", "data_fingerprint": "f" * 64, "rows": len(mine), "num_classes": classes},
                      eval_rows(samples, [f"c/{i}.JPEG" for i in mine]))
        correct = int((samples.top[:, 0] == samples.labels).sum())
        correct5 = int((samples.top == samples.labels[:, None]).any(axis=1).sum())
        answer = samples.top[:, 0]
        seen = np.union1d(samples.labels, answer)  # as nnprobe writes it: the classes a slice saw or predicted
        per_class = [{"index": int(c), "name": str(c), "correct_top1": int(((samples.labels == c) & (answer == c)).sum()),
                      "total": int((samples.labels == c).sum()), "predicted": int((answer == c).sum())}
                     for c in seen]
        body = {"schema_version": 1, "kind": "eval", "correct_top1": correct, "correct_top5": correct5,
                "total": len(mine), "mean_loss": 1.0, "skipped": [], "converted": 0, "per_class": per_class,
                "predictions": {"distinct_classes": 0, "most_predicted": 0, "most_predicted_name": "",
                                "most_predicted_share": 0, "entropy_nats": 0},
                "model": {"spec": "m", "source": "timm", "weights": None, "architecture": "m", "num_classes": classes,
                          "preprocessing": {}},
                "data": {"path": "val", "layout": "folders:wnid", "fingerprint": "f" * 64,
                         "shard": {"index": k, "count": slices, "images": len(mine)}},
                "run": {"device": "cpu", "precision": "fp32", "world_size": 1, "seconds": 1.0, "versions": {}},
                "images_per_second": 1.0, "gates": [],
                "per_sample": {"path": os.path.basename(rows), "sha256": saved.sha256, "rows": saved.rows}}
        path = os.path.join(folder, f"part{k}.json")
        with open(path, "w") as handle:
            json.dump(body, handle)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--glob", action="store_true", help="give merge one quoted glob instead of N paths")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        parts = make_parts(folder, args.slices, args.images)
        given = [os.path.join(folder, "part*.json")] if args.glob else parts
        start = time.perf_counter()
        counts = merge(given)
        middle = time.perf_counter()
        merge(given, save_predictions=os.path.join(folder, "all.preds"))
        end = time.perf_counter()
        bodies = [json.load(open(p)) for p in parts]
    expected = (sum(b["correct_top1"] for b in bodies), sum(b["total"] for b in bodies))
    assert (counts.correct_top1, counts.total) == expected, ((counts.correct_top1, counts.total), expected)
    print(f"{args.slices} slices, {args.images} images, 1000 classes: counts {middle - start:.3f} s, "
          f"with per-sample files {end - middle:.3f} s; merged top-1 {counts.top1:.4f} over {counts.total} "
          f"(= the plain sums of the slices: exact)")


if __name__ == "__main__":
    main()
