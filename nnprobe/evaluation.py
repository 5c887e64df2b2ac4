"""Exact top-1/top-5 evaluation, in one process or many (torchrun), counted in integers.

Workers decode and resize/crop to uint8; uint8 batches travel to the device (pinned memory), where they
become floats and the classifier normalises them. Each rank takes a disjoint shard with no padding, so
the counts are identical to one process at every world size.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nnprobe import distributed
from nnprobe.data.checks import check_batch_size, check_workers, nonfinite_error
from nnprobe.data.layouts import LabelledImages
from nnprobe.data.loader import ImageSamples, make_loader, shard_positions
from nnprobe.device import autocast, versions
from nnprobe.errors import DataError, NnprobeError, UsageError
from nnprobe.models.classifier import Classifier
from nnprobe.results import EvalResult, Gate, PerClass, PredictionSpread, RunInfo, SkippedFile

OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def default_workers() -> int:
    return max(0, min(8, (os.cpu_count() or 1) - 1))


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
    ctx = distributed.from_env()
    dev = distributed.device_for_rank(device, ctx)
    distributed.init(ctx, dev.type)
    num_classes = classifier.num_classes
    present = list(images.classes_present)
    if restrict_to_present:
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

    positions = shard_positions(len(images.samples), ctx.rank, ctx.world_size)
    if decode not in ("workers", "device"):
        raise UsageError(f"--decode {decode!r} is not one of workers, device.")
    dataset = ImageSamples(images.samples, classifier.preprocessing, positions, encoded_jpeg=decode == "device")
    loader = make_loader(dataset, batch_size=batch_size, workers=default_workers() if workers is None else workers,
                         pin_memory=dev.type == "cuda")
    # counts = correct_top1, correct_top5, total, converted, images with non-finite logits (loss: float64)
    counts = torch.zeros(5, dtype=torch.int64, device=dev)
    loss_sum = torch.zeros(1, dtype=torch.float64, device=dev)
    class_total = torch.zeros(num_classes, dtype=torch.int64, device=dev)
    class_correct = torch.zeros(num_classes, dtype=torch.int64, device=dev)
    class_predicted = torch.zeros(num_classes, dtype=torch.int64, device=dev)
    skipped: list[tuple[int, str]] = []
    k = min(5, len(present) if restrict_to_present else num_classes)
    chunk = batch_size
    done = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            x, labels, decode_skips = _batch_on_device(batch, dev, classifier.preprocessing)
            if batch.skipped or decode_skips:
                if strict:
                    position, reason = (batch.skipped + decode_skips)[0]
                    raise DataError(f"{images.samples[position][0]}: {reason} (--strict).")
                skipped.extend(batch.skipped + decode_skips)
            if labels.numel():
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                logits, chunk = _forward_with_backoff(forward, x.float().div_(255), dev, precision, chunk)
                logits = logits.float()
                finite = torch.isfinite(logits).all(dim=1)
                counts[4] += (~finite).sum()
                targets = labels
                if restrict_to_present:
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
                predicted = present_t[top[:, 0]] if restrict_to_present else top[:, 0]
                class_predicted += torch.bincount(predicted, minlength=num_classes)
            counts[3] += batch.converted
            done += len(batch.positions) + len(batch.skipped) + len(batch.encoded)
            if progress is not None:
                progress(done, len(dataset))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    distributed.sum_tensor(counts, ctx)
    distributed.sum_tensor(loss_sum, ctx)
    distributed.sum_tensor(class_total, ctx)
    distributed.sum_tensor(class_correct, ctx)
    distributed.sum_tensor(class_predicted, ctx)
    seconds = time.perf_counter() - start
    all_skipped = sorted(s for part in distributed.gather_objects(skipped, ctx) for s in part)
    seconds = max(distributed.gather_objects(seconds, ctx))
    distributed.finish(ctx)

    correct1, correct5, total, converted, nonfinite = (int(v) for v in counts.tolist())
    if nonfinite:
        raise nonfinite_error(nonfinite, total, precision)
    totals, corrects, predicted = class_total.tolist(), class_correct.tolist(), class_predicted.tolist()
    per_class = tuple(PerClass(i, classifier.label(i), corrects[i], totals[i], predicted[i])
                      for i in range(num_classes) if totals[i] or predicted[i])
    skipped_files = images.skipped + tuple(SkippedFile(images.samples[p][0], r) for p, r in all_skipped)
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
        run=RunInfo(device=str(dev), precision=precision, world_size=ctx.world_size, seconds=seconds,
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
        passed = measured >= threshold
        verdict = "meets" if passed else "is below"
        gates.append(Gate(name, threshold, measured, passed,
                          f"{name.split('-')[1]} {measured:.4f} {verdict} the required {threshold:.4f}"))
    return dataclasses.replace(result, gates=tuple(gates))


def _batch_on_device(batch, dev: torch.device, pre) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, str]]]:
    """uint8 pixels and labels on the device: worker-decoded images, plus JPEGs decoded there."""
    x = batch.pixels.to(dev, non_blocking=True)
    labels = batch.labels.to(dev, non_blocking=True)
    if not batch.encoded:
        return x, labels, []
    from nnprobe.data.device_decode import decode_resize_crop

    decoded, reasons = decode_resize_crop(batch.encoded, dev, pre)
    kept = [i for i, reason in enumerate(reasons) if reason is None]
    skips = [(p, r) for p, r in zip(batch.encoded_positions, reasons) if r is not None]
    decoded_labels = batch.encoded_labels[kept].to(dev, non_blocking=True)
    if labels.numel() == 0:
        return decoded, decoded_labels, skips
    return torch.cat([x, decoded]), torch.cat([labels, decoded_labels]), skips


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
