"""Calibration and where the errors are: ECE, NLL and Brier score, the reliability table, the most
confused class pairs, the worst classes, and ImageNet-ReaL top-1 (the gates on them: nnprobe.results).

Pure numpy over eval's per-sample answers (one entry per decoded image, in data order), so the numbers
do not depend on the device, the batch size or the world size. This module imports neither torch nor the
report layer, and not `nnprobe.results` (which imports it: the gates built from calibration live there).

ECE follows Guo et al. 2017 ("On Calibration of Modern Neural Networks", eq. 3 and 5): M equal-width
bins over the top-1 confidence, bin m = ((m-1)/M, m/M], a confidence of exactly 0 in the first bin, and
ECE = sum_m |B_m|/N * |acc(B_m) - conf(B_m)|. A confidence of exactly 1.0 (common: float32 softmax
saturates) is in the last bin, unlike torchmetrics <= 1.9, which puts it in a hidden extra bin
(Lightning-AI/torchmetrics#3510) and closes interior bins on the left; elsewhere the two agree.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from nnprobe.errors import DataError, UsageError

if TYPE_CHECKING:
    from nnprobe.results import PerClass

ECE_BINS = 15
REAL_CLASSES = 1000  # ImageNet-ReaL relabels the 1000 ImageNet-1k classes
REAL_MAX_BYTES = 64 << 20  # the published real.json is ~0.5 MB
_VAL_INDEX = re.compile(r"ILSVRC2012_val_(\d{8})(?!\d)")


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin (lower, upper]: how many images fell in it, and their accuracy and mean
    confidence (NaN when the bin is empty: no images, no claim)."""

    lower: float
    upper: float
    count: int
    accuracy: float
    confidence: float


@dataclass(frozen=True)
class Calibration:
    """How far the model's confidence is from its accuracy: ECE (Guo et al. 2017), NLL = mean cross-entropy
    of the label (nats), Brier = mean of sum_k (p_k - onehot_k)^2 (Brier 1950, in [0, 2]), and the bins."""

    ece: float
    nll: float
    brier: float
    bins: tuple[ReliabilityBin, ...]


@dataclass(frozen=True)
class ConfusedPair:
    """An off-diagonal cell of the confusion matrix: images of `true` answered as `predicted`."""

    true_index: int
    true_name: str
    predicted_index: int
    predicted_name: str
    count: int


def _vector(name: str, values: Any, dtype: Any) -> np.ndarray:
    array = np.asarray(values, dtype=dtype)
    if array.ndim != 1:
        raise UsageError(f"{name} must be one value per image, got an array of shape {array.shape}.")
    return array


def bin_index(confidence: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """The bin of each confidence: m such that edge[m] < c <= edge[m+1] (edges = linspace(0, 1, bins+1)),
    with c == 0 in bin 0."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)


def calibration(confidence: Any, correct: Any, nll: Any, brier: Any, bins: int = ECE_BINS) -> Calibration:
    """ECE over `bins` equal-width bins of the top-1 confidence, mean NLL and mean Brier score.

    Arguments are per image (same length): max softmax probability, top-1 right or not, cross-entropy of
    the label, and the multiclass Brier score. No images gives NaN numbers (None in JSON)."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise UsageError(f"The number of calibration bins must be a positive integer, got {bins!r}.")
    conf = _vector("confidence", confidence, np.float64)
    hits = _vector("correct", correct, bool).astype(np.float64)
    losses, briers = _vector("nll", nll, np.float64), _vector("brier", brier, np.float64)
    if not len(conf) == len(hits) == len(losses) == len(briers):
        raise UsageError(f"Calibration needs one value per image in each array, got lengths "
                         f"{len(conf)}, {len(hits)}, {len(losses)} and {len(briers)}.")
    if not np.all((conf >= 0.0) & (conf <= 1.0)):  # also refuses NaN
        raise UsageError("Confidences must be probabilities in [0, 1]; some are not (NaN or out of range).")
    n, edges = len(conf), np.linspace(0.0, 1.0, bins + 1)
    index = bin_index(conf, bins)
    count = np.bincount(index, minlength=bins)
    hit_sum = np.bincount(index, weights=hits, minlength=bins)
    conf_sum = np.bincount(index, weights=conf, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy, mean_conf = hit_sum / count, conf_sum / count
    ece = float(np.abs(hit_sum - conf_sum).sum() / n) if n else float("nan")
    table = tuple(ReliabilityBin(float(edges[m]), float(edges[m + 1]), int(count[m]),
                                 float(accuracy[m]), float(mean_conf[m])) for m in range(bins))
    return Calibration(ece=ece, nll=float(losses.mean()) if n else float("nan"),
                       brier=float(briers.mean()) if n else float("nan"), bins=table)


def _namer(name_of: Callable[[int], str] | Sequence[str]) -> Callable[[int], str]:
    return name_of if callable(name_of) else name_of.__getitem__


def confused_pairs(labels: Any, predicted: Any, name_of: Callable[[int], str] | Sequence[str],
                   k: int = 10) -> tuple[ConfusedPair, ...]:
    """The k most frequent (label, top-1 answer) pairs with label != answer; ties by true index, then
    predicted index, so the list is the same on every run."""
    if k < 0:
        raise UsageError(f"The number of confused pairs must be >= 0, got {k}.")
    truth, answer = _vector("labels", labels, np.int64), _vector("predicted", predicted, np.int64)
    if len(truth) != len(answer):
        raise UsageError(f"labels and predicted differ in length ({len(truth)} and {len(answer)}).")
    wrong = truth != answer
    pairs, counts = np.unique(np.stack([truth[wrong], answer[wrong]], axis=1), axis=0, return_counts=True)
    order = sorted(range(len(counts)), key=lambda i: (-int(counts[i]), int(pairs[i, 0]), int(pairs[i, 1])))
    name = _namer(name_of)
    return tuple(ConfusedPair(int(pairs[i, 0]), name(int(pairs[i, 0])), int(pairs[i, 1]),
                              name(int(pairs[i, 1])), int(counts[i])) for i in order[:k])


def worst_classes(per_class: Sequence[PerClass], k: int = 5) -> tuple[PerClass, ...]:
    """The k classes with images whose top-1 is lowest (exact fractions; ties by class index)."""
    if k < 0:
        raise UsageError(f"The number of worst classes must be >= 0, got {k}.")
    labelled = [pc for pc in per_class if pc.total > 0]
    return tuple(sorted(labelled, key=lambda pc: (Fraction(pc.correct_top1, pc.total), pc.index))[:k])


def _read_capped(path: str | os.PathLike) -> bytes:
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read(REAL_MAX_BYTES + 1)
    except OSError as exc:
        raise DataError(f"Cannot read the ReaL labels file {name}: {exc.strerror or exc}.") from None
    if len(data) > REAL_MAX_BYTES:
        raise DataError(f"The ReaL labels file {name} is larger than {REAL_MAX_BYTES >> 20} MiB; "
                        f"the published real.json is about 0.5 MB.")
    return data


def _valid_labels(entry: Any) -> bool:
    return isinstance(entry, list) and all(
        type(c) is int and 0 <= c < REAL_CLASSES for c in entry)  # noqa: E721 (bool is not a label)


def real_labels(path: str | os.PathLike) -> list[list[int]]:
    """The published ImageNet-ReaL labels (Beyer et al. 2020, real.json): for each validation image, in
    file-name order ILSVRC2012_val_00000001.., the list of its acceptable classes (possibly empty)."""
    name = os.fspath(path)
    data = _read_capped(path)
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"The ReaL labels file {name} is not valid JSON ({exc}).") from None
    if not isinstance(body, list) or not body:
        raise DataError(f"The ReaL labels file {name} must be a non-empty JSON list of label lists, "
                        f"one per validation image.")
    for number, entry in enumerate(body, start=1):
        if not _valid_labels(entry):
            raise DataError(f"The ReaL labels file {name} has an invalid entry for ILSVRC2012_val_{number:08d} "
                            f"(want a list of class indices in [0, {REAL_CLASSES})): {str(entry)[:60]}.")
    return body


def real_top1(real: Sequence[Sequence[int]], paths: Sequence[str], predicted: Any) -> tuple[int, int]:
    """ReaL top-1 as (correct, counted): an image counts when its ReaL list is non-empty (Beyer et al. 2020
    leave the others out) and is right when its top-1 answer is in that list. Each image's row in `real` is
    found from its file name ILSVRC2012_val_NNNNNNNN, so folder layout and data order do not matter."""
    answers = _vector("predicted", predicted, np.int64)
    correct, _, counted = real_topk(real, paths, answers[:, None])
    return correct, counted


def real_topk(real: Sequence[Sequence[int]], paths: Sequence[str], top: Any) -> tuple[int, int, int]:
    """ReaL top-1 and top-5 as (correct top-1, correct top-5, counted), from each image's top-k answers
    (`top`, [N, k], best first): right at top-5 when any of its first five answers is in its ReaL list, as
    timm's RealLabelsImagenet counts; images with an empty list are left out of both."""
    answers = np.asarray(top, dtype=np.int64)
    if answers.ndim != 2 or len(answers) != len(paths):
        raise UsageError(f"paths and answers differ in length ({len(paths)} and {len(answers)}).")
    correct1 = correct5 = counted = 0
    for path, row in zip(paths, answers.tolist()):
        found = _VAL_INDEX.search(str(path).replace("\\", "/").rsplit("/", 1)[-1])
        number = int(found.group(1)) if found else 0
        if not found or not 1 <= number <= len(real):
            raise DataError(f"{path} is not an ImageNet validation image named ILSVRC2012_val_NNNNNNNN "
                            f"within the {len(real)} images of the ReaL labels, so it has no ReaL label.")
        labels = real[number - 1]
        if labels:
            counted += 1
            correct1 += row[0] in labels
            correct5 += any(answer in labels for answer in row[:5])
    return correct1, correct5, counted


def combined(parts: Sequence[tuple[Calibration, int]]) -> Calibration:
    """The calibration of a whole data set from its slices' (`--shard K/N`), each with its image count:
    bin counts add up, bin accuracy and confidence and NLL/Brier are re-weighted by their counts, and the
    ECE is recomputed from the merged bins (equal to one pass, up to float rounding)."""
    parts = [(c, n) for c, n in parts if n]
    if not parts:
        return calibration([], [], [], [])
    total = sum(n for _, n in parts)
    bins = []
    for row in zip(*(c.bins for c, _ in parts)):
        count = sum(b.count for b in row)
        mean = (lambda attr: sum(getattr(b, attr) * b.count for b in row if b.count) / count) if count else None
        bins.append(ReliabilityBin(row[0].lower, row[0].upper, count, mean("accuracy") if mean else float("nan"),
                                   mean("confidence") if mean else float("nan")))
    ece = sum(b.count / total * abs(b.accuracy - b.confidence) for b in bins if b.count)
    return Calibration(ece, sum(c.nll * n for c, n in parts) / total, sum(c.brier * n for c, n in parts) / total,
                       tuple(bins))
