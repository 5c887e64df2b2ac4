"""What every reader returns: raw series exactly as written (every point, NaN included) and the damage
it met. Readers parse only; judging is the checks' job."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from nnprobe import io

MIB = 1 << 20
# The most bytes read from one file of each kind (formats read whole). Generous: a 1M-step per-step log
# with ten metrics is ~100 MiB of CSV or JSON lines; trainer_state.json with logging_steps=1 for 300k
# steps ~ 50 MiB. Event files have no cap: they are streamed record by record.
SIZE_CAPS = {"lightning-csv": 256 * MIB, "keras-csv": 256 * MIB, "jsonl": 256 * MIB,
             "hf-trainer-state": 128 * MIB, "hparams": 1 * MIB}


class Unreadable(Exception):
    """Nothing of this file can be read (not a regular file, over its size cap, not the format at all);
    the message completes the sentence "<file> ...". Readers raise it; `read_log` turns it into an issue."""


def open_regular(path: str, cap: int | None = None):
    """A binary file object for `path`, checked to be a regular file (a FIFO would block open() and a
    device such as /dev/zero never ends) and, with `cap`, at most `cap` bytes. Opened non-blocking, so a
    FIFO swapped in after a stat cannot hang us either. A remote URL (s3://, gs://, hf://, az://) gives a
    streamed fsspec file object instead (nnprobe/remote.py), with the same checks."""
    from nnprobe.remote import is_remote

    if is_remote(path):
        from nnprobe.remote import RemoteError, open_remote

        try:
            return open_remote(path, cap)
        except RemoteError as exc:
            raise Unreadable(str(exc)) from None
    try:
        return io.open_regular(path, cap)  # the one input guard (nnprobe.io)
    except io.NotRegularFile as exc:
        raise Unreadable(exc.problem) from None
    except OSError as exc:
        raise Unreadable(f"cannot be opened: {exc.strerror or exc}") from None


def head_of(path: str, size: int = 4096) -> bytes | None:
    """The first `size` bytes of a regular file, for a content sniffer; None when it cannot be read."""
    try:
        with open_regular(path) as handle:
            return handle.read(size)
    except (Unreadable, OSError):
        return None


def read_capped(path: str, cap: int) -> bytes:
    """The whole of a regular file of at most `cap` bytes (one that grew past it while read is refused)."""
    with open_regular(path, cap) as handle:
        data = handle.read(cap + 1)
    if len(data) > cap:
        raise Unreadable(f"grew past the {cap // MIB} MiB limit for such a file while it was read")
    return data


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
    """Damage found while reading: kind is 'truncated' (the tail of a file is cut: normal for a live run),
    'corrupt' (a record or line failed its CRC or could not be decoded; the records around it were still
    used), 'unreadable' (nothing of the file could be read) or 'invalid' (a value in a side file such as
    hparams.yaml was ignored)."""

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
    histograms: dict[str, list[tuple]] = field(default_factory=dict)  # tag -> [HistogramStats], write order

    def series_for(self, name: str) -> RawSeries:
        found = self.series.get(name)
        if found is None:
            found = self.series[name] = RawSeries(name)
        return found

    @property
    def points(self) -> int:
        return sum(len(s.values) for s in self.series.values())


@dataclass(frozen=True, eq=False)
class HistogramStats:
    """One logged histogram (TensorBoard `histo`, a W&B histogram) reduced to what the histogram checks use:
    the values' range, count, mean, root mean square, the share of values that are exactly zero (the bucket
    that holds 0 when the range starts or ends there, e.g. a ReLU's output), and its buckets (`edges`, n + 1
    increasing values clipped to [min, max], and `counts`, n values) for shares of a range
    (`share_within`: saturated tanh/sigmoid outputs)."""

    step: int
    wall: float
    min: float
    max: float
    num: float
    mean: float
    rms: float
    zero_fraction: float
    edges: Any = None  # numpy float64 array, n + 1 bucket edges; None when the histogram came without buckets
    counts: Any = None  # numpy float64 array, n bucket counts

    def share_within(self, lo: float, hi: float) -> float | None:
        """The share of the values in [lo, hi], counting each bucket's overlap with it as if its values were
        spread evenly (a bucket that is one point counts whole when the point is inside); None without
        buckets."""
        if self.edges is None or self.counts is None or not self.counts.size or not self.num > 0:
            return None
        import numpy as np

        left, right = self.edges[:-1], self.edges[1:]
        width = right - left
        overlap = np.clip(np.minimum(right, hi) - np.maximum(left, lo), 0.0, None)
        share = np.where(width > 0, overlap / np.where(width > 0, width, 1.0), (left >= lo) & (right <= hi))
        return float(min(1.0, (share * self.counts).sum() / self.counts.sum()))


def histogram_buckets(left_edges, right_edges, counts, low: float, high: float):
    """(edges, counts) as numpy arrays for HistogramStats from buckets' left and right edges, clipped to the
    values' range [low, high] (TensorBoard's first bucket starts at -DBL_MAX, its last ends at +DBL_MAX)."""
    import numpy as np

    edges = np.clip(np.append(np.asarray(left_edges, dtype=np.float64)[:1], np.asarray(right_edges, np.float64)),
                    low, high)
    return np.maximum.accumulate(edges), np.asarray(counts, dtype=np.float64)


STEP_LIMIT = 2**62


def as_float(value) -> float | None:
    """A JSON number as a float (an integer too large for float64 becomes ±inf, as it would in any
    logger), else None (bools, strings, objects)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def step_out_of_range(value: float | None) -> bool:
    """A step that was given but cannot be one (beyond int64, NaN, inf): the record is skipped and counted
    as damage, the rest of the file read (that record's problem, not the run's)."""
    return value is not None and not (math.isfinite(value) and abs(value) < STEP_LIMIT)


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
