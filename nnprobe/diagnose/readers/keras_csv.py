"""Keras `CSVLogger`: one row per epoch (`epoch` is 0-based); `NA` marks a missing value (pandas would
turn it into NaN, a false alarm), `nan` is a real NaN. Any other CSV with an epoch or step column is read
the same way."""
from __future__ import annotations

from nnprobe.diagnose.readers._table import read_table
from nnprobe.diagnose.readers.base import LogFile

FORMAT = "keras-csv"
MISSING = frozenset({"NA", "N/A", "None", "null"})


def read(path: str) -> LogFile:
    return read_table(path, FORMAT, missing=MISSING)
