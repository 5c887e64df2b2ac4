"""The vectorised event reader (readers/_fast_events.py) against an independent reference: the former
record-by-record reader (below, unchanged: struct framing, the C crc32c per record, protobuf per event),
on every record of the sample runs and of files written by torch's and tensorboard's own writers;
and the vectorised `aligned` against the former per-point loop."""
from __future__ import annotations

import math
import os
import struct

import crc32c
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnprobe.diagnosis.checks._util import aligned
from nnprobe.diagnosis.readers import _fast_events as fe
from nnprobe.diagnosis.readers import tensorboard
from nnprobe.diagnosis.readers.base import ReadIssue
from nnprobe.diagnosis.series import Series

from diagnose_helpers import SAMPLES, frame, wire_scalar_event

# ------------------------------------------------------------------------------------ the reference


def _masked(data) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def reference_read(path: str, verify_crc: bool = True):
    """The reader as it was before vectorisation: one Python step, two CRC calls and one protobuf
    object per record. Returns ({tag: (steps, values, walls)} in first-seen order, issues, records)."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event

    data = open(path, "rb").read()
    series: dict[str, tuple[list, list, list]] = {}
    issues, records, pos, size = [], 0, 0, len(data)
    while size - pos >= 12:
        length, length_crc = struct.unpack_from("<QI", data, pos)
        if verify_crc and length_crc != _masked(data[pos:pos + 8]):
            issues.append(ReadIssue("corrupt", path, f"record length fails its CRC; the remaining "
                                                     f"{size - pos} bytes cannot be framed", pos))
            return series, issues, records
        end = pos + 12 + length
        if end + 4 > size:
            break
        body, at, pos = data[pos + 12:end], pos, end + 4
        if verify_crc and struct.unpack_from("<I", data, end)[0] != _masked(body):
            issues.append(ReadIssue("corrupt", path, "record data fails its CRC (record skipped)", at))
            continue
        try:
            event = Event.FromString(body)
        except DecodeError:
            issues.append(ReadIssue("corrupt", path, "record is not a valid Event (record skipped)", at))
            continue
        records += 1
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            number = value.simple_value if kind == "simple_value" else \
                tensorboard._tensor_scalar(value.tensor) if kind == "tensor" else None
            if number is not None:
                lists = series.setdefault(value.tag, ([], [], []))
                lists[0].append(event.step)
                lists[1].append(number)
                lists[2].append(event.wall_time)
    left = size - pos
    if 0 < left < 12:
        issues.append(ReadIssue("truncated", path, f"file ends inside a record header ({left} of 12 bytes)", pos))
    elif left:
        length = struct.unpack_from("<Q", data, pos)[0]
        issues.append(ReadIssue("truncated", path, f"last record is cut: needs {length + 16} bytes, {left} left",
                                pos))
    return series, issues, records


def bits(values) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


def assert_agree(path: str, verify_crc: bool = True) -> None:
    """Both readers (and the new one forced through protobuf) give the same tags in the same order, the
    same steps, wall times and value bits, the same issues and record count."""
    want, issues, records = reference_read(path, verify_crc)
    for fast in (True, False):
        log = tensorboard.read(path, verify_crc=verify_crc, fast=fast)
        assert list(log.series) == list(want), (path, fast)
        for tag, (steps, values, walls) in want.items():
            raw = log.series[tag]
            assert raw.steps == steps and raw.walls == walls, (path, tag, fast)
            assert bits(raw.values) == bits(values), (path, tag, fast)
            assert all(type(s) is int for s in raw.steps) and len(raw.epochs) == len(steps)
        assert log.issues == issues, (path, fast)
        assert log.records == records, (path, fast)


def event_files(folder) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, files in os.walk(folder) for f in files if "tfevents" in f)


# ------------------------------------------------------------------------------------ files to read

def test_every_sample_run_event_file_agrees():
    paths = event_files(SAMPLES)
    assert len(paths) >= 6
    for path in paths:
        assert_agree(path)
        assert_agree(path, verify_crc=False)


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory):
    """A run written by torch.utils.tensorboard with every kind of summary it has."""
    from torch.utils.tensorboard import SummaryWriter

    folder = tmp_path_factory.mktemp("torch_run")
    writer = SummaryWriter(str(folder))
    specials = [0.0, -0.0, math.nan, math.inf, -math.inf, 1e-45, 3.4e38, 1e39, 0.1, -2.5]
    for step in range(300):
        value = specials[step % len(specials)] if step % 7 == 0 else 2.0 / (step + 1)
        writer.add_scalar("train/loss", value, step, walltime=1e9 + step * 0.25)
        writer.add_scalar("lr", 1e-3, step * 100)
        if step % 10 == 0:
            writer.add_scalar("val/accuracy", step / 300, step, new_style=True)
            writer.add_scalar("é/ünïcode ✓", -value, step)
            writer.add_scalar("double", math.pi * step, step, new_style=True, double_precision=True)
    writer.add_scalar("t" * 200, 1.0, 5)  # a tag over 127 bytes: two-byte length varints
    writer.add_scalar("big-step", 7.0, 2**40)
    writer.add_scalar("negative-step", 7.5, -3)
    writer.add_scalars("grouped", {"a": 1.0, "b": 2.0}, 3)  # sub-folders with their own files
    writer.add_histogram("weights", np.arange(100.0), 3)
    writer.add_image("image", np.zeros((3, 8, 8)), 4)
    writer.add_text("note", "not a scalar", 5)
    writer.add_hparams({"lr": 0.1, "bs": 32}, {"hparam/accuracy": 0.9})
    writer.close()
    return folder


def test_torch_summarywriter_files_agree(torch_run):
    paths = event_files(torch_run)
    assert len(paths) >= 4  # the run, two add_scalars folders, the add_hparams folder
    for path in paths:
        assert_agree(path)
        assert_agree(path, verify_crc=False)


def test_tensorboard_writer_tf2_scalars_agree(tmp_path):
    """tensorboard's own EventFileWriter with TF2-style tensor scalars (summary_v2), float and double."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.plugins.scalar import summary_v2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(tmp_path))
    for step in range(200):
        for name, value in (("epoch_loss", 1.0 / (step + 1)), ("epoch_accuracy", step / 200)):
            writer.add_event(Event(wall_time=1e9 + step, step=step, summary=summary_v2.scalar_pb(name, value)))
    writer.close()
    (path,) = event_files(tmp_path)
    assert_agree(path)
    assert len(tensorboard.read(path).series["epoch_loss"].steps) == 200


def _simple_file(tmp_path, n: int, tags=("train/loss", "train/acc", "val/loss", "val/acc")):
    """(path, points, byte offset of each record) for a file of simple scalars after a file_version."""
    points = [(tags[i % len(tags)], (i % 97) / 7.0, i // len(tags) * 37, 1e9 + i) for i in range(n)]
    records = [frame(b"\x09" + struct.pack("<d", 1.0) + b"\x1a\x0dbrain.Event:2")]
    records += [frame(wire_scalar_event(*p)) for p in points]
    path = tmp_path / "events.out.tfevents.1.x"
    path.write_bytes(b"".join(records))
    return str(path), points, np.cumsum([0] + [len(r) for r in records[:-1]]).tolist()


def test_periodic_framing_through_size_changes_and_small_chunks(tmp_path, monkeypatch):
    """Four tags in turn while the step varint grows from 1 to 3 bytes (the framing's period breaks and
    resumes), read whole and in 1 KiB chunks that cut records anywhere."""
    path, points, _ = _simple_file(tmp_path, 4 * 2000)
    assert_agree(path)
    monkeypatch.setattr(tensorboard, "CHUNK", 1000)
    assert_agree(path)
    log = tensorboard.read(path)
    assert log.series["val/acc"].steps == [p[2] for p in points if p[0] == "val/acc"]


def test_truncated_tail_and_corrupt_crcs(tmp_path, monkeypatch):
    path, points, offsets = _simple_file(tmp_path, 400)
    data = bytearray(open(path, "rb").read())
    for cut in (1, 5, 13, 30):
        with open(path, "wb") as handle:
            handle.write(data[:-cut])
        assert_agree(path)
        assert [i.kind for i in tensorboard.read(path).issues] == ["truncated"]
    damaged = bytearray(data)
    damaged[offsets[300] + 20] ^= 0x40  # inside one record's data
    damaged[offsets[390] + 9] ^= 0x01  # a later record's length CRC: framing stops there
    with open(path, "wb") as handle:
        handle.write(damaged)
    for chunk in (tensorboard.CHUNK, 700):
        monkeypatch.setattr(tensorboard, "CHUNK", chunk)
        assert_agree(path)
        assert_agree(path, verify_crc=False)
    assert [(i.kind, i.offset) for i in tensorboard.read(path).issues] == [("corrupt", offsets[300]),
                                                                          ("corrupt", offsets[390])]


def test_records_the_fast_path_must_leave_to_protobuf(tmp_path):
    """Shapes near the simple one: invalid UTF-8 tag, empty tag, two values in one summary, fields out of
    order, a step sent as a 10-byte negative varint, an over-long (non-canonical) step varint, an extra
    field, a record that is not an Event."""
    tail = lambda tag: b"\x0a" + bytes([len(tag)]) + tag + b"\x15" + struct.pack("<f", 1.5)  # noqa: E731
    summary = lambda inner: b"\x2a" + bytes([len(inner) + 2]) + b"\x0a" + bytes([len(inner)]) + inner  # noqa: E731
    wall = b"\x09" + struct.pack("<d", 5.0)
    bodies = [
        wall + b"\x10\x03" + summary(tail(b"ok")),
        wall + b"\x10\x03" + summary(tail(b"\xff\xfe")),
        wall + b"\x10\x03" + summary(b"\x15" + struct.pack("<f", 2.0)),
        wall + b"\x10\x03" + b"\x2a\x14" + b"\x0a\x08" + tail(b"a") + b"\x0a\x08" + tail(b"b"),
        b"\x10\x03" + wall + summary(tail(b"ok")),
        wall + b"\x10" + b"\xfd" + b"\xff" * 8 + b"\x01" + summary(tail(b"ok")),
        wall + b"\x10\x83\x80\x00" + summary(tail(b"ok")),
        wall + b"\x10\x03" + summary(tail(b"ok")) + b"\x18\x01",
        b"\x0b\x0c garbage",
        wall + b"\x1a\x02\xc3\x28",  # a file_version that is not UTF-8
        wall + b"\x1a\x02ok" + b"\x52\x04\x0a\x02me",  # file_version and SourceMetadata (torch)
        wall + b"\x1a\x02ok" + b"\x52\x04\x0a\x02\xff\xfe",
        wall + b"\x1a\x02ok" + b"\x52\x05\x0a\x03me",  # inner length past the end
        wall + b"\x1a\x02ok" + b"\x52\x04\x12\x02me",  # an unknown inner field
    ]
    path = tmp_path / "events.out.tfevents.1.x"
    path.write_bytes(b"".join(frame(b) for b in bodies))
    assert_agree(str(path))
    log = tensorboard.read(str(path))
    assert log.series["ok"].steps == [3, 3, -3, 3, 3]
    assert [i.kind for i in log.issues] == ["corrupt"] * 5  # bad UTF-8 (3), garbage, the cut inner message
    assert log.records == len(bodies) - 5


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4),
       cut=st.integers(0, 40), crc=st.booleans())
def test_damaged_files_agree(tmp_path, flips, cut, crc):
    path, _, _ = _simple_file(tmp_path, 60, tags=("loss", "accuracy"))
    data = bytearray(open(path, "rb").read())
    for where, mask in flips:
        data[where % len(data)] ^= mask
    with open(path, "wb") as handle:
        handle.write(data[:len(data) - cut])
    assert_agree(path, verify_crc=crc)


def test_crc32c_spans_match_the_c_function():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, 6000, dtype=np.uint8).tobytes()
    starts = rng.integers(0, 3000, 400)
    lengths = np.concatenate([rng.integers(0, 40, 200), rng.integers(0, 2 * fe.CRC_IN_C, 200)])
    got = fe.crc32c_spans(data, starts, lengths)
    assert [int(g) for g in got] == [crc32c.crc32c(data[s:s + n]) for s, n in zip(starts, lengths)]


# ------------------------------------------------------------------------------------ aligned

def reference_aligned(train: Series, at_steps: np.ndarray) -> np.ndarray:
    """`aligned` as it was: a mean and two searchsorted calls per evaluation."""
    out = np.full(at_steps.size, np.nan)
    mask = np.isfinite(train.values)
    steps = train.steps[mask]
    values = train.values[mask]
    if not steps.size:
        return out
    previous = -np.inf
    for k, step in enumerate(at_steps):
        lo = np.searchsorted(steps, previous, side="right")
        hi = np.searchsorted(steps, step, side="right")
        if hi > lo:
            out[k] = values[lo:hi].mean()
        elif hi > 0:
            out[k] = values[hi - 1]
        previous = step
    return out


def _series(steps, values) -> Series:
    nan = np.full(len(steps), np.nan)
    return Series("train_loss", "x", "tensorboard", np.asarray(steps, dtype=np.int64),
                  np.asarray(values, dtype=np.float64), nan, nan)


def test_aligned_equals_the_per_point_loop_bitwise():
    rng = np.random.default_rng(7)
    for trial in range(300):
        n = int(rng.integers(0, 400))
        steps = np.sort(rng.integers(0, 500, n))  # duplicates allowed
        values = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 12)
        values[rng.random(n) < 0.1] = np.nan
        values[rng.random(n) < 0.03] = np.inf
        at = rng.integers(-5, 520, int(rng.integers(0, 60)))
        if trial % 3:
            at = np.sort(at)  # evaluations in order; every third trial out of order, repeats kept
        want = reference_aligned(_series(steps, values), at)
        got = aligned(_series(steps, values), at)
        assert got.shape == want.shape and got.tobytes() == want.tobytes(), trial


def test_aligned_edge_cases():
    empty = _series([], [])
    assert aligned(empty, np.array([1, 2])).tobytes() == reference_aligned(empty, np.array([1, 2])).tobytes()
    train = _series([0, 1, 2, 5, 5, 9], [1.0, np.nan, 3.0, 4.0, 6.0, 8.0])
    for at in ([], [0], [4], [5, 5, 9], [20], [9, 2, 5], [-1]):
        at = np.asarray(at, dtype=np.int64)
        assert aligned(train, at).tobytes() == reference_aligned(train, at).tobytes(), at
    assert aligned(train, np.array([2, 5, 9])).tolist() == [2.0, 5.0, 8.0]  # (1+3)/2, (4+6)/2, 8
    assert np.isnan(aligned(_series([3], [np.nan]), np.array([4]))).all()
