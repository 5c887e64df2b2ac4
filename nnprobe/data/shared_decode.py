"""Several models on one data set with each image decoded once (`nnprobe eval --model A --model B ...`).

One loader runs over the images: its workers decode each file once and make one uint8 tensor per distinct
resize/crop among the models (models whose resize, crop, interpolation and antialias agree share the tensor, and
its copy to the device; mean/std live in each classifier). Each model's `evaluate` runs unchanged in a thread of
its own, given a `SharedShard` where it would make its `Shard`; a baton lets exactly one of those threads run at a
time, in turn and batch by batch (model 1 on batch 1, model 2 on batch 1, ..., model 1 on batch 2), so each model
computes exactly what it computes alone, only one batch is held, and a model's seconds are its own turns (the
first model's include waiting for the decoded batch). A model that fails stops the others at their next turn and
its error is the run's.
"""
from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from nnprobe.data.decode import UndecodableImage, decode_rgb
from nnprobe.data.layouts import LabelledImages
from nnprobe.data.loader import collate, make_loader, model_pixels
from nnprobe.data.shards import DeviceBatch, Shard, batch_on_device, shard_positions
from nnprobe.options.parts import Part, parse_part
from nnprobe.results import Preprocessing


def pixel_key(pre: Preprocessing) -> tuple:
    """What decides a model's uint8 input: models with equal keys see the same tensor."""
    return pre.resize_size, pre.crop_size, pre.interpolation, pre.antialias


class SharedSamples(Dataset):
    """(path, label) pairs at `positions` (default: all) -> (one uint8 CHW tensor per preprocessing, or None;
    label, position, converted, skip reason): the file decoded once, then each preprocessing's resize and crop."""

    def __init__(self, samples: Sequence[tuple[str, int]], preprocessings: Sequence[Preprocessing],
                 border: int = 0, positions: Sequence[int] | None = None) -> None:
        self.samples, self.preprocessings, self.border = samples, tuple(preprocessings), border
        self.positions = list(range(len(samples)) if positions is None else positions)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int):
        position = self.positions[i]
        path, label = self.samples[position]
        try:
            image, converted = decode_rgb(path)
        except UndecodableImage as exc:
            return None, label, position, False, str(exc)
        return tuple(model_pixels(image, pre, self.border) for pre in self.preprocessings), label, position, \
            converted, None


def collate_shared(items, groups: int) -> list:
    """One loader `Batch` per preprocessing, each as `collate` makes it for a single model."""
    return [collate([(None if pixels is None else pixels[g], label, position, converted, reason, None)
                     for pixels, label, position, converted, reason in items]) for g in range(groups)]


class SharedDecode:
    """The one pass over this rank's images of `images` (of the `--shard` slice `part`, when given) for models
    with `preprocessings` (one per model, in model order): the positions a `Shard` of this rank would take."""

    def __init__(self, images: LabelledImages, preprocessings: Sequence[Preprocessing], *, batch_size: int,
                 workers: int | None, pin_memory: bool = False, part: Part | None = None) -> None:
        from nnprobe import distributed
        from nnprobe.device import default_workers

        keys = list(dict.fromkeys(pixel_key(p) for p in preprocessings))
        self.group_of = [keys.index(pixel_key(p)) for p in preprocessings]
        firsts = [preprocessings[self.group_of.index(g)] for g in range(len(keys))]
        self.images, self.preprocessings, self.part = images, firsts, part
        ctx = distributed.from_env()
        positions = shard_positions(len(images.samples), ctx.rank, ctx.world_size, part)
        self.dataset = SharedSamples(images.samples, firsts, images.border, positions)
        self.loader = make_loader(self.dataset, batch_size=batch_size, pin_memory=pin_memory,
                                  workers=default_workers() if workers is None else workers,
                                  collate_fn=functools.partial(collate_shared, groups=len(keys)))
        self._batches, self._iterator, self._index, self._on_device = None, None, -1, {}

    def __enter__(self) -> "SharedDecode":
        self._iterator = iter(self.loader)  # the workers start from the calling (main) thread
        return self

    def __exit__(self, *exc) -> None:
        self._iterator = self._batches = None
        self._on_device = {}

    def batch(self, index: int, group: int, dev: torch.device):
        """Batch `index` for preprocessing `group` on `dev` as (pixels, labels, positions, converted, skips), or
        None past the end. Batches are asked for in order: asking for the next one drops the current."""
        if index == self._index + 1:
            self._index, self._on_device = index, {}
            self._batches = next(self._iterator, None)
        elif index != self._index:
            raise RuntimeError(f"batch {index} asked for while batch {self._index} is held")
        if self._batches is None:
            return None
        loaded = self._batches[group]
        if group not in self._on_device:
            self._on_device[group] = batch_on_device(loaded, dev, self.preprocessings[group], self.images.border)
        pixels, labels, positions, _ = self._on_device[group]
        return pixels, labels, positions, loaded.converted, loaded.skipped


class Stopped(BaseException):
    """Another model's thread failed (or the run was interrupted): this one stops at its turn."""


class Baton:
    """One thread runs at a time: the slot whose turn it is, passed on in slot order among the live ones."""

    def __init__(self, count: int) -> None:
        self._cond = threading.Condition()
        self._live, self._turn = list(range(count)), 0
        self.failure: BaseException | None = None

    def wait(self, slot: int) -> None:
        with self._cond:
            while self._turn != slot and self.failure is None:
                self._cond.wait()
            if self.failure is not None:
                raise Stopped

    def pass_on(self, slot: int) -> None:
        with self._cond:
            self._turn = self._next(slot)
            self._cond.notify_all()

    def leave(self, slot: int, failure: BaseException | None = None) -> None:
        with self._cond:
            if failure is not None and self.failure is None:
                self.failure = failure
            nxt = self._next(slot)
            self._live.remove(slot)
            self._turn = nxt if nxt != slot else None
            self._cond.notify_all()

    def stop(self, failure: BaseException) -> None:
        with self._cond:
            self.failure = self.failure or failure
            self._cond.notify_all()

    def _next(self, slot: int) -> int:
        later = [s for s in self._live if s > slot]
        return later[0] if later else self._live[0]


def run_in_turns(jobs: Sequence[Callable[[], Any]], baton: Baton) -> list:
    """Each job in a thread of its own, one running at a time (`baton`), in order; their results, or the first
    failure raised here."""
    results: list = [None] * len(jobs)

    def run(slot: int) -> None:
        failure = None
        try:
            baton.wait(slot)
            results[slot] = jobs[slot]()
        except Stopped:
            pass
        except BaseException as exc:  # noqa: B036 (handed to the calling thread, raised there)
            failure = exc
        finally:
            baton.leave(slot, failure)

    threads = [threading.Thread(target=run, args=(slot,), name=f"nnprobe-model-{slot}") for slot in range(len(jobs))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException as exc:  # Ctrl-C while waiting: every thread stops at its next turn
        baton.stop(exc)
        for thread in threads:
            thread.join()
        raise
    if baton.failure is not None:
        raise baton.failure
    return results


class SharedShard(Shard):
    """A model's view of the shared pass, made where `evaluate` makes its `Shard` (same arguments): its batches,
    skips and progress as its own Shard would give them, one turn per batch."""

    def __init__(self, shared: SharedDecode, slot: int, baton: Baton, images: LabelledImages,
                 preprocessing: Preprocessing, **keywords) -> None:
        super().__init__(images, preprocessing, **keywords)
        self.shared, self.slot, self.baton = shared, slot, baton
        self.group = shared.group_of[slot]
        if pixel_key(preprocessing) != pixel_key(shared.preprocessings[self.group]):
            raise RuntimeError("a model's preprocessing differs from its share of the decoding")
        if self.part != shared.part:
            raise RuntimeError(f"a model evaluates slice {self.part} of a pass decoding slice {shared.part}")
        self._active = self._resumed = 0.0

    def __enter__(self) -> "SharedShard":
        from nnprobe import distributed

        self.device = distributed.device_for_rank(self.device_spec, self.ctx)
        self.dataset = self.shared.dataset
        return self

    def __iter__(self):
        self._active, self._resumed = 0.0, time.perf_counter()
        total, done, index = len(self.dataset), 0, 0
        if self.progress is not None:
            self.progress(0, total)
        while (got := self.shared.batch(index, self.group, self.device)) is not None:
            pixels, labels, positions, converted, skipped = got
            self._skip(list(skipped))
            yield DeviceBatch(pixels, labels, positions, converted)
            done += len(positions) + len(skipped)
            if self.progress is not None:
                self.progress(done, total)
            index += 1
            self._active += time.perf_counter() - self._resumed
            self.baton.pass_on(self.slot)
            self.baton.wait(self.slot)
            self._resumed = time.perf_counter()

    def finish(self, *counts: torch.Tensor):
        self._start = self._resumed - self._active  # the base class times from _start: this model's turns only
        return super().finish(*counts)


def evaluate_shared(classifiers: Sequence[Any], images: LabelledImages, keywords: dict,
                    own: Sequence[dict] | None = None) -> list:
    """Each classifier's `evaluate(classifier, images, **keywords, **own[i])` (the progress shown by the first),
    with this rank's images (of `keywords["shard"]`'s slice) decoded once for all of them. Under torchrun the
    process group is joined once for the pass (unless the caller holds one); each model's counts are summed over
    the ranks in model order, as its turn ends, so every rank makes the same collective calls in the same order."""
    from nnprobe import distributed
    from nnprobe.device import resolve_device
    from nnprobe.evaluation import evaluate

    device = resolve_device(keywords["device"])
    shared = SharedDecode(images, [c.preprocessing for c in classifiers], batch_size=keywords["batch_size"],
                          workers=keywords["workers"], pin_memory=device.type == "cuda",
                          part=parse_part(keywords.get("shard")))
    baton = Baton(len(classifiers))

    def job(slot: int, classifier) -> Callable[[], Any]:
        source = functools.partial(SharedShard, shared, slot, baton)
        mine = dict(keywords, **(own[slot] if own else {}))
        if slot:
            mine["progress"] = None
        return lambda: evaluate(classifier, images, **mine, source=source)

    created = distributed.init(distributed.from_env(), device.type)
    clean = False
    try:
        with shared:
            results = run_in_turns([job(slot, c) for slot, c in enumerate(classifiers)], baton)
        clean = True
        return results
    finally:
        distributed.finish(created, clean=clean)
