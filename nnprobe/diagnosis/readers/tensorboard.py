"""TensorBoard event files, read record by record with every point kept.

Framing (TFRecord): `uint64 length | uint32 masked_crc32c(length) | event bytes | uint32
masked_crc32c(event)`. Each record is a `tensorboard.compat.proto.event_pb2.Event`. We frame the file
ourselves instead of using `EventAccumulator`, which keeps a 10,000-point reservoir per tag and can drop
exactly the NaN points, and instead of tensorboard's loader, whose pure-Python CRC costs ~6 s per 200k
records (REFERENCE.md); the C `crc32c` package makes verification cheap.

Both scalar spellings are read: legacy `simple_value` (PyTorch SummaryWriter, Lightning, HF Trainer)
and TF2 tensor scalars (Keras, `add_scalar(new_style=True)`): any rank-0 numeric tensor.
"""
from __future__ import annotations

import struct

from nnprobe.diagnosis.readers.base import LogFile, ReadIssue
from nnprobe.diagnosis.readers.registry import register_reader

FORMAT = "tensorboard"
_HEADER = struct.Struct("<QI")
_U32 = struct.Struct("<I")
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


@register_reader(FORMAT, patterns=("events.out.tfevents*",), priority=10, options=("verify_crc", "prefix"),
                 shown="events.out.tfevents.*", offset_unit="byte")
def read(path: str, *, verify_crc: bool = True, prefix: str = "") -> LogFile:
    """Every scalar of one event file; damage is recorded in `issues`, good records are still used.

    `prefix` is prepended to tags (Keras writes `train/` and `validation/` into separate folders, both
    with `epoch_loss`, so the folder is part of the metric's name). The file is streamed in 16 MiB
    chunks (no size cap); a length field pointing past the end of the file is a cut last record.
    """
    import os

    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event

    import crc32c

    from nnprobe.diagnosis.readers.base import open_regular

    log = LogFile(path=path, format=FORMAT)
    series: dict[str, tuple[list, list, list]] = {}
    parse = Event.FromString
    header = _HEADER.unpack_from
    u32 = _U32.unpack_from
    crc = crc32c.crc32c

    delta, mask = _MASK_DELTA, 0xFFFFFFFF  # masking inlined below: this loop runs once per record
    records = 0
    with open_regular(path) as handle:
        file_size = os.fstat(handle.fileno()).st_size
        data, base, pos, eof, broken = b"", 0, 0, False, False
        while not broken:
            more = handle.read(CHUNK)
            eof = not more
            data = data[pos:] + more  # the unframed tail of the last chunk, then the next chunk
            base += pos
            pos = 0
            size = len(data)
            view = memoryview(data)
            while size - pos >= 12:
                length, length_crc = header(data, pos)
                if verify_crc and length_crc != ((((c := crc(view[pos:pos + 8])) >> 15) | (c << 17)) + delta) & mask:
                    log.issues.append(ReadIssue("corrupt", path, f"record length fails its CRC; the remaining "
                                                                 f"{file_size - base - pos} bytes cannot be framed",
                                                base + pos))
                    broken = True
                    break
                body_end = pos + 12 + length
                if body_end + 4 > size:
                    if base + body_end + 4 > max(file_size, base + size):  # past the end: never complete
                        eof = True
                    break
                body = view[pos + 12:body_end]
                record_at = pos
                pos = body_end + 4
                if verify_crc and u32(data, body_end)[0] != ((((c := crc(body)) >> 15) | (c << 17)) + delta) & mask:
                    log.issues.append(ReadIssue("corrupt", path, "record data fails its CRC (record skipped)",
                                                base + record_at))
                    continue
                try:
                    event = parse(body)
                except DecodeError:
                    log.issues.append(ReadIssue("corrupt", path, "record is not a valid Event (record skipped)",
                                                base + record_at))
                    continue
                records += 1
                values = event.summary.value  # empty for file_version, session_log ... records
                if not values:
                    continue
                step = event.step
                wall = event.wall_time
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
                        continue
                    lists = series.get(value.tag)
                    if lists is None:
                        lists = series[value.tag] = ([], [], [])
                    lists[0].append(step)
                    lists[1].append(number)
                    lists[2].append(wall)
            body = view = None  # let the chunk go before the next one is read
            if eof and not broken:
                left = size - pos
                if 0 < left < 12:
                    log.issues.append(ReadIssue("truncated", path, f"file ends inside a record header "
                                                                   f"({left} of 12 bytes)", base + pos))
                elif left:
                    length = header(data, pos)[0]
                    log.issues.append(ReadIssue("truncated", path, f"last record is cut: needs {length + 16} "
                                                                   f"bytes, {left} left", base + pos))
                break
    log.records = records
    for tag, (steps, values, walls) in series.items():
        raw = log.series_for(prefix + tag)
        raw.steps, raw.values, raw.walls = steps, values, walls
        raw.epochs = [float("nan")] * len(steps)
    return log
