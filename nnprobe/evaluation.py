"""Exact top-1/top-5 evaluation, in one process or many (torchrun), counted in integers.

Workers decode and resize/crop to uint8; uint8 batches travel to the device (pinned memory), where they
become floats and the classifier normalises them. Each rank takes a disjoint shard with no padding, so
the counts are identical to one process at every world size.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nnprobe.calibration import calibration, confused_pairs, real_top1
from nnprobe.calibration import real_labels as real_labels_of
from nnprobe.calibration_merge import CalibrationSums
from nnprobe.calibration_suite import suite
from nnprobe.calibration_tally import CalibrationTally
from nnprobe.parity_tally import ReferenceRun
from nnprobe.data.checks import check_batch_size, check_workers, nonfinite_error
from nnprobe.data.layouts import LabelledImages
from nnprobe.data.shards import Shard
from nnprobe.device import autocast, versions
from nnprobe.errors import DataError, NnprobeError, UsageError
from nnprobe.intervals import CONFIDENCE, RESAMPLES, SEED, check_confidence, check_resamples
from nnprobe.models.classifier import Classifier
from nnprobe.options.parts import Part, parse_part, slice_info
from nnprobe.per_sample import EvalSamples, data_fingerprint, save, with_paths
from nnprobe.results import (EvalResult, PerClass, PredictionSpread, RealTop1, RunInfo, VariantTop1, eval_gates,
                             parity_gates)

OutOfMemoryError = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def evaluate(classifier: Classifier, images: LabelledImages, *, device: str = "auto", precision: str = "fp32",
             batch_size: int = 64, workers: int | None = None, strict: bool = False,
             restrict_to_present: bool = False, compile: bool = False, channels_last: bool | None = None,
             decode: str = "workers", save_predictions: str | None = None, shard: Part | str | None = None,
             real_labels: str | None = None, min_top1: float | None = None, min_top5: float | None = None,
             max_ece: float | None = None, min_class_top1: float | None = None, setup_checks: bool = True,
             confidence: float = CONFIDENCE, bootstrap_resamples: int = RESAMPLES, seed: int = SEED,
             reference: Classifier | None = None, max_flips: int | None = None, max_logit_diff: float | None = None,
             progress: Callable[[int, int], None] | None = None, observe: Callable | None = None,
             source: Callable[..., Shard] = Shard) -> EvalResult:
    """Top-1/top-5 (exact counts), loss, calibration and per-class errors of `classifier` on `images`; when
    top-1 is near chance or the answers concentrate, `setup_checks` measures which setup mistake explains it
    (`nnprobe.setup_checks`). Intervals are at `confidence`: exact on counts, percentile bootstrap
    (`bootstrap_resamples` resamples drawn from `seed`) on the calibration means. With `reference`, that model
    runs on the same batches and `parity` compares the two image by image (gates `max_flips`, default 0,
    and `max_logit_diff`). `observe(pixels, positions, labels, logits)` sees every batch's full logits. `source`
    makes the batches, called as `Shard` is (several models sharing one decoding pass give their own)."""
    check_confidence(confidence)
    check_resamples(bootstrap_resamples)
    follower = ReferenceRun.checked(classifier, reference, shard, max_flips, max_logit_diff, precision)
    gates = dict(min_top1=min_top1, min_top5=min_top5, max_ece=max_ece, min_class_top1=min_class_top1)
    part = _checked(classifier, images, batch_size=batch_size, workers=workers, strict=strict, shard=shard,
                    gates=gates, real_labels=real_labels, restrict_to_present=restrict_to_present)
    present = list(images.classes_present)
    groups = _groups(classifier, images, present, restrict_to_present)
    k = min(5, len(groups) if groups is not None else classifier.num_classes)
    with source(images, classifier.preprocessing, device=device, batch_size=batch_size, workers=workers,
                decode=decode, strict=strict, part=part, progress=progress) as sharded:
        if follower is not None and sharded.ctx.world_size > 1:
            raise UsageError("--reference-model compares in one process: not with --nproc or torchrun.")
        tallies, rows, tally = _count(classifier, sharded, groups, k, precision=precision, compile=compile,
                                      channels_last=channels_last, chunk=batch_size, hook=_hooks(follower, observe))
        gathered = sharded.finish(*tallies, *tally.tensors)
        samples = with_paths(EvalSamples.merged(sharded.gather(rows)), images.root, images.samples)
    result = _assemble(classifier, images, tallies, gathered, samples, part=part, precision=precision,
                       device=sharded.device, logits=_logits_words(classifier, images, present, restrict_to_present),
                       k=k)
    classwise, nll_sums = tally.arrays()
    result = dataclasses.replace(result, confidence_level=confidence, calibration_suite=suite(
        samples.confidence, samples.correct, samples.loss, samples.brier, classwise=classwise,
        temperature_sums=nll_sums, confidence=confidence, resamples=bootstrap_resamples, seed=seed),
        calibration_sums=CalibrationSums.of(classwise, nll_sums) if part is not None else None)
    if setup_checks and part is None and sharded.ctx.is_main:
        result = _explained(result, classifier, images, device=sharded.device, batch_size=batch_size,
                            restrict_to_present=groups is not None)
    saved = save(result, save_predictions) if save_predictions and sharded.ctx.is_main else None
    real = _real_top1(real_labels, samples, images) if real_labels else None
    gated = eval_gates(result, **gates)
    if follower is not None:
        parity = follower.tally.result(lambda p: images.samples[p][0], confidence)
        result = dataclasses.replace(result, parity=parity)
        gated += parity_gates(parity, 0 if max_flips is None else max_flips, max_logit_diff)
    return dataclasses.replace(result, per_sample=saved, real=real, gates=gated,
                               variant=_variant_top1(images, tallies[0]))


def _checked(classifier: Classifier, images: LabelledImages, *, batch_size, workers, strict, shard, gates,
             real_labels, restrict_to_present) -> Part | None:
    """Everything that can be refused before a single image is decoded."""
    check_batch_size(batch_size)
    check_workers(workers)
    part = parse_part(shard)
    if part is not None and any(v is not None for v in gates.values()):
        raise UsageError("Gates judge the whole data set: give them to nnprobe merge, not to a --shard run.")
    if classifier.preprocessing.crop_size is None:
        raise UsageError("Evaluation batches need a fixed input size: give the model a crop (--crop N).")
    if strict and images.skipped:
        first = images.skipped[0]
        raise DataError(f"{first.path}: {first.reason} (--strict).")
    if real_labels and (restrict_to_present or classifier.num_classes != 1000):
        raise UsageError("--real-labels relabels ImageNet-1k's validation set: it needs a 1000-class model and "
                         "all 1000 logits (not --restrict-to-present).")
    _check_variant(images.variant, real_labels, restrict_to_present)
    return part


def _hooks(*hooks: Callable | None) -> Callable | None:
    """One hook calling each given one (None when none is)."""
    given = [h for h in hooks if h is not None]
    if len(given) < 2:
        return given[0] if given else None
    return lambda *batch: [h(*batch) for h in given] and None


def _check_variant(variant, real_labels, restrict_to_present: bool) -> None:
    if variant is None:
        return
    name = variant.protocol.name
    if restrict_to_present:
        raise UsageError(f"--restrict-to-present and --variant {name} both choose the logits: give one (the "
                         "variant's protocol already restricts a subset's argmax to its classes).")
    if name == "real" and not real_labels:
        raise UsageError("--variant real scores val against the ReaL labels: give --real-labels real.json.")
    if real_labels and name not in ("val", "real"):
        raise UsageError(f"--real-labels relabels ImageNet val, not {variant.protocol.title}.")


def _groups(classifier: Classifier, images: LabelledImages, present: list[int],
            restrict_to_present: bool) -> tuple[tuple[int, ...], ...] | None:
    """The classes the argmax is over, each as the model indices it accepts (None: all of them)."""
    if restrict_to_present:
        return tuple((c,) for c in present)
    variant = images.variant
    if variant is None or variant.protocol.groups is None:
        return None
    groups = variant.protocol.groups
    covered = {c for g in groups for c in g}
    outside = [c for c in present if c not in covered]
    if outside or max(covered) >= classifier.num_classes:
        raise DataError(f"Class {classifier.label(outside[0]) if outside else max(covered)} is not one of "
                        f"{variant.protocol.title}'s classes: the labels do not fit --variant "
                        f"{variant.protocol.name}.")
    return groups


def _logits_words(classifier: Classifier, images: LabelledImages, present: list[int], restricted: bool) -> str:
    if restricted:
        return f"restricted to the {len(present)} classes present"
    if images.variant is not None and images.variant.protocol.groups is not None:
        return f"{images.variant.protocol.title}: {images.variant.protocol.describe()}"
    return f"all {classifier.num_classes} classes"


def _variant_top1(images: LabelledImages, counts: torch.Tensor) -> VariantTop1 | None:
    """The variant's record: its protocol, and the argmax over all classes counted beside the headline."""
    if images.variant is None:
        return None
    p, values = images.variant.protocol, counts.tolist()
    return VariantTop1(p.name, p.title, images.variant.how, p.describe(), p.ways, int(values[5]), int(values[2]),
                       images.variant.excluded, images.border)


def _assemble(classifier: Classifier, images: LabelledImages, tallies, gathered, samples: EvalSamples, *,
              part: Part | None, precision: str, device, logits: str, k: int) -> EvalResult:
    """The result from the summed counts and every image's answer."""
    counts, loss_sum, class_total, class_correct, class_predicted = tallies
    correct1, correct5, total, converted, nonfinite = (int(v) for v in counts.tolist()[:5])
    if nonfinite:
        raise nonfinite_error(nonfinite, total, precision)
    totals, corrects, predicted = class_total.tolist(), class_correct.tolist(), class_predicted.tolist()
    per_class = tuple(PerClass(i, classifier.label(i), corrects[i], totals[i], predicted[i])
                      for i in range(classifier.num_classes) if totals[i] or predicted[i])
    skipped_files = images.skipped + gathered.skipped
    if total == 0 and part is None:  # a slice may be empty or all broken: `nnprobe merge` judges the whole
        raise DataError(f"None of the {len(images.samples)} images could be decoded "
                        f"(first: {skipped_files[0].path}: {skipped_files[0].reason}).")
    seconds = gathered.seconds
    return EvalResult(
        correct_top1=correct1, correct_top5=correct5, total=total,
        mean_loss=float(loss_sum.item()) / total if total else float("nan"), skipped=skipped_files,
        converted=converted, per_class=per_class,
        predictions=PredictionSpread.from_counts(predicted, classifier.label), model=classifier.info,
        data={"path": images.root, "layout": images.layout, "images_found": len(images.samples),
              "fingerprint": data_fingerprint(images.root, images.samples), **slice_info(part, len(images.samples)),
              "class_mapping": images.mapping, "notes": list(images.notes), "logits": logits, "top_k": k},
        run=RunInfo(device=str(device), precision=precision, world_size=gathered.world_size, seconds=seconds,
                    versions=versions()),
        images_per_second=total / seconds if seconds > 0 else float("nan"),
        calibration=calibration(samples.confidence, samples.correct, samples.loss, samples.brier),
        confused_pairs=confused_pairs(samples.labels, samples.predicted, classifier.label),
        samples=samples,
    )


def _explained(result: EvalResult, classifier: Classifier, images: LabelledImages, *, device, batch_size: int,
               restrict_to_present: bool) -> EvalResult:
    """The result with the setup mistakes that explain a near-chance or concentrated answer, measured on a
    subset (a few extra forwards, only when triggered)."""
    from nnprobe.setup_checks import explain_low_accuracy, needs_explaining

    totals = [pc.total for pc in result.per_class if pc.total]
    if not totals or not needs_explaining(result.top1, len(totals), result.predictions.most_predicted_share,
                                          largest_class_share=max(totals) / result.total):
        return result
    samples = result.samples
    found = explain_low_accuracy(classifier, images, labels=samples.labels, predicted=samples.predicted,
                                 device=str(device), batch_size=batch_size, restrict_to_present=restrict_to_present)
    return dataclasses.replace(result, setup_findings=found)


def _real_top1(path: str, samples: EvalSamples, images: LabelledImages) -> RealTop1:
    paths = [images.samples[p][0] for p in samples.positions.tolist()]
    correct, counted = real_top1(real_labels_of(path), paths, samples.predicted)
    return RealTop1(path, correct, counted)


def _count(classifier: Classifier, shard: Shard, groups: tuple[tuple[int, ...], ...] | None, k: int, *,
           precision: str, compile: bool, channels_last: bool | None, chunk: int, hook: Callable | None = None,
           ) -> tuple[tuple[torch.Tensor, ...], EvalSamples, CalibrationTally]:
    """Forward every batch of this rank's shard and count, on the device: [top-1, top-5, total, converted,
    images with non-finite logits, top-1 of the argmax over all classes] (int64), the loss sum (float64), and
    per class labels, correct and predicted (int64); each image's answer (`EvalSamples`); and the calibration
    tally over the logits' columns. With `groups`, the argmax is over those classes (a group's logit is the
    largest of its members'; the answers stay in the model's class indices: a group's first member).
    `hook(pixels, positions, labels, logits)` sees every batch before any restriction."""
    dev = shard.device
    num_classes = classifier.num_classes
    rows = _Rows()
    restrict = Restriction(groups, num_classes, dev) if groups is not None else None
    model = classifier.to(dev).eval()
    tally = CalibrationTally(len(groups) if groups is not None else num_classes, dev)
    if channels_last is None:
        channels_last = dev.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compile else model
    counts = torch.zeros(6, dtype=torch.int64, device=dev)
    loss_sum = torch.zeros(1, dtype=torch.float64, device=dev)
    class_total, class_correct, class_predicted = (torch.zeros(num_classes, dtype=torch.int64, device=dev)
                                                   for _ in range(3))
    with torch.inference_mode():
        for batch in shard:
            x, labels = batch.pixels, batch.labels
            if labels.numel():
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                pixels = x.float().div_(255)
                logits, chunk = _forward_with_backoff(forward, pixels, dev, precision, chunk)
                logits = logits.float()
                if hook is not None:
                    hook(pixels, batch.positions, labels, logits)
                counts[4] += (~torch.isfinite(logits).all(dim=1)).sum()
                targets = labels
                if restrict is not None:
                    counts[5] += restrict.all_classes_hits(logits, labels).sum()
                    logits, targets = restrict.logits(logits), restrict.position_of[labels]
                losses = F.cross_entropy(logits, targets, reduction="none")
                loss_sum += losses.sum().double()
                top = logits.topk(k, dim=1).indices
                hit1 = top[:, 0] == targets
                counts[0] += hit1.sum()
                counts[1] += (top == targets[:, None]).any(dim=1).sum()
                counts[2] += labels.numel()
                if restrict is None:
                    counts[5] += hit1.sum()
                top = restrict.first[top] if restrict is not None else top
                class_total += torch.bincount(labels, minlength=num_classes)
                class_correct += torch.bincount(labels[hit1], minlength=num_classes)
                class_predicted += torch.bincount(top[:, 0], minlength=num_classes)
                rows.add(batch.positions, labels, top, losses, logits, targets)
                tally.add(logits, targets)
            counts[3] += batch.converted
    return (counts, loss_sum, class_total, class_correct, class_predicted), rows.collected(), tally


class Restriction:
    """An argmax over groups of the model's classes (a variant's protocol, or the classes present): each
    group's logit is the largest of its members'; `position_of` maps a class to its group (-1: none)."""

    def __init__(self, groups: tuple[tuple[int, ...], ...], num_classes: int, dev: torch.device) -> None:
        width = max(len(g) for g in groups)
        padded = [list(g) + [g[0]] * (width - len(g)) for g in groups]  # repeating a member leaves the max
        self.columns = torch.tensor(padded, dtype=torch.int64, device=dev)
        self.first = self.columns[:, 0].contiguous()
        position_of = torch.full((num_classes,), -1, dtype=torch.int64)
        for position, group in enumerate(groups):
            position_of[list(group)] = position
        self.position_of = position_of.to(dev)

    def logits(self, logits: torch.Tensor) -> torch.Tensor:
        if self.columns.shape[1] == 1:
            return logits.index_select(1, self.first)
        return logits[:, self.columns].amax(dim=2)

    def all_classes_hits(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The argmax over all classes falls in the label's group."""
        return self.position_of[logits.argmax(dim=1)] == self.position_of[labels]


class _Rows:
    """Per-sample answers of this rank, batch by batch: kept on the device until the end (one copy)."""

    def __init__(self) -> None:
        self.parts: list[tuple[torch.Tensor, ...]] = []

    def add(self, positions, labels, top, losses, logits, targets) -> None:
        probabilities = logits.softmax(dim=1)
        confidence = probabilities.amax(dim=1)
        # multiclass Brier score: sum_k (p_k - onehot_k)^2 = sum_k p_k^2 - 2 p_y + 1
        brier = probabilities.square().sum(dim=1) - 2 * probabilities.gather(1, targets[:, None])[:, 0] + 1
        self.parts.append((positions, labels, top, losses, confidence, brier))

    def collected(self) -> EvalSamples:
        import numpy as np

        if not self.parts:
            return EvalSamples(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 1), np.int64),
                               *(np.zeros(0, np.float64) for _ in range(3)))
        columns = [torch.cat(column).cpu() for column in zip(*self.parts)]
        return EvalSamples(columns[0].numpy().astype(np.int64), columns[1].numpy().astype(np.int64),
                           columns[2].numpy().astype(np.int64),
                           *(c.double().numpy() for c in columns[3:]))


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
