"""Accuracy under the ImageNet-C corruptions in one pass over the data, counted in exact integers.

Each clean batch (uint8 at the model's crop, on the device) is corrupted at every (corruption, severity)
there and classified; each sample's randomness comes from a generator seeded by (seed, its position in
the data set, corruption, severity), so the counts are the same at any batch size or world size.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence

import torch

from nnprobe.imagenet_c import (BENCHMARKS, CORRUPTIONS, corrupt, parse_corruptions, parse_perturbations,
                                parse_severities, sample_seed)
from nnprobe.imagenet_c import perturb, verdicts
from nnprobe.imagenet_c.jpeg import PUBLISHED_QUALITY, roundtrip
from nnprobe.imagenet_c.results import (CleanCounts, CorruptionPoint, CorruptionResult, CorruptionSettings,
                                         PerturbationPoint, corruption_gate)
from nnprobe.errors import DataError, UsageError
from nnprobe.intervals import CONFIDENCE, RESAMPLES, check_confidence, check_resamples
from nnprobe.results import RunInfo


def _count(logits: torch.Tensor, labels: torch.Tensor) -> tuple[list[int], torch.Tensor]:
    """[top-1, top-5, total] of one batch, and each image's top-1 verdict."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit = top[:, 0] == labels
    return [int(hit.sum()), int((top == labels[:, None]).any(dim=1).sum()), labels.numel()], hit


def sweep_batch(classifier, x: torch.Tensor, labels: torch.Tensor, positions: Sequence[int],
                grid: Sequence[tuple[str, int]], seed: int, counts: torch.Tensor, nonfinite: torch.Tensor,
                autocast=None, jpeg_quality: int | None = None, perturbations: Sequence[str] = (),
                context: tuple[torch.Tensor, torch.Tensor] | None = None, x264: bool = False) -> torch.Tensor:
    """Add one batch (float [0, 1] NCHW on the device) to `counts` (1 + len(grid) + len(perturbations), 3):
    row 0 clean, then one row per (corruption, severity) (top-1, top-5, total), then one per ImageNet-P
    perturbation (flips, comparisons, top-5 distance summed); `nonfinite` counts samples with NaN/Inf logits
    and samples seen. jpeg_quality: each corrupted batch saved and decoded as JPEG first, as the published
    files were. context: (uint8 canvas, boxes) around `x`, for the geometric perturbations. x264: each
    perturbation sequence encoded and decoded as the published videos were (`x264.py`). Returns each
    image's top-1 verdict at clean and every grid point (bool, images x 1 + grid)."""
    autocast = autocast or contextlib.nullcontext()
    broken = torch.zeros(labels.numel(), dtype=torch.bool, device=x.device)
    rows, hits = [], []
    for row, (name, severity) in enumerate([(None, 0), *grid]):
        pixels = x if name is None else corrupt(x, name, severity,
                                                [sample_seed(seed, p, name, severity) for p in positions])
        if name is not None and jpeg_quality is not None:
            pixels = roundtrip(pixels, jpeg_quality)
        with torch.no_grad(), autocast:
            logits = classifier(pixels).float()
        broken |= ~torch.isfinite(logits).all(dim=1)
        row_counts, hit = _count(logits, labels)
        rows.append(row_counts)
        hits.append(hit)
    rows = [torch.tensor(rows, dtype=torch.int64, device=counts.device)]
    for name in perturbations:
        row, bad = perturb.count_sequence(lambda frame: _classify(classifier, frame, autocast), x, name,
                                          _generators(x, [perturb.perturbation_seed(seed, p, name) for p in positions]),
                                          context, x264)
        rows.append(row.to(counts.device)[None])
        broken |= bad
    counts += torch.cat(rows)
    nonfinite += torch.tensor([int(broken.sum()), labels.numel()], dtype=torch.int64, device=nonfinite.device)
    return torch.stack(hits, dim=1)


def _classify(classifier, pixels: torch.Tensor, autocast) -> torch.Tensor:
    with torch.no_grad(), autocast:
        return classifier(pixels).float()


def _generators(x: torch.Tensor, seeds: Sequence[int]) -> list[torch.Generator]:
    return [torch.Generator(device=x.device).manual_seed(int(s)) for s in seeds]


def sweep_batches(classifier, batches: Iterable[tuple], grid: Sequence[tuple[str, int]], *, seed: int = 0,
                  device="cpu", precision: str = "fp32", progress: Callable[[int, int], None] | None = None,
                  total: int | None = None, jpeg_quality: int | None = None,
                  perturbations: Sequence[str] = (), x264: bool = False) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """The loop over plain batches of (pixels uint8 or float [0, 1] NCHW, labels[, positions[, boxes]]);
    positions default to the running count. With boxes the pixels are canvases around the model's crop
    (`data/context.py`), cropped here. Returns the int64 counts and non-finite tallies on `device`, and this
    process's (positions, per-image verdicts) as numpy arrays (`sweep_batch`)."""
    from nnprobe.device import autocast as make_autocast

    dev = torch.device(device) if isinstance(device, str) else device
    counts = torch.zeros(1 + len(grid) + len(perturbations), 3, dtype=torch.int64, device=dev)
    nonfinite = torch.zeros(2, dtype=torch.int64, device=dev)
    classifier = classifier.to(dev).eval()
    autocast = make_autocast(dev, precision)
    done, seen = 0, []
    if progress is not None and total:
        progress(0, total)  # the bar knows its total from the start
    for item in batches:
        x, labels = item[0], item[1]
        positions = (torch.as_tensor(item[2]).tolist() if len(item) > 2
                     else list(range(done, done + labels.numel())))
        if x.numel() == 0:
            continue
        x, context = _crop_of(x.to(dev), item[3] if len(item) > 3 else None, classifier)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        hits = sweep_batch(classifier, x, labels.to(dev).long(), positions, grid, seed, counts, nonfinite,
                           autocast, jpeg_quality, perturbations, context, x264)
        seen.append((positions, hits))
        done += labels.numel()
        if progress is not None:
            progress(done, total if total is not None else done)
    return counts, nonfinite, _verdicts(seen, 1 + len(grid))


def _verdicts(seen: list, points: int) -> tuple:
    """The batches' (positions, verdicts) as two numpy arrays, in the order seen (one copy off the device)."""
    import numpy as np

    if not seen:
        return np.zeros(0, np.int64), np.zeros((0, points), bool)
    return (np.asarray([p for positions, _ in seen for p in positions], dtype=np.int64),
            torch.cat([hits for _, hits in seen]).cpu().numpy())


def _crop_of(pixels: torch.Tensor, boxes, classifier):
    """The model's crop of a batch, and (canvas, boxes) when the batch is canvases around it."""
    if boxes is None:
        return pixels, None
    from nnprobe.data.context import crop_offset

    crop = classifier.preprocessing.crop_size
    margin = crop_offset(pixels.shape[-1], crop)
    return pixels[..., margin:margin + crop, margin:margin + crop], (pixels, boxes.to(pixels.device))


def corruption_sweep(classifier, images, *, corruptions: str | Sequence[str] = "all",
                     severities: str | Sequence[int] = "1-5", device: str = "auto", batch_size: int = 32,
                     workers: int | None = None, seed: int = 0, precision: str = "fp32",
                     min_corruption_top1: float | None = None, shard=None,
                     progress: Callable[[int, int], None] | None = None, jpeg_roundtrip: bool | int = False,
                     perturbations: str | Sequence[str] | None = None, confidence: float = CONFIDENCE,
                     bootstrap_resamples: int = RESAMPLES, x264_roundtrip: bool = False) -> CorruptionResult:
    """Top-1/top-5 of `classifier` on `images` (a LabelledImages, decoded and cropped as `nnprobe eval`
    does and sharded over torchrun ranks; or an iterable of batches at the model's input size) under
    every chosen corruption and severity, plus clean, in one pass.

    jpeg_roundtrip: True (quality 85, the published ImageNet-C files') or a JPEG quality: each corrupted
    image is truncated to 8 bits, saved as JPEG and decoded before it is classified (`jpeg.py`).
    perturbations: ImageNet-P sequences ("all" or names, `perturb.py`) in the same pass: each one's flip
    probability and top-5 distance, each sequence x264-encoded as the published videos with x264_roundtrip
    (`x264.py`). The mean corruption top-1, mCE and relative mCE get percentile bootstrap intervals at
    `confidence` over the images (`bootstrap_resamples` resamples seeded by `seed`; `verdicts.py`)."""
    from nnprobe.data.checks import check_batch_size, check_seed, check_workers
    from nnprobe.data.layouts import LabelledImages
    from nnprobe.device import versions
    from nnprobe.options.parts import parse_part

    check_batch_size(batch_size), check_workers(workers), check_seed(seed)
    check_confidence(confidence)
    check_resamples(bootstrap_resamples)
    started = time.perf_counter()
    names, levels = parse_corruptions(corruptions), parse_severities(severities)
    grid = [(n, s) for n in names for s in levels]
    part = parse_part(shard)
    if part is not None and min_corruption_top1 is not None:
        raise UsageError("--shard slices the data and gates judge the whole of it: give "
                         "--min-corruption-top1 to nnprobe merge, not to a --shard run.")
    quality = _jpeg_quality(jpeg_roundtrip)
    moves = () if perturbations is None else parse_perturbations(perturbations)
    encoder = _x264_settings(x264_roundtrip, moves)
    options = dict(seed=seed, precision=precision, jpeg_quality=quality, perturbations=moves, x264=bool(encoder))
    if isinstance(images, LabelledImages):
        counts, nonfinite, seen, dev, world, data = _sweep_data_set(classifier, images, grid, options, device=device,
                                                              batch_size=batch_size, workers=workers, part=part,
                                                              progress=progress)
    else:
        from nnprobe.device import resolve_device

        dev, world, data = resolve_device(device), 1, {"path": None, "layout": "tensors"}
        counts, nonfinite, seen = sweep_batches(classifier, images, grid, device=dev, progress=progress, **options)
        seen = verdicts.in_data_order([seen[0]], [seen[1]])
    clean, points = _points(counts, grid, precision, nonfinite, part)
    result = CorruptionResult(clean=clean, points=points, perturbations=_moved(counts[1 + len(grid):], moves),
                              settings=_settings(names, levels, seed, quality, bootstrap_resamples, encoder),
                              confidence_level=confidence,
                              model=classifier.info, data=data,
                              run=RunInfo(device=str(dev), precision=precision, world_size=world,
                                          seconds=time.perf_counter() - started, versions=versions(), seed=seed))
    result = dataclasses.replace(result, bootstrap=verdicts.bootstrap(
        result, seen[1], confidence=confidence, resamples=bootstrap_resamples, seed=seed),
        verdicts=verdicts.ImageVerdicts.encode(*seen) if part is not None else None)
    if min_corruption_top1 is None:
        return result
    return dataclasses.replace(result, gates=(corruption_gate(min_corruption_top1, result.mean_corruption_top1),))


def _settings(names, levels, seed: int, quality: int | None, resamples: int, encoder: str | None) -> CorruptionSettings:
    """The settings naming the benchmark(s) the chosen corruptions come from and each one's reference."""
    benchmarks = tuple(b for b in BENCHMARKS if any(CORRUPTIONS[n].benchmark == b for n in names))
    return CorruptionSettings(names, levels, seed, jpeg_roundtrip=quality, benchmarks=benchmarks,
                              reference="; ".join(BENCHMARKS[b] for b in benchmarks), bootstrap_resamples=resamples,
                              x264_roundtrip=encoder)


def _x264_settings(x264_roundtrip: bool, moves: Sequence[str]) -> str | None:
    """The encoder's settings as recorded in the result, after the option's rule (sequences to encode, an ffmpeg
    with libx264: options/video.py) holds for API callers too (None: no round trip)."""
    if not x264_roundtrip:
        return None
    from nnprobe.imagenet_c.x264 import describe
    from nnprobe.options.video import check_request

    check_request(moves)
    return describe()


def _jpeg_quality(jpeg_roundtrip: bool | int) -> int | None:
    if jpeg_roundtrip is False or jpeg_roundtrip is None:
        return None
    if jpeg_roundtrip is True:
        return PUBLISHED_QUALITY
    if isinstance(jpeg_roundtrip, int) and 1 <= jpeg_roundtrip <= 95:
        return jpeg_roundtrip
    raise UsageError(f"--jpeg-roundtrip takes a JPEG quality from 1 to 95 (85: the published ImageNet-C files), "
                     f"got {jpeg_roundtrip!r}.")


def _sweep_data_set(classifier, images, grid, options, *, device, batch_size, workers, part, progress):
    """A labelled data set through the one sharded data path; counts summed exactly over ranks, the per-image
    verdicts gathered from every rank in data order."""
    from nnprobe.data.shards import Shard
    from nnprobe.options.parts import slice_info
    from nnprobe.per_sample import data_fingerprint

    if classifier.preprocessing.crop_size is None:
        raise UsageError("Corruptions are applied at the model's input size: give the model a crop (--crop N).")
    from nnprobe.imagenet_c.geometric import canvas_size

    pre = classifier.preprocessing
    context = canvas_size(options["perturbations"], pre.crop_size, pre.resize_size)
    with Shard(images, pre, device=device, batch_size=batch_size, workers=workers, part=part, progress=progress,
               context=context) as shard:
        counts, nonfinite, seen = sweep_batches(
            classifier, ((b.pixels, b.labels, b.positions, b.boxes) for b in shard), grid, device=shard.device,
            **options)
        gathered = shard.finish(counts, nonfinite)
        ranks = shard.gather(seen)
        seen = verdicts.in_data_order([r[0] for r in ranks], [r[1] for r in ranks])
    data = {"path": images.root, "layout": images.layout, "images_found": len(images.samples),
            "fingerprint": data_fingerprint(images.root, images.samples), "notes": list(images.notes),
            **slice_info(part, len(images.samples)),
            "skipped": [{"path": s.path, "reason": s.reason} for s in gathered.skipped + images.skipped]}
    return counts, nonfinite, seen, shard.device, gathered.world_size, data


def _moved(rows: torch.Tensor, names: Sequence[str]) -> tuple[PerturbationPoint, ...]:
    return tuple(PerturbationPoint(name, *row) for name, row in zip(names, rows.cpu().tolist()))


def _points(counts: torch.Tensor, grid, precision: str, nonfinite: torch.Tensor, part):
    """Counts to points; refused when any logits were NaN/Inf or nothing was classified."""
    broken, seen = (int(v) for v in nonfinite.tolist())
    if broken:
        from nnprobe.data.checks import nonfinite_error

        raise nonfinite_error(broken, seen, precision, result="corruption accuracy")
    rows = counts[:1 + len(grid)].cpu().tolist()
    if not rows[0][2] and part is None:
        raise DataError("No image could be classified: the data set is empty or nothing decoded.")
    points = tuple(CorruptionPoint(correct_top1=r[0], correct_top5=r[1], total=r[2], corruption=name,
                                   family=CORRUPTIONS[name].family, severity=severity)
                   for (name, severity), r in zip(grid, rows[1:]))
    return CleanCounts(*rows[0]), points
