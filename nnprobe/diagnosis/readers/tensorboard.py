"""TensorBoard event files, read record by record with every point kept.

Framing (TFRecord): `uint64 length | uint32 masked_crc32c(length) | event bytes | uint32
masked_crc32c(event)`. Each record is a `tensorboard.compat.proto.event_pb2.Event`. We frame the file
ourselves instead of using `EventAccumulator`, which keeps a 10,000-point reservoir per tag and can drop
exactly the NaN points, and instead of tensorboard's loader, whose pure-Python CRC costs ~6 s per 200k
records (REFERENCE.md). Framing, CRC32C checks and the common `simple_value` event are done by numpy
over each chunk (_fast_events.py: no Python step or protobuf object per record); every other record
(tensor scalars, histograms, anything unusual) goes through protobuf, record by record.

Both scalar spellings are read: legacy `simple_value` (PyTorch SummaryWriter, Lightning, HF Trainer)
and TF2 tensor scalars (Keras, `add_scalar(new_style=True)`): any rank-0 numeric tensor.
"""
from __future__ import annotations

import struct

from nnprobe.diagnosis.readers.base import LogFile, ReadIssue
from nnprobe.diagnosis.readers.registry import register_reader

FORMAT = "tensorboard"
_HEADER = struct.Struct("<QI")
_MASK_DELTA = 0xA282EAD8

# TensorFlow DataType enum values -> struct codes for `tensor_content` (little-endian).
_CONTENT_CODES = {1: "<f", 2: "<d", 3: "<i", 9: "<q", 19: "<e"}
_BFLOAT16 = 14


def masked_crc32c(data) -> int:
    """The CRC TFRecord stores: crc32c rotated right by 15 bits plus a constant."""
    import crc32c

    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _tensor_scalar(tensor) -> float | None:
    """The value of a rank-0 (or one-element) numeric tensor, else None (text, images, histograms)."""
    dims = tensor.tensor_shape.dim
    if any(d.size != 1 for d in dims):
        return None
    dtype = tensor.dtype
    if tensor.float_val:
        return float(tensor.float_val[0])
    if tensor.double_val:
        return float(tensor.double_val[0])
    if tensor.tensor_content:
        content = tensor.tensor_content
        if dtype == _BFLOAT16 and len(content) == 2:
            return struct.unpack("<f", b"\x00\x00" + content)[0]
        code = _CONTENT_CODES.get(dtype)
        if code and len(content) == struct.calcsize(code):
            return float(struct.unpack(code, content)[0])
        return None
    if dtype == 19 and tensor.half_val:  # DT_HALF stores raw bits in half_val
        return struct.unpack("<e", struct.pack("<H", tensor.half_val[0] & 0xFFFF))[0]
    if dtype == _BFLOAT16 and tensor.half_val:
        return struct.unpack("<f", struct.pack("<I", (tensor.half_val[0] & 0xFFFF) << 16))[0]
    if tensor.int_val:
        return float(tensor.int_val[0])
    if tensor.int64_val:
        return float(tensor.int64_val[0])
    return None


CHUNK = 16 << 20  # bytes read at a time: memory stays flat whatever the file's size


def _event(body):
    """(scalars as (tag, step, value, wall time), histograms as (tag, HistogramStats)) of one record through
    protobuf, or None when the bytes are not an Event: the path for every record the vectorised decoder leaves
    (and its reference)."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event

    try:
        event = Event.FromString(body)
    except DecodeError:
        return None
    values = event.summary.value  # empty for file_version, session_log ... records
    found, histograms = [], []
    for index in range(len(values)):  # indexing is cheaper than iterating upb containers
        value = values[index]
        kind = value.WhichOneof("value")
        if kind == "simple_value":
            number = value.simple_value
        elif kind == "tensor":
            number = _tensor_scalar(value.tensor)
            if number is None:
                continue
        else:
            if kind == "histo" and value.histo.num > 0:
                histograms.append((value.tag, _histogram(value.histo, event.step, event.wall_time)))
            continue
        found.append((value.tag, event.step, number, event.wall_time))
    return found, histograms


def _histogram(histo, step: int, wall: float):
    """A HistogramProto reduced to HistogramStats; the zero share counts the buckets whose limit is within
    1e-9 of 0 (writers use tiny bins around 0, so those hold exact zeros and values indistinguishable from
    them; torch's all-zero histogram is limits [0, 1e-12] with every value in the second)."""
    import math

    from nnprobe.diagnosis.readers.base import HistogramStats, histogram_buckets

    num = float(histo.num)
    zero = sum(float(count) for limit, count in zip(histo.bucket_limit, histo.bucket) if abs(limit) <= 1e-9)
    buckets = (None, None)
    if histo.bucket_limit and len(histo.bucket_limit) == len(histo.bucket):  # bucket i ends at limit i
        buckets = histogram_buckets([histo.min], histo.bucket_limit, histo.bucket, histo.min, histo.max)
    return HistogramStats(int(step), float(wall), float(histo.min), float(histo.max), num, float(histo.sum) / num,
                          math.sqrt(max(float(histo.sum_squares), 0.0) / num), min(1.0, zero / num), *buckets)


def tail(state) -> bool:
    """The whole records appended since the last call (framed and decoded as `read` does); a record not
    yet whole is kept pending and waited for, never reported as cut. A record whose length fails its CRC
    ends the reading of this file, as it ends `read`."""
    from nnprobe.diagnosis.readers.incremental import appended, merge

    got = False
    while not state.context.get("broken") and (new := appended(state)):
        data = state.pending + new
        base = state.offset - len(data)
        fresh, points = LogFile(path=state.ref.path, format=FORMAT), _Points()
        pos, stop = _chunk(data, base, base + len(data), state.verify_crc, True, fresh, points)
        state.context["broken"] = stop == "broken"
        state.pending = b"" if stop == "broken" else data[pos:]
        points.store(fresh, state.ref.prefix)
        got = merge(state.log, fresh) or got
    return got


@register_reader(FORMAT, patterns=("events.out.tfevents*",), priority=10, options=("verify_crc", "prefix"),
                 shown="events.out.tfevents.*", offset_unit="byte", tail=tail)
def read(path: str, *, verify_crc: bool = True, prefix: str = "", fast: bool = True) -> LogFile:
    """Every scalar of one event file; damage is recorded in `issues`, good records are still used.

    `prefix` is prepended to tags (Keras writes `train/` and `validation/` into separate folders, both
    with `epoch_loss`, so the folder is part of the metric's name). The file is streamed in 16 MiB
    chunks (no size cap); a length field pointing past the end of the file is a cut last record.
    Framing, CRCs and plain `simple_value` events are handled by numpy over each chunk (_fast_events);
    `fast=False` sends every record through protobuf instead (same results: a test holds them equal).
    """
    import os

    from nnprobe.diagnosis.readers.base import open_regular

    log = LogFile(path=path, format=FORMAT)
    points = _Points()
    with open_regular(path) as handle:
        file_size = os.fstat(handle.fileno()).st_size
        data, base, pos = b"", 0, 0
        while True:
            more = handle.read(CHUNK)
            data = data[pos:] + more  # the unframed tail of the last chunk, then the next chunk
            base += pos
            pos, stop = _chunk(data, base, file_size, verify_crc, fast, log, points)
            if stop == "broken":
                break
            if stop == "past-end" or not more:
                _report_tail(log, data, base, pos)
                break
    points.store(log, prefix)
    return log


def _report_tail(log: LogFile, data: bytes, base: int, pos: int) -> None:
    """The bytes after the last whole record at the end of the file: a cut record (a live or killed run)."""
    left = len(data) - pos
    if 0 < left < 12:
        log.issues.append(ReadIssue("truncated", log.path, f"file ends inside a record header "
                                                           f"({left} of 12 bytes)", base + pos))
    elif left:
        length = _HEADER.unpack_from(data, pos)[0]
        log.issues.append(ReadIssue("truncated", log.path, f"last record is cut: needs {length + 16} "
                                                           f"bytes, {left} left", base + pos))


def _chunk(data: bytes, base: int, file_size: int, verify_crc: bool, fast: bool, log: LogFile,
           points: _Points) -> tuple[int, str]:
    """Frame, check and decode the whole records of one chunk; returns (where framing stopped, why:
    'more' (the next record is not all here yet), 'past-end' (it never will be) or 'broken')."""
    import numpy as np

    from nnprobe.diagnosis.readers import _fast_events as fe

    size = len(data)
    starts, lengths, pos = fe.frame(data, 0, size)
    u32 = fe.unaligned(data, 4)
    broken = None
    if verify_crc and starts.size:
        bad = np.flatnonzero(fe.masked(fe.crc32c_spans(data, starts, np.full(starts.size, 8))) != u32[starts + 8])
        if bad.size:
            pos = int(starts[bad[0]])
            starts, lengths, broken = starts[:bad[0]], lengths[:bad[0]], pos
    if broken is None and verify_crc and size - pos >= 12 and _HEADER.unpack_from(data, pos)[1] != int(
            fe.masked(fe.crc32c_spans(data, np.array([pos]), np.array([8])))[0]):
        broken = pos
    issues: list[ReadIssue] = []
    if verify_crc and starts.size:
        body_crc = fe.masked(fe.crc32c_spans(data, starts + 12, lengths))
        bad = body_crc != u32[starts + 12 + lengths]
        issues += [ReadIssue("corrupt", log.path, "record data fails its CRC (record skipped)", base + at)
                   for at in starts[bad].tolist()]
        starts, lengths = starts[~bad], lengths[~bad]
    log.records += _decode(data, base, starts, lengths, fast, points, issues, log.path)
    log.issues += sorted(issues, key=lambda issue: issue.offset)
    if broken is not None:
        log.issues.append(ReadIssue("corrupt", log.path, f"record length fails its CRC; the remaining "
                                                         f"{file_size - base - broken} bytes cannot be framed",
                                    base + broken))
        return broken, "broken"
    if size - pos >= 12 and base + pos + 16 + _HEADER.unpack_from(data, pos)[0] > max(file_size, base + size):
        return pos, "past-end"
    return pos, "more"


def _decode(data: bytes, base: int, starts, lengths, fast: bool, points: _Points, issues: list[ReadIssue],
            path: str) -> int:
    """Add the scalars of the records at `starts` to `points`; returns how many records were Events."""
    import numpy as np

    from nnprobe.diagnosis.readers import _fast_events as fe

    bodies = starts + 12
    slow = np.arange(starts.size)
    if fast and starts.size:
        rows, tags, tag_of, steps, values, walls = fe.simple_scalars(data, bodies, bodies + lengths)
        points.add_fast(base + starts[rows], tags, tag_of, steps, values, walls)
        simple = np.zeros(starts.size, dtype=bool)
        simple[rows] = True
        simple[fe.version_records(data, bodies, bodies + lengths)] = True
        slow = np.flatnonzero(~simple)
    records = starts.size - slow.size
    view = memoryview(data)
    for k in slow.tolist():
        at, begin = base + int(starts[k]), int(bodies[k])
        parsed = _event(view[begin:begin + int(lengths[k])])
        if parsed is None:
            issues.append(ReadIssue("corrupt", path, "record is not a valid Event (record skipped)", at))
            continue
        found, histograms = parsed
        points.histograms += histograms
        records += 1
        for sub, (tag, step, number, wall) in enumerate(found):
            points.add_slow(tag, at, sub, step, number, wall)
    return records


class _Points:
    """Scalars per tag as they are decoded: numpy pieces from the fast path, Python rows from protobuf;
    `store` puts each tag's points in file order (record offset, then position in the record)."""

    def __init__(self) -> None:
        self.fast: dict[str, list[tuple]] = {}
        self.slow: dict[str, list[tuple]] = {}
        self.histograms: list[tuple] = []  # (tag, HistogramStats) in file order

    def add_fast(self, offsets, tags: list[str], tag_of, steps, values, walls) -> None:
        import numpy as np

        order = np.argsort(tag_of, kind="stable")
        bounds = np.concatenate(([0], np.cumsum(np.bincount(tag_of, minlength=len(tags)))))
        for t, tag in enumerate(tags):
            pick = order[bounds[t]:bounds[t + 1]]
            if pick.size:
                self.fast.setdefault(tag, []).append((offsets[pick], steps[pick], values[pick], walls[pick]))

    def add_slow(self, tag: str, offset: int, sub: int, step: int, number: float, wall: float) -> None:
        self.slow.setdefault(tag, []).append((offset, sub, step, number, wall))

    def _first(self, tag: str) -> tuple[int, int]:
        fast = self.fast.get(tag)
        slow = self.slow.get(tag)
        return min((int(fast[0][0][0]), 0) if fast else (1 << 62, 0), slow[0][:2] if slow else (1 << 62, 0))

    def store(self, log: LogFile, prefix: str) -> None:
        import numpy as np

        for tag, stats in self.histograms:
            log.histograms.setdefault(prefix + tag, []).append(stats)

        for tag in sorted(self.fast.keys() | self.slow.keys(), key=self._first):
            pieces = self.fast.get(tag, [])
            rows = self.slow.get(tag, [])
            columns = [np.concatenate([p[c] for p in pieces]) if pieces else np.zeros(0) for c in range(4)]
            offsets, steps, values, walls = columns
            if rows:
                slow_offsets, subs, slow_steps, slow_values, slow_walls = (np.asarray(c) for c in zip(*rows))
                order = np.lexsort((np.concatenate([np.zeros(offsets.size, np.int64), subs]),
                                    np.concatenate([offsets, slow_offsets])))
                steps = np.concatenate([steps.astype(np.int64), slow_steps.astype(np.int64)])[order]
                values = np.concatenate([values, slow_values.astype(np.float64)])[order]
                walls = np.concatenate([walls, slow_walls.astype(np.float64)])[order]
            raw = log.series_for(prefix + tag)
            raw.steps, raw.values, raw.walls = steps.tolist(), values.tolist(), walls.tolist()
            raw.epochs = [float("nan")] * len(raw.steps)
