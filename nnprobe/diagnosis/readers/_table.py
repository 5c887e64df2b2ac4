"""Shared parsing for CSV metric tables (Lightning metrics.csv, Keras CSVLogger, generic CSV).

Each column other than the step/epoch/time columns becomes a series holding only its non-empty cells,
so Lightning's sparse rows (train and validation metrics on separate rows) come out as separate series.
"""
from __future__ import annotations

import csv
import io
import math

from nnprobe.diagnosis.readers.base import (SIZE_CAPS, LogFile, ReadIssue, as_step, parse_number, read_capped,
                                          step_out_of_range)

STEP_COLUMNS = ("step", "global_step", "iteration", "iter")
EPOCH_COLUMNS = ("epoch",)
TIME_COLUMNS = ("time", "timestamp", "wall_time", "created_at")


def read_text(path: str, log: LogFile) -> str | None:
    """The file as text (a regular file within its format's size cap, else `Unreadable`); undecodable
    bytes become U+FFFD and are reported, never raised."""
    data = read_capped(path, SIZE_CAPS[log.format])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        log.issues.append(ReadIssue("corrupt", path, f"bytes that are not UTF-8 at offset {exc.start}",
                                    data.count(b"\n", 0, exc.start) + 1))
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
    step_col, epoch_col, time_col = _special_columns(header)
    if step_col is None and epoch_col is None:
        log.meta["skipped"] = "not a metrics table (no epoch or step column)"
        return log
    special = {step_col, epoch_col, time_col}
    metric_cols = [(i, name) for i, name in enumerate(header) if i not in special and name]
    log.meta["columns"] = header
    table = _data_rows(rows, header, truncated, path, log)
    bad_cells = _add_rows(log, table, step_col, epoch_col, time_col, metric_cols, missing)
    _report_bad_cells(log, path, bad_cells)
    return log


def tail_table(state, missing: frozenset[str]) -> bool:
    """The complete rows appended since the last call, parsed against the header (the first complete
    line) as `read_table` parses them; a row without its newline yet is waited for."""
    from nnprobe.diagnosis.readers.incremental import appended, complete_lines, merge

    got = False
    while new := appended(state):
        fresh = LogFile(path=state.ref.path, format=state.ref.format)
        lines, _ = complete_lines(state, new, fresh)
        if not lines:
            got = merge(state.log, fresh) or got
            continue
        if "header" not in state.context:
            try:
                state.context["header"] = [h.strip() for h in next(csv.reader([lines[0]]), [])]
            except csv.Error as exc:
                state.context["header"] = []
                fresh.issues.append(ReadIssue("corrupt", fresh.path, f"unreadable CSV header: {exc}", 1))
            lines = lines[1:]
        header = state.context["header"]
        step_col, epoch_col, time_col = _special_columns(header)
        if step_col is None and epoch_col is None:
            state.log.meta["skipped"] = "not a metrics table (no epoch or step column)"
            got = merge(state.log, fresh) or got
            continue
        special = {step_col, epoch_col, time_col}
        metric_cols = [(i, name) for i, name in enumerate(header) if i not in special and name]
        table = _data_rows(csv.reader(io.StringIO("\n".join(lines) + "\n", newline="")), header, False,
                           fresh.path, fresh)
        _report_bad_cells(fresh, fresh.path, _add_rows(fresh, table, step_col, epoch_col, time_col, metric_cols,
                                                       missing))
        got = merge(state.log, fresh) or got
    return got


def _special_columns(header: list[str]) -> tuple[int | None, int | None, int | None]:
    """The step, epoch and time column indices (None where absent), matched case-blind by name, since
    loggers differ in what they call them."""
    lower = [h.lower() for h in header]
    step_col = next((lower.index(c) for c in STEP_COLUMNS if c in lower), None)
    epoch_col = next((lower.index(c) for c in EPOCH_COLUMNS if c in lower), None)
    time_col = next((lower.index(c) for c in TIME_COLUMNS if c in lower), None)
    return step_col, epoch_col, time_col


def _data_rows(rows, header: list[str], truncated: bool, path: str, log: LogFile) -> list[tuple[int, list[str]]]:
    """(line number, cells) of each usable row after the header: unparseable lines, rows wider than the
    header and a last line cut mid-write are skipped and reported, so one bad line never loses the rest."""
    table: list[tuple[int, list[str]]] = []
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
        table.append((line, row))
    if truncated and table:
        table.pop()
        log.issues.append(ReadIssue("truncated", path, "the last line has no newline: it was cut while "
                                                       "being written (row skipped)", line))
    return table


def _add_rows(log: LogFile, table: list[tuple[int, list[str]]], step_col: int | None, epoch_col: int | None,
              time_col: int | None, metric_cols: list[tuple[int, str]],
              missing: frozenset[str]) -> dict[str, tuple[int, int, str]]:
    """Add every row's numeric cells to their series (the per-row loop, kept in one piece for speed);
    returns column -> (count, first line, first text) of the cells that are not numbers."""
    bad_cells: dict[str, tuple[int, int, str]] = {}
    for index, (number, row) in enumerate(table):
        log.records += 1

        def cell(col: int | None) -> float | None:
            return parse_number(row[col], missing) if col is not None and col < len(row) else None

        epoch = cell(epoch_col)
        step = cell(step_col)
        if step_out_of_range(step):
            count, first, example = bad_cells.get("(step)", (0, number, row[step_col].strip()))
            bad_cells["(step)"] = (count + 1, first, example)
            continue
        step = as_step(step, as_step(epoch, index))
        wall = cell(time_col)
        for col, name in metric_cols:
            if col >= len(row):
                continue
            value = parse_number(row[col], missing)
            if value is None:
                text = row[col].strip()
                if text and text not in missing:
                    count, first, example = bad_cells.get(name, (0, number, text))
                    bad_cells[name] = (count + 1, first, example)
                continue
            log.series_for(name).add(step, value,
                                     math.nan if wall is None else wall,
                                     math.nan if epoch is None else epoch)
    return bad_cells


def _report_bad_cells(log: LogFile, path: str, bad_cells: dict[str, tuple[int, int, str]]) -> None:
    """One issue per damaged column (its count, first line and first text), not one per bad cell."""
    for name, (count, first, example) in bad_cells.items():
        if name == "(step)":
            log.issues.append(ReadIssue("corrupt", path, f"{count} row(s) have a step that does not fit int64, "
                                                         f"first {example[:20]!r} (rows skipped)", first))
        elif name in log.series:  # a numeric column with cells that are not numbers; all-text columns are labels
            log.issues.append(ReadIssue("corrupt", path, f"column '{name}' has {count} cell(s) that are not "
                                                         f"numbers, first {example[:20]!r} (cells skipped)",
                                        first))
