"""Which labelled images: DATA / --data and the label layouts, --limit."""
from __future__ import annotations

from dataclasses import dataclass

from nnprobe.options import parsers as p
from nnprobe.options.base import Options, PathKind, option

COUNT = p.integer(1, 2**63 - 1)


def data_set(value, flag: str):
    """A folder path, or a LabelledImages / iterable of batches from the Python API."""
    import os

    if isinstance(value, (str, os.PathLike)):
        return p.path(value, flag)
    return value


@dataclass(frozen=True)
class DataOptions(Options):
    data: object = option("--data", "Labelled image folder, any ImageNet layout (default: the bundled sample "
                          "photos).", parse=data_set, path=PathKind.INPUT_FOLDER, also_argument=True,
                          what="data set")
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
