"""Lightning `CSVLogger` metrics.csv: one row per log call, train and validation metrics on separate
(sparse) rows; an empty cell means 'not logged in this row', `nan`/`inf` are real values."""
from __future__ import annotations

from nnprobe.diagnosis.readers._table import read_table, tail_table
from nnprobe.diagnosis.readers.base import LogFile
from nnprobe.diagnosis.readers.registry import register_reader

FORMAT = "lightning-csv"


def tail(state) -> bool:
    return tail_table(state, frozenset())


@register_reader(FORMAT, patterns=("metrics.csv",), priority=20, tail=tail)  # before Keras' *.csv
def read(path: str) -> LogFile:
    return read_table(path, FORMAT, missing=frozenset())
