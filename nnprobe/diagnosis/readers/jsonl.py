"""JSON lines: one object per line, numeric keys are metrics; `step`/`global_step`/`iteration`,
`epoch` and `time`/`timestamp`/`wall_time` give the axes. Bare NaN/Infinity/-Infinity tokens are
accepted (Python's json.dumps writes them), and a number too large for float64 (1e400) is ±inf.
A last line without newline that does not parse was cut while being written (truncated)."""
from __future__ import annotations

import json
import math

from nnprobe.diagnosis.readers._table import EPOCH_COLUMNS, STEP_COLUMNS, TIME_COLUMNS, read_text
from nnprobe.diagnosis.readers.base import LogFile, ReadIssue, as_float, as_step, step_out_of_range
from nnprobe.diagnosis.readers.registry import Sniffer, register_reader

FORMAT = "jsonl"
_number = as_float


def any_json(path: str) -> bool:
    """A .json the user names that is no trainer state is read as JSON lines (reading says if it is not)."""
    return True


def tail(state) -> bool:
    """The complete lines appended since the last call, parsed as `read` parses them; a line without its
    newline yet is waited for."""
    from nnprobe.diagnosis.readers.incremental import appended, complete_lines, merge

    got = False
    while new := appended(state):
        fresh = LogFile(path=state.ref.path, format=FORMAT, records=state.log.records)
        lines, first = complete_lines(state, new, fresh)
        parse_lines(fresh, lines, first)
        fresh.records -= state.log.records
        got = merge(state.log, fresh) or got
    return got


@register_reader(FORMAT, patterns=("*.jsonl", "*.ndjson"), sniffer=Sniffer(("*.json",), any_json), priority=50,
                 shown="*.jsonl", tail=tail)
def read(path: str) -> LogFile:
    log = LogFile(path=path, format=FORMAT)
    text = read_text(path, log)
    if not text:
        return log
    lines = text.split("\n")
    parse_lines(log, lines, 1, cut_last=True)
    return log


def parse_lines(log: LogFile, lines: list[str], first: int, cut_last: bool = False) -> None:
    """Add each line's numeric keys to `log` (line numbers from `first`); with `cut_last`, a last line that
    does not parse was cut while written (truncated), else it is corrupt like any other."""
    path = log.path
    last = len(lines) - 1
    axes = set(STEP_COLUMNS) | set(EPOCH_COLUMNS) | set(TIME_COLUMNS)
    for number, line in enumerate(lines, start=first):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError) as exc:
            cut = cut_last and number - first == last  # the final line has no newline after it
            log.issues.append(ReadIssue("truncated" if cut else "corrupt", path,
                                        ("the last line was cut while being written" if cut else
                                         f"line is not JSON: {str(exc)[:60]}") + " (line skipped)", number))
            continue
        if not isinstance(entry, dict):
            log.issues.append(ReadIssue("corrupt", path, "line is not a JSON object (line skipped)", number))
            continue
        lowered = {str(k).lower(): v for k, v in entry.items()}
        step = next((_number(lowered[c]) for c in STEP_COLUMNS if c in lowered), None)
        if step_out_of_range(step):
            log.issues.append(ReadIssue("corrupt", path, "the step does not fit int64 (line skipped)", number))
            continue
        log.records += 1
        epoch = next((_number(lowered[c]) for c in EPOCH_COLUMNS if c in lowered), None)
        wall = next((_number(lowered[c]) for c in TIME_COLUMNS if c in lowered), None)
        step = as_step(step, as_step(epoch, log.records - 1))
        for key, value in entry.items():
            if str(key).lower() in axes:
                continue
            value = _number(value)
            if value is None:
                continue
            log.series_for(str(key)).add(step, value, math.nan if wall is None else wall,
                                         math.nan if epoch is None else epoch)
