"""What every reader returns: raw series exactly as written (every point, NaN included) and the damage
it met. Readers parse only; judging is the checks' job."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawSeries:
    """Points of one metric in write order. `walls`/`epochs` hold NaN where the format has none."""

    name: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    epochs: list[float] = field(default_factory=list)

    def add(self, step: int, value: float, wall: float = math.nan, epoch: float = math.nan) -> None:
        self.steps.append(step)
        self.values.append(value)
        self.walls.append(wall)
        self.epochs.append(epoch)


@dataclass(frozen=True)
class ReadIssue:
    """Damage found while reading: kind is 'truncated' (the tail of a file is cut) or 'corrupt' (a record
    or line failed its CRC or could not be decoded; the records around it were still used)."""

    kind: str
    path: str
    detail: str
    offset: int | None = None  # byte offset (event files) or 1-based line number (text formats)


@dataclass
class LogFile:
    """One file read by one reader."""

    path: str
    format: str  # tensorboard | lightning-csv | keras-csv | hf-trainer-state | jsonl
    series: dict[str, RawSeries] = field(default_factory=dict)
    issues: list[ReadIssue] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # facts the format states: max_steps, num_classes ...
    records: int = 0  # events / rows / log entries read

    def series_for(self, name: str) -> RawSeries:
        found = self.series.get(name)
        if found is None:
            found = self.series[name] = RawSeries(name)
        return found

    @property
    def points(self) -> int:
        return sum(len(s.values) for s in self.series.values())


STEP_LIMIT = 2**62


def as_step(value: float | None, fallback: int) -> int:
    """A step number that fits int64, or `fallback` (the record's position) when there is none."""
    if value is None or not math.isfinite(value) or abs(value) >= STEP_LIMIT:
        return fallback
    return int(value)


def parse_number(text: str, missing: frozenset[str]) -> float | None:
    """A cell as a float: NaN/Inf spellings kept as IEEE values, `missing` tokens and blanks as None."""
    text = text.strip()
    if not text or text in missing:
        return None
    try:
        return float(text)  # accepts nan, NaN, inf, -inf, Infinity
    except ValueError:
        return None
