"""Helpers to write logs byte by byte the way the real loggers do, without TensorFlow."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from nnprobe.diagnosis.readers.tensorboard import masked_crc32c

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "runs"


def frame(body: bytes) -> bytes:
    """One TFRecord: length, masked CRC of the length, data, masked CRC of the data."""
    header = struct.pack("<Q", len(body))
    return header + struct.pack("<I", masked_crc32c(header)) + body + struct.pack("<I", masked_crc32c(body))


def scalar_event(tag: str, value: float, step: int, wall: float) -> bytes:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary

    return Event(wall_time=wall, step=step,
                 summary=Summary(value=[Summary.Value(tag=tag, simple_value=value)])).SerializeToString()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def wire_scalar_event(tag: str, value: float, step: int, wall: float) -> bytes:
    """The same bytes as `scalar_event`, encoded by hand (fast, for 200k-point files, and an independent
    cross-check of the proto classes): Event{1: wall_time double, 2: step int64, 5: Summary{1: Value{1: tag,
    2: simple_value float}}}."""
    name = tag.encode()
    inner = b"\x0a" + _varint(len(name)) + name + b"\x15" + struct.pack("<f", value)
    summary = b"\x0a" + _varint(len(inner)) + inner
    body = b"\x09" + struct.pack("<d", wall)
    if step:
        body += b"\x10" + _varint(step)
    return body + b"\x2a" + _varint(len(summary)) + summary


def write_events(path: Path, points: list[tuple[str, float, int, float]]) -> Path:
    """An event file of simple_value scalars (tag, value, step, wall), with the file_version record."""
    from tensorboard.compat.proto.event_pb2 import Event

    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = [frame(Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString())]
    chunks += [frame(wire_scalar_event(*p)) for p in points]
    path.write_bytes(b"".join(chunks))
    return path


def curve(n: int, start: float, end: float, noise: float = 0.0, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    base = start + (end - start) * (1 - np.exp(-np.arange(n) / max(n / 5, 1)))
    return [float(v) for v in base * (1 + noise * rng.standard_normal(n))]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path

