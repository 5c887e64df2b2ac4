"""Lightning `CSVLogger` metrics.csv: one row per log call, train and validation metrics on separate
(sparse) rows; an empty cell means 'not logged in this row', `nan`/`inf` are real values."""
from __future__ import annotations

from nnprobe.diagnose.readers._table import read_table
from nnprobe.diagnose.readers.base import LogFile

FORMAT = "lightning-csv"


def read(path: str) -> LogFile:
    return read_table(path, FORMAT, missing=frozenset())
