"""The loader workers: what a forked worker's garbage collector walks."""
from __future__ import annotations

import gc

import torch

from nnprobe.data.loader import ImageSamples, make_loader
from nnprobe.results import Preprocessing


class _FreezeCounts(ImageSamples):
    """Each item's label is the number of objects its worker's collector leaves alone (gc.freeze)."""

    def __getitem__(self, i):
        return torch.zeros(3, 2, 2, dtype=torch.uint8), gc.get_freeze_count(), i, False, None, None


def test_workers_leave_the_inherited_objects_to_the_parent():
    """A full collection in a worker walked every object the parent had (~340,000 in an eval: 0.18 s of
    CPU per worker, and a copy of each page it touched); the workers freeze what they inherit."""
    parent = gc.get_freeze_count()
    loader = make_loader(_FreezeCounts([("unused.jpg", 0)] * 4, Preprocessing()), batch_size=2, workers=2,
                         pin_memory=False)
    counts = [int(c) for batch in loader for c in batch.labels]
    assert len(counts) == 4
    assert min(counts) > parent + 1000  # every worker froze what it inherited (torch alone is far more)
    assert gc.get_freeze_count() == parent  # the parent's own collector is left as it was
