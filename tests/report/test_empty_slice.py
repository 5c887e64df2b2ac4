"""A `--shard K/N` slice that classified no image says why it has no intervals, in every format that shows
the interval note: it is empty (slices interleave, so a data set smaller than N leaves the last ones empty), or
none of its images could be read. Before, the corruption sweep's said the merged slices were written by an
older nnprobe, robust's listed each budget with an empty interval, and eval's named the methods of intervals it
did not have."""
from __future__ import annotations

import re

import pytest

from helpers import PLAIN, TESTS, make_wnid_folders
from nnprobe import api
from nnprobe.report import render

MODEL = f"{TESTS / 'tiny_models.py'}:color_net_1000"
EMPTY = "no intervals: slice 3/3 is empty (the data set has 2 images for 3 slices)"
UNREADABLE = "no intervals: slice 3/3 has no readable image (1 skipped, each with its reason)"
FORMATS = ("table", "markdown", "github", "html")
VERBS = {"eval": lambda data, shard: api.evaluate(MODEL, data, workers=0, shard=shard, **PLAIN),
         "robust": lambda data, shard: api.robust(MODEL, data, workers=0, shard=shard, eps="0,1/255", steps=1,
                                                  **PLAIN),
         "corruptions": lambda data, shard: api.robust(MODEL, data, workers=0, shard=shard,
                                                       corruptions="brightness", severity="1", **PLAIN)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_wnid_folders(tmp_path_factory.mktemp("empty") / "data", {5: 1, 350: 1})


def _text(result, fmt: str) -> str:
    return re.sub(r"\s+", " ", render(result, fmt))  # the console wraps at its width


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_an_empty_slice_says_it_is_empty(verb, data):
    result = VERBS[verb](data, "3/3")
    assert result.data["shard"] == {"index": 3, "count": 3, "images": 0}
    for fmt in FORMATS:
        text = _text(result, fmt)
        assert EMPTY in text, (verb, fmt)
        assert "older nnprobe" not in text and "Clopper-Pearson" not in text and "0: ," not in text, (verb, fmt)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_a_slice_with_an_image_keeps_its_intervals(verb, data):
    text = _text(VERBS[verb](data, "1/3"), "table")
    assert "no intervals" not in text and re.search(r"intervals: 95%, (exact Clopper-Pearson|bootstrap)", text)


def test_a_slice_of_unreadable_files_says_so(tmp_path, data):
    folder = make_wnid_folders(tmp_path / "data", {5: 1, 350: 1})
    broken = max(folder.glob("*/img000.png")).with_name("img001.png")  # sorted last: position 2, slice 3/3
    broken.write_bytes(b"not an image")
    for verb in sorted(VERBS):
        result = VERBS[verb](folder, "3/3")
        skipped = result.skipped if verb == "eval" else result.data["skipped"]
        assert result.data["shard"]["images"] == 1 and len(skipped) == 1, verb
        assert UNREADABLE in _text(result, "table"), verb
