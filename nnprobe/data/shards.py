"""The one sharded data path: this rank's part of a labelled data set as device batches, in one process
or under torchrun, with the counts summed exactly at the end.

`evaluate` and `robust` both run it:

    with Shard(images, classifier.preprocessing, device=device, batch_size=64) as shard:
        for batch in shard:          # uint8 pixels and labels on shard.device
            ...                      # add to int64 count tensors on shard.device
        totals = shard.finish(counts, ...)   # summed over ranks in place; skips gathered, seconds maxed

Each rank takes a disjoint shard with no padding, so the counts equal one process at every world size.
A process group is joined only when torchrun asks for one, and destroyed only if this shard created it
(also when the caller's loop raises); a group the caller made stays theirs.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from nnprobe import distributed
from nnprobe.data.layouts import LabelledImages
from nnprobe.data.loader import ImageSamples, make_loader
from nnprobe.errors import DataError, UsageError
from nnprobe.options.parts import Part
from nnprobe.results import Preprocessing, SkippedFile

DECODERS = ("workers", "device")


def shard_positions(total: int, rank: int, world_size: int, part: Part | None = None) -> list[int]:
    """Disjoint, padding-free shard of `range(total)` (or of the `--shard K/N` slice of it) for one rank:
    every image is evaluated exactly once, whatever the world size (DistributedSampler pads with repeats
    and skews the counts)."""
    positions = range(total) if part is None else part.positions(total)
    return list(positions[rank::world_size])


@dataclass
class DeviceBatch:
    pixels: torch.Tensor  # uint8 NCHW on the device (possibly empty)
    labels: torch.Tensor  # int64 N on the device
    positions: torch.Tensor  # int64 N on the CPU: each image's position in the data set
    converted: int  # images converted to RGB (greyscale, CMYK, palette...)
    boxes: torch.Tensor | None = None  # with a context canvas (Shard(context=N)): each resized image's box


@dataclass(frozen=True)
class ShardTotals:
    skipped: tuple[SkippedFile, ...]  # files that failed to decode, over all ranks, in data-set order
    seconds: float  # the slowest rank's time from the first batch to the summed counts
    world_size: int


class Shard:
    """This rank's images of `images`, decoded by `workers` loader processes (and, with
    `decode="device"`, JPEGs decoded on the device), as `DeviceBatch`es."""

    def __init__(self, images: LabelledImages, preprocessing: Preprocessing, *, device="auto",
                 batch_size: int = 64, workers: int | None = None, decode: str = "workers", strict: bool = False,
                 part: Part | None = None, progress: Callable[[int, int], None] | None = None,
                 context: int = 0) -> None:
        if decode not in DECODERS:
            raise UsageError(f"--decode {decode!r} is not one of {', '.join(DECODERS)}.")
        self.images, self.preprocessing, self.device_spec = images, preprocessing, device
        self.batch_size, self.workers, self.decode = batch_size, workers, decode
        self.strict, self.progress, self.part = strict, progress, part
        self.context = context  # N: each image as the N x N canvas around the crop (data/context.py)
        self.ctx = distributed.from_env()
        self._created = False
        self._skipped: list[tuple[int, str]] = []
        self._start: float | None = None

    @property
    def world_size(self) -> int:
        return self.ctx.world_size

    def __enter__(self) -> "Shard":
        self.device = distributed.device_for_rank(self.device_spec, self.ctx)
        self._created = distributed.init(self.ctx, self.device.type)
        try:
            from nnprobe.device import default_workers

            positions = shard_positions(len(self.images.samples), self.ctx.rank, self.ctx.world_size, self.part)
            self.dataset = ImageSamples(self.images.samples, self.preprocessing, positions,
                                        encoded_jpeg=self.decode == "device", border=self.images.border,
                                        context=self.context)
            workers = default_workers() if self.workers is None else self.workers
            self.loader = make_loader(self.dataset, batch_size=self.batch_size, workers=workers,
                                      pin_memory=self.device.type == "cuda")
        except BaseException:
            distributed.finish(self._created, clean=False)
            raise
        return self

    def __exit__(self, kind, value, traceback) -> None:
        distributed.finish(self._created, clean=kind is None)
        self._created = False

    def __iter__(self) -> Iterator[DeviceBatch]:
        self._start = time.perf_counter()
        done = 0
        if self.progress is not None:
            self.progress(0, len(self.dataset))  # the total is known before the first batch, not "0/?"
        for batch in self.loader:
            pixels, labels, positions, skips = batch_on_device(batch, self.device, self.preprocessing,
                                                                self.images.border)
            self._skip(batch.skipped + skips)
            yield DeviceBatch(pixels, labels, positions, batch.converted, batch.boxes)
            done += len(batch.positions) + len(batch.skipped) + len(batch.encoded)
            if self.progress is not None:
                self.progress(done, len(self.dataset))

    def _skip(self, skips: list[tuple[int, str]]) -> None:
        if skips and self.strict:
            position, reason = skips[0]
            raise DataError(f"{self.images.samples[position][0]}: {reason} (--strict).")
        self._skipped.extend(skips)

    def gather(self, part):
        """Every rank's `part` (a picklable object), in rank order; every rank must call it."""
        return distributed.gather_objects(part, self.ctx)

    def finish(self, *counts: torch.Tensor) -> ShardTotals:
        """Sum `counts` over ranks in place (int64 stays exact), gather the skipped files and the time.
        Every rank must call it, after its loop."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        for tensor in counts:
            distributed.sum_tensor(tensor, self.ctx)
        seconds = time.perf_counter() - (self._start or time.perf_counter())
        parts = distributed.gather_objects(self._skipped, self.ctx)
        skipped = tuple(SkippedFile(self.images.samples[p][0], r)
                        for p, r in sorted(s for part in parts for s in part))
        return ShardTotals(skipped, max(distributed.gather_objects(seconds, self.ctx)), self.ctx.world_size)


def batch_on_device(batch, dev: torch.device, pre, border: int = 0) -> tuple[torch.Tensor, torch.Tensor,
                                                                             torch.Tensor, list[tuple[int, str]]]:
    """uint8 pixels, labels and positions of one loader batch: worker-decoded images, plus JPEGs decoded
    on the device; and the (position, reason) of those the device could not decode."""
    x = batch.pixels.to(dev, non_blocking=True)
    labels = batch.labels.to(dev, non_blocking=True)
    positions = torch.tensor(batch.positions, dtype=torch.int64)
    if not batch.encoded:
        return x, labels, positions, []
    from nnprobe.data.device_decode import decode_resize_crop

    decoded, reasons = decode_resize_crop(batch.encoded, dev, pre, border)
    kept = [i for i, reason in enumerate(reasons) if reason is None]
    skips = [(p, r) for p, r in zip(batch.encoded_positions, reasons) if r is not None]
    decoded_labels = batch.encoded_labels[kept].to(dev, non_blocking=True)
    decoded_positions = torch.tensor([batch.encoded_positions[i] for i in kept], dtype=torch.int64)
    if labels.numel() == 0:
        return decoded, decoded_labels, decoded_positions, skips
    return (torch.cat([x, decoded]), torch.cat([labels, decoded_labels]), torch.cat([positions, decoded_positions]),
            skips)
