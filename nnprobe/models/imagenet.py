"""ImageNet-1k class metadata shipped as package data: index, wnid, name.

The index of a class is the position of its wnid in the sorted list of the 1000 ILSVRC-2012 wnids
(torchvision, timm, Caffe and MXNet agree). Names come from torchvision's weights metadata, which
de-duplicates the two "crane" and "maillot" classes: map by wnid, never by name.
"""
from __future__ import annotations

import functools
from importlib import resources


@functools.lru_cache(maxsize=1)
def _table() -> tuple[tuple[str, ...], tuple[str, ...]]:
    text = resources.files("nnprobe.data").joinpath("imagenet1k.tsv").read_text(encoding="utf-8")
    wnids, names = [], []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        index, wnid, name = line.split("\t")
        assert int(index) == len(wnids)
        wnids.append(wnid)
        names.append(name)
    return tuple(wnids), tuple(names)


def imagenet_wnids() -> tuple[str, ...]:
    return _table()[0]


def imagenet_names() -> tuple[str, ...]:
    return _table()[1]


@functools.lru_cache(maxsize=1)
def wnid_to_index() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(imagenet_wnids())}
