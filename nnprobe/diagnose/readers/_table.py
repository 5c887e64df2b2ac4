"""Shared parsing for CSV metric tables (Lightning metrics.csv, Keras CSVLogger, generic CSV).

Each column other than the step/epoch/time columns becomes a series holding only its non-empty cells,
so Lightning's sparse rows (train and validation metrics on separate rows) come out as separate series.
"""
from __future__ import annotations

import csv
import io
import math

from nnprobe.diagnose.readers.base import LogFile, ReadIssue, as_step, parse_number

STEP_COLUMNS = ("step", "global_step", "iteration", "iter")
EPOCH_COLUMNS = ("epoch",)
TIME_COLUMNS = ("time", "timestamp", "wall_time", "created_at")


def read_text(path: str, log: LogFile) -> str | None:
    """The file as text; undecodable bytes become U+FFFD and are reported, never raised."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        log.issues.append(ReadIssue("corrupt", path, f"bytes that are not UTF-8 at offset {exc.start}",
                                    exc.start))
        return data.decode("utf-8", errors="replace")


def read_table(path: str, fmt: str, missing: frozenset[str]) -> LogFile:
    """Read a CSV of metrics; `missing` lists the tokens that mean 'no value' (besides an empty cell)."""
    log = LogFile(path=path, format=fmt)
    text = read_text(path, log)
    if not text:
        return log
    truncated = not text.endswith(("\n", "\r"))
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(rows, [])]
    except csv.Error as exc:
        log.issues.append(ReadIssue("corrupt", path, f"unreadable CSV header: {exc}", 1))
        return log
    lower = [h.lower() for h in header]
    step_col = next((lower.index(c) for c in STEP_COLUMNS if c in lower), None)
    epoch_col = next((lower.index(c) for c in EPOCH_COLUMNS if c in lower), None)
    time_col = next((lower.index(c) for c in TIME_COLUMNS if c in lower), None)
    if step_col is None and epoch_col is None:
        log.meta["skipped"] = "not a metrics table (no epoch or step column)"
        return log
    special = {step_col, epoch_col, time_col}
    metric_cols = [(i, name) for i, name in enumerate(header) if i not in special and name]
    log.meta["columns"] = header
    table: list[list[str]] = []
    line = 1
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            line += 1
            log.issues.append(ReadIssue("corrupt", path, f"unreadable CSV line: {exc}", line))
            continue
        line = rows.line_num
        if not row:
            continue
        if len(row) > len(header):
            log.issues.append(ReadIssue("corrupt", path, f"row has {len(row)} cells, header has "
                                                         f"{len(header)} (row skipped)", line))
            continue
        table.append(row)
    if truncated and table:
        table.pop()
        log.issues.append(ReadIssue("truncated", path, "the last line has no newline: it was cut while "
                                                       "being written (row skipped)", line))
    for index, row in enumerate(table):
        log.records += 1

        def cell(col: int | None) -> float | None:
            return parse_number(row[col], missing) if col is not None and col < len(row) else None

        epoch = cell(epoch_col)
        step = cell(step_col)
        step = as_step(step, as_step(epoch, index))
        wall = cell(time_col)
        for col, name in metric_cols:
            if col >= len(row):
                continue
            value = parse_number(row[col], missing)
            if value is None:
                continue
            log.series_for(name).add(step, value,
                                     math.nan if wall is None else wall,
                                     math.nan if epoch is None else epoch)
    return log
