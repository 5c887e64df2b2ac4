"""JSON lines: one object per line, numeric keys are metrics; `step`/`global_step`/`iteration`,
`epoch` and `time`/`timestamp`/`wall_time` give the axes. Bare NaN/Infinity/-Infinity tokens are
accepted (Python's json.dumps writes them), and a number too large for float64 (1e400) is ±inf.
A last line without newline that does not parse was cut while being written (truncated)."""
from __future__ import annotations

import json
import math

from nnprobe.diagnosis.readers._table import EPOCH_COLUMNS, STEP_COLUMNS, TIME_COLUMNS, read_text
from nnprobe.diagnosis.readers.base import LogFile, ReadIssue, as_float, as_step
from nnprobe.diagnosis.readers.registry import Sniffer, register_reader

FORMAT = "jsonl"
_number = as_float


def any_json(path: str) -> bool:
    """A .json the user names that is no trainer state is read as JSON lines (reading says if it is not)."""
    return True


@register_reader(FORMAT, patterns=("*.jsonl", "*.ndjson"), sniffer=Sniffer(("*.json",), any_json), priority=50,
                 shown="*.jsonl")
def read(path: str) -> LogFile:
    log = LogFile(path=path, format=FORMAT)
    text = read_text(path, log)
    if not text:
        return log
    lines = text.split("\n")
    last = len(lines) - 1
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError) as exc:
            cut = number - 1 == last  # the final line has no newline after it
            log.issues.append(ReadIssue("truncated" if cut else "corrupt", path,
                                        ("the last line was cut while being written" if cut else
                                         f"line is not JSON: {str(exc)[:60]}") + " (line skipped)", number))
            continue
        if not isinstance(entry, dict):
            log.issues.append(ReadIssue("corrupt", path, "line is not a JSON object (line skipped)", number))
            continue
        log.records += 1
        lowered = {str(k).lower(): v for k, v in entry.items()}
        step = next((_number(lowered[c]) for c in STEP_COLUMNS if c in lowered), None)
        epoch = next((_number(lowered[c]) for c in EPOCH_COLUMNS if c in lowered), None)
        wall = next((_number(lowered[c]) for c in TIME_COLUMNS if c in lowered), None)
        step = as_step(step, as_step(epoch, log.records - 1))
        axes = set(STEP_COLUMNS) | set(EPOCH_COLUMNS) | set(TIME_COLUMNS)
        for key, value in entry.items():
            if str(key).lower() in axes:
                continue
            value = _number(value)
            if value is None:
                continue
            log.series_for(str(key)).add(step, value, math.nan if wall is None else wall,
                                         math.nan if epoch is None else epoch)
    return log
