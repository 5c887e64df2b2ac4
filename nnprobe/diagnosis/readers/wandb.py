"""Weights & Biases run folders (`wandb/run-*/`, `wandb/offline-run-*/`): the `run-<id>.wandb` transaction
log, every history point kept.

The log is LevelDB's log format as W&B writes it: a 7-byte file header `:W&B` + 0xBEE1 + version 0, then
32 KiB blocks of records `uint32 crc32(type byte + data) | uint16 length | uint8 type | data`, type 1 a
whole record, 2/3/4 the first/middle/last fragment of one that spans blocks, a block tail under 7 bytes
zero-padded. Each record is a `wandb_internal_pb2.Record`; its `history` (field 2) carries the logged
metrics as items (`key` or `nested_key`, joined with `/`; the value as `value_json` with the bare `NaN`,
`Infinity`, `-Infinity` tokens, or typed `number`/`integer`), `_step` and `_timestamp` the axes.

wandb 0.31 ships no Python reader of this file any more (the Go `wandb-core` reads it), so the framing is
read here, streamed block by block (no size cap: the log grows with the run), and the records are decoded
with the wandb package's own protobuf classes when `wandb` is importable, else with the few lines of
protobuf wire decoding below (only the fields used: history, config, run). A bad CRC skips the rest of its
block as LevelDB does; a record cut at the end of the file is a truncated tail (a live run).
The number of classes comes from the run's config (the log's config records, else `files/config.yaml`).
"""
from __future__ import annotations

import json
import math
import os
import re
import struct
import zlib

from nnprobe.diagnosis.readers.base import MIB, LogFile, ReadIssue, Unreadable, as_float, as_step, open_regular, \
    read_capped
from nnprobe.diagnosis.readers.registry import register_reader

FORMAT = "wandb"
BLOCK = 32768
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
_RECORD = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
CONSOLE_CAP = 4 * 1024 * 1024  # console text kept for a model summary (characters); the rest is not read
_K_KEYS = ("num_classes", "n_classes", "num_labels", "nb_classes", "classes")
_CONFIG_K = re.compile(r"^(num_classes|n_classes|num_labels|nb_classes|classes):[ \t]*\n(?:[ \t]+desc:.*\n)?"
                       r"[ \t]+value:[ \t]*(\S+)", re.M)


# ------------------------------------------------------------------ protobuf wire decoding (the fallback)

def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes):
    """(field number, wire type, value) of each field of a protobuf message; ValueError when malformed."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        if pos > len(data):
            raise ValueError("field runs past the message")
        yield number, wire, value


def _item_wire(data: bytes) -> tuple[str, object]:
    """(key, value) of a HistoryItem/ConfigItem: key 1, nested_key 2, integer 5 (sint64), number 6
    (double), json 8, value_json 16."""
    key, nested, value = "", [], None
    for number, wire, raw in fields(data):
        if number == 1 and wire == 2:
            key = raw.decode("utf-8", "replace")
        elif number == 2 and wire == 2:
            nested.append(raw.decode("utf-8", "replace"))
        elif number == 5 and wire == 0:
            value = float((raw >> 1) ^ -(raw & 1))
        elif number == 6 and wire == 1 and len(raw) == 8:
            value = struct.unpack("<d", raw)[0]
        elif number in (8, 16) and wire == 2:
            value = ("json", raw.decode("utf-8", "replace"))
    return key or "/".join(nested), value


def decode_wire(body: bytes) -> tuple[str, list, float | None]:
    """(kind, [(key, value)], step or time) of one Record: kind 'history' (with its step), 'stats' (system
    metrics, with their time in seconds), 'config' or '' (other records)."""
    for number, wire, raw in fields(body):
        if wire != 2:
            continue
        if number in (4, 13):  # output / output_raw (console text): line 3
            line = next((v for n, w, v in fields(raw) if n == 3 and w == 2), b"")
            return "output", [("line", line.decode("utf-8", "replace"))], None
        if number == 7:  # stats: timestamp 2 (Timestamp seconds 1, nanos 2), item 3 (StatsItem)
            stamp = next((v for n, w, v in fields(raw) if n == 2 and w == 2), b"")
            parts = {n: v for n, w, v in fields(stamp) if w == 0}
            wall = parts.get(1, 0) + parts.get(2, 0) / 1e9 if parts else None
            return "stats", [_item_wire(v) for n, w, v in fields(raw) if n == 3 and w == 2], wall
        if number == 2:  # history: item 1, step 2 (HistoryStep.num 1)
            items, step = [], None
            for sub, sub_wire, value in fields(raw):
                if sub == 1 and sub_wire == 2:
                    items.append(_item_wire(value))
                elif sub == 2 and sub_wire == 2:
                    step = next((v for n, w, v in fields(value) if n == 1 and w == 0), 0)
            return "history", items, step
        if number in (5, 17):  # config (update 1), or run (its config 4)
            config = raw if number == 5 else b"".join(v for n, w, v in fields(raw) if n == 4 and w == 2)
            return "config", [_item_wire(v) for n, w, v in fields(config) if n == 1 and w == 2], None
    return "", [], None


def _decoder():
    """Record bytes -> (kind, [(key, value)], step): wandb's own protobuf classes if importable, else ours."""
    try:
        from wandb.proto.wandb_internal_pb2 import Record
    except Exception:  # noqa: BLE001 - not installed, or a wandb whose protos do not import
        return decode_wire

    def item(one) -> tuple[str, object]:
        key = one.key or "/".join(one.nested_key)
        kind = one.WhichOneof("value") if "value" in one.DESCRIPTOR.oneofs_by_name else None
        if kind in ("number", "integer"):
            return key, float(getattr(one, kind))
        if kind in ("json", "value_json"):
            return key, ("json", getattr(one, kind))
        return key, ("json", one.value_json) if one.value_json else None

    def decode(body: bytes):
        record = Record.FromString(body)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            step = record.history.step.num if record.history.HasField("step") else None
            return "history", [item(one) for one in record.history.item], step
        if kind in ("config", "run"):
            config = record.config if kind == "config" else record.run.config
            return "config", [item(one) for one in config.update], None
        if kind in ("output", "output_raw"):
            return "output", [("line", getattr(record, kind).line)], None
        if kind == "stats":
            stamp = record.stats.timestamp
            wall = stamp.seconds + stamp.nanos / 1e9 if record.stats.HasField("timestamp") else None
            return "stats", [(one.key, ("json", one.value_json)) for one in record.stats.item], wall
        return "", [], None

    return decode


# ------------------------------------------------------------------------------------ framing

def records(handle, log: LogFile):
    """Yield (byte offset, record bytes) of each whole record; damage goes to `log.issues`."""
    path = log.path
    block = handle.read(BLOCK)
    if block[:len(HEADER)] != HEADER:
        raise Unreadable("is not a W&B transaction log (no :W&B header)" if block[:4] != HEADER[:4]
                         else "is a W&B transaction log of a version this reader does not know")
    base, pos, pending, pending_at = 0, len(HEADER), None, 0
    resync = False  # after a skipped block: the tail fragments of a record already reported are dropped quietly
    while block:
        last = len(block) < BLOCK
        while len(block) - pos >= 7:
            crc, length, kind = _RECORD.unpack_from(block, pos)
            if kind == 0 and length == 0 and crc == 0:  # zero padding to the block's end
                break
            end = pos + 7 + length
            if end > len(block):
                if last:
                    log.issues.append(ReadIssue("truncated", path, f"last record is cut: needs {length + 7} "
                                                                   f"bytes, {len(block) - pos} left", base + pos))
                    return
                log.issues.append(ReadIssue("corrupt", path, "record runs past its block (rest of the block "
                                                             "skipped)", base + pos))
                pending, resync = None, True
                break
            body = block[pos + 7:end]
            if zlib.crc32(bytes((kind,)) + body) != crc:
                log.issues.append(ReadIssue("corrupt", path, "record fails its CRC (rest of the block skipped)",
                                            base + pos))
                pending, resync = None, True
                break
            at, pos = base + pos, end
            if kind in (FULL, FIRST):
                resync = False
            if kind == FULL:
                yield at, body
            elif kind == FIRST:
                pending, pending_at = [body], at
            elif kind in (MIDDLE, LAST) and pending is not None:
                pending.append(body)
                if kind == LAST:
                    yield pending_at, b"".join(pending)
                    pending = None
            elif not (resync and kind in (MIDDLE, LAST)):
                log.issues.append(ReadIssue("corrupt", path, f"record fragment of type {kind} out of order "
                                                             f"(skipped)", at))
        if last:
            tail = block[pos:]
            if tail.strip(b"\x00") or pending is not None:
                log.issues.append(ReadIssue("truncated", path, "the file ends inside a record (cut while "
                                                               "written)", base + pos if tail else pending_at))
            return
        base += len(block)
        block, pos = handle.read(BLOCK), 0
    if pending is not None:
        log.issues.append(ReadIssue("truncated", path, "the file ends inside a record spanning blocks",
                                    pending_at))


def _value(raw) -> float | None:
    """A history value as a float: numbers and the NaN/Infinity tokens (float() reads them, and is the fast
    path), else whatever JSON number the text holds; None for text, media and objects."""
    if isinstance(raw, tuple):
        try:
            return float(raw[1])
        except ValueError:
            pass
        try:
            return as_float(json.loads(raw[1]))
        except (ValueError, RecursionError):
            return None
    return raw if isinstance(raw, float) else None


def _histogram(parts: dict, step: int, wall: float):
    """A W&B histogram (what wandb.watch logs for gradients and parameters: the keys `<name>/_type` =
    "histogram", `<name>/values` = counts, `<name>/bins` = edges) as HistogramStats from the bin centres;
    None when the parts are not one."""
    try:
        kind = json.loads(parts["_type"][1])
        counts = [float(c) for c in json.loads(parts["values"][1])]
        edges = [float(e) for e in json.loads(parts["bins"][1])]
    except (ValueError, RecursionError, KeyError, TypeError, IndexError):
        return None
    if kind != "histogram" or len(edges) != len(counts) + 1 or not sum(counts) > 0:
        return None
    from nnprobe.diagnosis.readers.base import HistogramStats, histogram_buckets

    num = sum(counts)
    centres = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    used = [i for i, c in enumerate(counts) if c > 0]
    mean = sum(c * x for c, x in zip(counts, centres)) / num
    rms = math.sqrt(sum(c * x * x for c, x in zip(counts, centres)) / num)
    zero = sum(c for c, a, b in zip(counts, edges, edges[1:]) if a <= 0.0 <= b and b - a <= 1e-9)
    low, high = edges[used[0]], edges[used[-1] + 1]
    return HistogramStats(step, wall, low, high, num, mean, rms, zero / num,
                          *histogram_buckets(edges[:-1], edges[1:], counts, low, high))


def _add_history(log: LogFile, items: list, step: int | None, prefix: str) -> int:
    """The points of one history row (and its histograms); returns the row's step."""
    values = {key: _value(raw) for key, raw in items}
    index = log.records - 1
    step = as_step(values.get("_step"), as_step(None if step is None else float(step), index))
    wall = values.get("_timestamp")
    wall = wall if wall is not None else math.nan
    for key, value in values.items():
        if value is None or key.startswith("_"):
            continue
        log.series_for(prefix + key).add(step, value, wall)
    parts: dict[str, dict] = {}
    for key, raw in items:
        name, _, part = key.rpartition("/")
        if part in ("_type", "values", "bins") and isinstance(raw, tuple):
            parts.setdefault(name, {})[part] = raw
    for name, pieces in parts.items():
        if (histogram := _histogram(pieces, step, wall)) is not None:
            log.histograms.setdefault(prefix + name, []).append(histogram)
    return step


def _add_stats(log: LogFile, items: list, wall: float | None, step: int, prefix: str) -> None:
    """A system-metrics sample (W&B's monitor: `gpu.0.gpu` utilization %, `gpu.0.memoryAllocated`,
    `proc.memory.rssMB`, `memory_percent`, `cpu` ...) as points of `system/<key>` series, as W&B's UI names
    them, at the training step last logged before it (the sample has a time, not a step)."""
    wall = wall if wall is not None and math.isfinite(wall) else math.nan
    for key, raw in items:
        value = _value(raw)
        if value is not None and key:
            log.series_for(f"{prefix}system/{key}").add(step, value, wall)


def _config_k(log: LogFile, items: list) -> None:
    from nnprobe.diagnosis.readers import class_count

    for key, raw in items:
        if key in _K_KEYS and isinstance(raw, tuple):
            try:
                value = json.loads(raw[1])
            except (ValueError, RecursionError):
                continue
            value = value.get("value") if isinstance(value, dict) else value
            k, problem = class_count(value, f"W&B config {key}")
            if k is not None:
                log.meta["num_classes"], log.meta["num_classes_from"] = k, f"from the W&B config ({key})"
            elif problem:
                log.issues.append(ReadIssue("invalid", log.path, problem))
        elif key in ("optimizer", "optim") and isinstance(raw, tuple):
            log.meta["optimizer"] = raw[1].strip('"')[:50]


@register_reader(FORMAT, patterns=("run-*.wandb",), options=("prefix",),
                 shown="W&B run-*.wandb", offset_unit="byte")
def read(path: str, *, prefix: str = "") -> LogFile:
    """Every history point of one .wandb log; damaged records are reported, the others used."""
    from google.protobuf.message import DecodeError

    log = LogFile(path=path, format=FORMAT)
    decode = _decoder()
    last_step, console = 0, []
    with open_regular(path) as handle:
        for at, body in records(handle, log):
            try:
                kind, items, step = decode(body)
            except (ValueError, DecodeError, UnicodeDecodeError, RecursionError):
                log.issues.append(ReadIssue("corrupt", path, "record is not a W&B Record (skipped)", at))
                continue
            if kind == "history":
                log.records += 1
                last_step = _add_history(log, items, step, prefix)
            elif kind == "stats":  # not counted in records: those are the history rows
                _add_stats(log, items, step, last_step, prefix)
            elif kind == "output" and sum(map(len, console)) < CONSOLE_CAP:
                console.append(items[0][1])
            elif kind == "config":
                _config_k(log, items)
    if "num_classes" not in log.meta:
        _config_yaml_k(log, path)
    if "num_classes" not in log.meta and console:
        _summary_k(log, "".join(console))
    return log


def _summary_k(log: LogFile, text: str) -> None:
    """K from a model summary printed to the console W&B captured (print(model), model.summary())."""
    from nnprobe.diagnosis.model_summary import output_size
    from nnprobe.diagnosis.readers import class_count

    found = output_size(text)
    if found is not None and class_count(found[0], "the model summary")[0] is not None:
        log.meta["num_classes"] = found[0]
        log.meta["num_classes_from"] = f"from the model summary in the W&B console log ({found[1]} {found[0]})"


def _config_yaml_k(log: LogFile, path: str) -> None:
    """K from `files/config.yaml` beside the log (a synced run's copy of its config), if it states one."""
    folder = path.rsplit("/", 1)[0] if "://" in path else os.path.dirname(path)
    try:
        text = read_capped(f"{folder}/files/config.yaml", MIB).decode("utf-8", "replace")
    except (Unreadable, OSError):
        return
    match = _CONFIG_K.search(text)
    if match and re.fullmatch(r"\d{1,12}", match.group(2)):
        _config_k(log, [(match.group(1), ("json", match.group(2)))])
