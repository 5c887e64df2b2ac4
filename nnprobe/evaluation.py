"""Exact top-1/top-5 evaluation, in one process or many (torchrun), counted in integers.

Workers decode and resize/crop to uint8; uint8 batches travel to the device (pinned memory), where they
become floats and the classifier normalises them. Each rank takes a disjoint shard with no padding, so
the counts are identical to one process at every world size.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from nnprobe.data.checks import check_batch_size, check_workers, nonfinite_error
from nnprobe.data.layouts import LabelledImages
from nnprobe.data.shards import Shard
from nnprobe.device import autocast, versions
from nnprobe.errors import DataError, NnprobeError, UsageError
from nnprobe.models.classifier import Classifier
from nnprobe.results import EvalResult, PerClass, PredictionSpread, RunInfo, accuracy_gate

OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def evaluate(classifier: Classifier, images: LabelledImages, *, device: str = "auto", precision: str = "fp32",
             batch_size: int = 64, workers: int | None = None, strict: bool = False,
             restrict_to_present: bool = False, compile: bool = False, channels_last: bool | None = None,
             decode: str = "workers",
             min_top1: float | None = None, min_top5: float | None = None,
             progress: Callable[[int, int], None] | None = None) -> EvalResult:
    check_batch_size(batch_size)
    check_workers(workers)
    if classifier.preprocessing.crop_size is None:
        raise UsageError("Evaluation batches need a fixed input size: give the model a crop (--crop N).")
    if strict and images.skipped:
        first = images.skipped[0]
        raise DataError(f"{first.path}: {first.reason} (--strict).")
    num_classes = classifier.num_classes
    present = list(images.classes_present)
    k = min(5, len(present) if restrict_to_present else num_classes)
    with Shard(images, classifier.preprocessing, device=device, batch_size=batch_size, workers=workers,
               decode=decode, strict=strict, progress=progress) as shard:
        tallies = _count(classifier, shard, present if restrict_to_present else None, k, precision=precision,
                         compile=compile, channels_last=channels_last, chunk=batch_size)
        gathered = shard.finish(*tallies)
    counts, loss_sum, class_total, class_correct, class_predicted = tallies
    dev, seconds = shard.device, gathered.seconds
    correct1, correct5, total, converted, nonfinite = (int(v) for v in counts.tolist())
    if nonfinite:
        raise nonfinite_error(nonfinite, total, precision)
    totals, corrects, predicted = class_total.tolist(), class_correct.tolist(), class_predicted.tolist()
    per_class = tuple(PerClass(i, classifier.label(i), corrects[i], totals[i], predicted[i])
                      for i in range(num_classes) if totals[i] or predicted[i])
    skipped_files = images.skipped + gathered.skipped
    if total == 0:
        raise DataError(f"None of the {len(images.samples)} images could be decoded "
                        f"(first: {skipped_files[0].path}: {skipped_files[0].reason}).")
    result = EvalResult(
        correct_top1=correct1, correct_top5=correct5, total=total,
        mean_loss=float(loss_sum.item()) / total, skipped=skipped_files, converted=converted,
        per_class=per_class, predictions=PredictionSpread.from_counts(predicted, classifier.label),
        model=classifier.info,
        data={"path": images.root, "layout": images.layout, "images_found": len(images.samples),
              "class_mapping": images.mapping, "notes": list(images.notes),
              "logits": f"restricted to the {len(present)} classes present" if restrict_to_present
              else f"all {num_classes} classes", "top_k": k},
        run=RunInfo(device=str(dev), precision=precision, world_size=gathered.world_size, seconds=seconds,
                    versions=versions()),
        images_per_second=total / seconds if seconds > 0 else float("nan"),
    )
    return _with_gates(result, min_top1, min_top5)


def _with_gates(result: EvalResult, min_top1: float | None, min_top5: float | None) -> EvalResult:
    import dataclasses

    gates = []
    for name, threshold, measured in (("min-top1", min_top1, result.top1), ("min-top5", min_top5, result.top5)):
        if threshold is None:
            continue
        gates.append(accuracy_gate(name, threshold, measured))
    return dataclasses.replace(result, gates=tuple(gates))


def _count(classifier: Classifier, shard: Shard, present: list[int] | None, k: int, *, precision: str,
           compile: bool, channels_last: bool | None, chunk: int) -> tuple[torch.Tensor, ...]:
    """Forward every batch of this rank's shard and count, on the device: [top-1, top-5, total, converted,
    images with non-finite logits] (int64), the loss sum (float64), and per class labels, correct and
    predicted (int64). With `present`, logits are restricted to those classes."""
    dev = shard.device
    num_classes = classifier.num_classes
    if present is not None:
        position_of = torch.full((num_classes,), -1, dtype=torch.int64)
        position_of[present] = torch.arange(len(present))
        present_t = torch.tensor(present, dtype=torch.int64, device=dev)
        position_of = position_of.to(dev)
    model = classifier.to(dev).eval()
    if channels_last is None:
        channels_last = dev.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile else model
    counts = torch.zeros(5, dtype=torch.int64, device=dev)
    loss_sum = torch.zeros(1, dtype=torch.float64, device=dev)
    class_total, class_correct, class_predicted = (torch.zeros(num_classes, dtype=torch.int64, device=dev)
                                                   for _ in range(3))
    with torch.inference_mode():
        for batch in shard:
            x, labels = batch.pixels, batch.labels
            if labels.numel():
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                logits, chunk = _forward_with_backoff(forward, x.float().div_(255), dev, precision, chunk)
                logits = logits.float()
                finite = torch.isfinite(logits).all(dim=1)
                counts[4] += (~finite).sum()
                targets = labels
                if present is not None:
                    logits = logits.index_select(1, present_t)
                    targets = position_of[labels]
                loss_sum += F.cross_entropy(logits, targets, reduction="sum").double()
                top = logits.topk(k, dim=1).indices
                hit1 = top[:, 0] == targets
                hit5 = (top == targets[:, None]).any(dim=1)
                counts[0] += hit1.sum()
                counts[1] += hit5.sum()
                counts[2] += labels.numel()
                class_total += torch.bincount(labels, minlength=num_classes)
                class_correct += torch.bincount(labels[hit1], minlength=num_classes)
                predicted = present_t[top[:, 0]] if present is not None else top[:, 0]
                class_predicted += torch.bincount(predicted, minlength=num_classes)
            counts[3] += batch.converted
    return counts, loss_sum, class_total, class_correct, class_predicted


def _forward_with_backoff(model, x: torch.Tensor, dev: torch.device, precision: str, chunk: int):
    """Forward in chunks of `chunk` images, halving it on out-of-memory instead of crashing; the
    smaller chunk is kept for the following batches."""
    while True:
        try:
            with autocast(dev, precision):
                if chunk >= x.shape[0]:
                    return model(x), chunk
                return torch.cat([model(part) for part in x.split(chunk)]), chunk
        except OutOfMemoryError:
            if chunk <= 1:
                raise NnprobeError("Out of memory even with one image per batch; use a smaller model or "
                                   "another device.") from None
            chunk = max(1, min(chunk, x.shape[0]) // 2)
            if dev.type == "cuda":
                torch.cuda.empty_cache()
