"""Keras `CSVLogger`: one row per epoch (`epoch` is 0-based); `NA` marks a missing value (pandas would
turn it into NaN, a false alarm), `nan` is a real NaN. Any other CSV with an epoch or step column is read
the same way."""
from __future__ import annotations

from nnprobe.diagnosis.readers._table import read_table, tail_table
from nnprobe.diagnosis.readers.base import LogFile, head_of
from nnprobe.diagnosis.readers.registry import Sniffer, register_reader

FORMAT = "keras-csv"
MISSING = frozenset({"NA", "N/A", "None", "null"})


def is_csvlogger(path: str) -> bool:
    """Keras' CSVLogger is usually given `training.log`: a .log whose first line is a CSV header with an
    `epoch` column is read as one; other .log files are not logs nnprobe reads."""
    header = (head_of(path) or b"").split(b"\n", 1)[0].strip().lower().split(b",")
    return len(header) > 1 and header[0].strip(b'"') == b"epoch"


@register_reader(FORMAT, patterns=("*.csv",), sniffer=Sniffer(("*.log",), is_csvlogger, in_folders=True),
                 priority=30, shown="*.csv, Keras CSVLogger *.log", tail=lambda state: tail_table(state, MISSING))
def read(path: str) -> LogFile:
    return read_table(path, FORMAT, missing=MISSING)
