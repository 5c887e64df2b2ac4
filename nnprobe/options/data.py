"""Which labelled images: DATA / --data and the label layouts, --limit."""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from nnprobe.options import parsers as p
from nnprobe.errors import UsageError
from nnprobe.options.base import Options, PathKind, option

COUNT = p.integer(1, 2**63 - 1)
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]{0,39}$")


@dataclass(frozen=True)
class DataSets:
    """Several named data sets (`--data NAME=DIR` repeated): eval measures each into one table."""

    items: tuple[tuple[str, str], ...]  # (name, folder), in the order given

    @property
    def folders(self) -> tuple[str, ...]:
        return tuple(folder for _, folder in self.items)


def _named(text: str, flag: str) -> tuple[str, str] | None:
    """('val', '/data/val') for 'val=/data/val'; None for a plain path (an existing path is never split)."""
    name, sep, folder = text.partition("=")
    if not sep or os.path.exists(text) or not NAME_RE.match(name):
        return None
    return name, p.path(folder, flag)


def data_set(value, flag: str):
    """A folder path; NAME=DIR items (or a {name: folder} mapping), several data sets for one table; or a
    LabelledImages / iterable of batches from the Python API."""
    if isinstance(value, Mapping):
        value = [f"{name}={folder}" for name, folder in value.items()]
    if isinstance(value, (str, os.PathLike)):
        value = [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (str, os.PathLike)) for v in value):
        named = [_named(os.fspath(v), flag) for v in value]
        if len(value) == 1 and named[0] is None:
            return p.path(value[0], flag)
        if None in named:
            plain = os.fspath(value[named.index(None)])
            raise UsageError(f"{flag} {plain!r}: several data sets make one table, each named: --data NAME=DIR "
                             "(NAME a letter, then letters, digits, . _ + -).")
        names = [n for n, _ in named]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice:
            raise UsageError(f"{flag}: the name {twice!r} is given twice; each data set needs its own name.")
        return DataSets(tuple(named))
    return value


@dataclass(frozen=True)
class DataOptions(Options):
    data: object = option("--data", "Labelled image folder, any ImageNet layout (default: the bundled sample "
                          "photos); eval: NAME=DIR repeated measures each into one table, with effective "
                          "robustness against the one named or detected as val.", parse=data_set,
                          path=PathKind.INPUT_FOLDER, also_argument=True, what="data set", multiple=True)
    labels_file: str | None = option("--labels", "Labels for a flat folder: LOC_val_solution.csv, file,label CSV, "
                                     "or the devkit ground truth.", parse=p.path, path=PathKind.INPUT,
                                     input_kind="labels", what="labels file")
    devkit: str | None = option("--devkit", "ImageNet devkit folder (meta.mat + ground truth).", parse=p.path,
                                path=PathKind.INPUT_FOLDER, what="devkit")
    class_map: str | None = option("--class-map", "Folder name -> class index (CSV or JSON).", parse=p.path,
                                   path=PathKind.INPUT, input_kind="labels")
    limit: int | None = option("--limit", "{verb} N images, evenly spaced (deterministic).", parse=COUNT,
                               metavar="INTEGER")

    def finder_keywords(self) -> dict:
        return dict(labels_file=self.labels_file, devkit=self.devkit, class_map=self.class_map, limit=self.limit)
