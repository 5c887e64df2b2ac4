"""The incremental half of the reader interface: a `TailState` per followed file, the bytes appended since
the last call (a file replaced or rewritten is read from its start again), and the merge of each call's
points into the accumulated log. Reader modules build their `tail(state)` on these; `readers.tail` is the
one entry point (follow uses nothing else).

A file is tracked by identity: device and inode (a local file), and a digest of its first bytes. A log
rotated away (renamed, a new file written under the name: a new inode), rewritten in place (its first
bytes differ) or truncated (shorter than what was read) is read again from byte 0, and `restarts`
counts it; its earlier points are dropped, as a one-shot `diagnose` would see only the new file.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnprobe.diagnosis.readers.base import LogFile, ReadIssue, Unreadable, open_regular

READ_BLOCK = 16 << 20  # at most this much of a long file per call
HEAD = 64  # bytes of a file's start whose digest tells a rewrite from an append
_COLUMNS = (("steps", "int64"), ("values", "float64"), ("walls", "float64"), ("epochs", "float64"))


@dataclass
class TailState:
    """What one file has given so far. `log` holds every point read (numpy-backed series); `offset` the
    bytes consumed; `pending` a record not yet whole, waited for; `context` the reader's own (a CSV header,
    the tails of an MLflow run's metric files)."""

    ref: Any  # readers.LogRef
    verify_crc: bool = True
    log: LogFile | None = None
    offset: int = 0
    pending: bytes = b""
    lines: int = 0
    identity: tuple | None = None  # ((device, inode), bytes digested, digest of the file's first bytes)
    stamp: tuple | None = None  # (mtime ns, size) for files read again whole
    context: dict = field(default_factory=dict)
    ended: bool = False  # the format's end marker was seen
    changed: bool = False  # the last call brought points or issues
    restarts: int = 0  # times the file was replaced or rewritten and read again from its start
    bytes_read: int = 0

    def __post_init__(self) -> None:
        if self.log is None:
            self.log = LogFile(path=self.ref.path, format=self.ref.format)

    def start_over(self) -> None:
        """The file is not the one read so far: forget it and read the new one from its start."""
        self.log = LogFile(path=self.ref.path, format=self.ref.format)
        self.offset, self.pending, self.lines, self.stamp, self.identity = 0, b"", 0, None, None
        self.context.clear()
        self.restarts += 1


def _where(handle) -> tuple:
    """(device, inode) of an open local file; (None, None) for a remote object (its first bytes tell)."""
    try:
        info = os.fstat(handle.fileno())
        return info.st_dev, info.st_ino
    except (OSError, ValueError):
        return None, None


def _size(handle) -> int:
    size = getattr(handle, "size", None)
    return int(size) if size is not None else os.fstat(handle.fileno()).st_size


def digest_of(head: bytes) -> bytes:
    return hashlib.blake2b(head, digest_size=16).digest()


def appended(state: TailState) -> bytes:
    """The bytes appended to the file since the last call (b'' when none, or when it cannot be opened now:
    a file being replaced is read at the next call). A file that is not the one read so far (another
    inode, shorter than what was read, or other first bytes) is read again from its start."""
    try:
        handle = open_regular(state.ref.path)
    except (Unreadable, OSError):
        return b""
    with handle:
        where, size = _where(handle), _size(handle)
        head = handle.read(min(HEAD, size)) if size else b""
        if state.identity is not None:
            known_where, length, digest = state.identity
            if where != known_where or size < state.offset or len(head) < length \
                    or digest_of(head[:length]) != digest:
                state.start_over()
        if state.identity is None or state.identity[1] < len(head):
            state.identity = (where, len(head), digest_of(head))
        if size <= state.offset:
            return b""
        _seek(handle, state.offset)
        data = handle.read(min(size - state.offset, READ_BLOCK))
    state.offset += len(data)
    state.bytes_read += len(data)
    return data


def _seek(handle, offset: int) -> None:
    if hasattr(handle, "seek"):
        handle.seek(offset)
    else:  # a stream that cannot seek: read up to the offset
        handle.read(offset)


def complete_lines(state: TailState, data: bytes, log: LogFile) -> tuple[list[str], int]:
    """(the whole lines in what was pending plus `data`, the 1-based number of the first); a line without
    its newline yet stays pending. Bytes that are not UTF-8 become U+FFFD and the first such place of the
    file is reported in `log`, as a one-shot read reports it."""
    data = state.pending + data
    cut = data.rfind(b"\n") + 1
    state.pending = data[cut:]
    if not cut:
        return [], state.lines + 1
    whole = data[:cut]
    try:
        text = whole.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not state.context.get("not_utf8"):
            state.context["not_utf8"] = True
            at = state.offset - len(data) + exc.start
            log.issues.append(ReadIssue("corrupt", log.path, f"bytes that are not UTF-8 at offset {at}",
                                        state.lines + whole.count(b"\n", 0, exc.start) + 1))
        text = whole.decode("utf-8", errors="replace")
    lines = text.split("\n")[:-1]
    first = state.lines + 1
    state.lines += len(lines)
    return lines, first


def merge(log: LogFile, fresh: LogFile) -> bool:
    """Add one call's points and issues to the file's accumulated log; True when it brought any. Each
    series' columns live in numpy buffers that double when full, exposed as views of their filled part: a
    call costs its new points, not a copy of the whole run."""
    for name, raw in fresh.series.items():
        into = log.series_for(name)
        buffers = getattr(into, "_buffers", None)
        count = len(into.values)
        need = count + len(raw.values)
        if buffers is None or need > buffers[0].size:
            size = max(1024, 2 * need)
            grown = [np.empty(size, dtype) for _, dtype in _COLUMNS]
            for column, (attr, _) in zip(grown, _COLUMNS):
                column[:count] = getattr(into, attr)
            into._buffers = buffers = grown
        for column, (attr, _) in zip(buffers, _COLUMNS):
            column[count:need] = getattr(raw, attr)
            setattr(into, attr, column[:need])
    log.issues += fresh.issues
    log.records += fresh.records
    log.meta.update(fresh.meta)
    for tag, stats in fresh.histograms.items():
        log.histograms.setdefault(tag, []).extend(stats)
    return bool(fresh.series or fresh.issues or fresh.histograms)


def reread(state: TailState, read) -> bool:
    """For a file rewritten whole (trainer_state.json) or not appendable (W&B, mlflow.db): `read()` again
    only when its size or mtime changed; a copy caught mid-rewrite (cut) is waited for."""
    try:
        with open_regular(state.ref.path) as handle:
            info = os.fstat(handle.fileno())
            stamp = (info.st_mtime_ns, info.st_size)
    except (Unreadable, OSError, ValueError):
        stamp = None
    if stamp is None or stamp == state.stamp:
        return False
    state.stamp = stamp
    state.bytes_read += stamp[1]
    fresh = read()
    if any(issue.kind == "truncated" for issue in fresh.issues) and state.log.records:
        return False
    changed = fresh.points != state.log.points or len(fresh.issues) != len(state.log.issues)
    state.log = fresh
    state.ended = bool(fresh.meta.get("finished"))
    return changed
