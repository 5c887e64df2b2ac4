"""Writers for MLflow and W&B logs, byte by byte as the real tools lay them out, without mlflow or wandb:
the file store's `metrics/<key>` lines and an SQLite store's tables (mlflow's file_store.py and
sqlalchemy_store.py), and W&B's `.wandb` transaction log (LevelDB log blocks around protobuf Records),
encoded here independently of the readers' decoders."""
from __future__ import annotations

import math
import sqlite3
import struct
import sys
import zlib
from pathlib import Path

BLOCK = 32768


# ------------------------------------------------------------------------------------------ W&B

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def item(key, value) -> bytes:
    """A HistoryItem: value_json text (str), typed `number` (float) or `integer` (int), nested keys (tuple)."""
    keys = b"".join(field(2, k.encode()) for k in key) if isinstance(key, tuple) else field(1, key.encode())
    if isinstance(value, str):
        return keys + field(16, value.encode())
    if isinstance(value, float):
        return keys + varint(6 << 3 | 1) + struct.pack("<d", value)
    return keys + varint(5 << 3) + varint(((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF)


def history(items: dict, step: int | None = None) -> bytes:
    """A Record whose `history` (field 2) holds `items` and, when given, HistoryStep{num}."""
    body = b"".join(field(1, item(k, v)) for k, v in items.items())
    if step is not None:
        body += field(2, varint(1 << 3) + varint(step) if step else b"")
    return field(2, body)


def config(items: dict) -> bytes:
    """A Record whose `config` (field 5) updates `items` (value_json text)."""
    return field(5, b"".join(field(1, field(1, k.encode()) + field(16, v.encode())) for k, v in items.items()))


def stats(items: dict, seconds: int) -> bytes:
    """A Record whose `stats` (field 7: a system-metrics sample) holds `items` (StatsItem key 1, value_json 16)
    at Timestamp{seconds}."""
    body = field(2, varint(1 << 3) + varint(seconds))
    body += b"".join(field(3, field(1, k.encode()) + field(16, v.encode())) for k, v in items.items())
    return field(7, body)


def console(text: str) -> bytes:
    """A Record whose `output_raw` (field 13) carries console text (OutputRawRecord.line, field 3)."""
    return field(13, field(3, text.encode()))


def frame(bodies: list[bytes]) -> bytearray:
    """The .wandb file: header `:W&B` 0xBEE1 0, records split into FULL/FIRST/MIDDLE/LAST fragments so that
    none crosses a 32 KiB block, a block tail under 7 bytes zero-padded."""
    out = bytearray(b":W&B" + struct.pack("<HB", 0xBEE1, 0))
    for body in bodies:
        first = True
        while True:
            left = BLOCK - len(out) % BLOCK
            if left < 7:
                out += b"\x00" * left
                continue
            chunk, body = body[:left - 7], body[left - 7:]
            kind = (1 if not body else 2) if first else (4 if not body else 3)
            out += struct.pack("<IHB", zlib.crc32(bytes((kind,)) + chunk), len(chunk), kind) + chunk
            first = False
            if not body:
                break
    return out


def json_number(value: float) -> str:
    """How wandb writes a float into value_json (bare NaN/Infinity tokens)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def write_wandb(path: Path, points: list[tuple[int, float]], key: str = "loss") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(frame([history({"_step": str(step), key: json_number(value)}) for step, value in points])))
    return path


# --------------------------------------------------------------------------------------- MLflow

def write_mlflow_run(meta: Path, metrics: dict[str, str], params: dict[str, str] | None = None) -> Path:
    """A file-store run folder around `meta` (its meta.yaml): metrics/<key> files with the given text."""
    run = meta.parent
    (run / "metrics").mkdir(parents=True, exist_ok=True)
    meta.write_text(f"run_id: {run.name}\nrun_name: hand\nstatus: 3\n")
    for key, text in metrics.items():
        path = run / "metrics" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for key, text in (params or {}).items():
        (run / "params").mkdir(exist_ok=True)
        (run / "params" / key).write_text(text)
    return meta


def mlflow_line(wall_ms: int, value: float, step: int) -> str:
    return f"{wall_ms} {value} {step}\n"  # str(float): nan, inf, -inf, as MLflow writes them


def make_mlflow_db(path: Path, rows, runs=(("r1", "0"),), params=()) -> Path:
    """The tables of MLflow's SQL store that are read; `rows` are (key, value, timestamp, step, run) with
    MLflow's encoding applied here: NaN is value 0 with is_nan 1, ±inf is ±float max."""
    connection = sqlite3.connect(str(path))
    connection.execute("CREATE TABLE runs (run_uuid TEXT, experiment_id TEXT, name TEXT, lifecycle_stage TEXT, "
                       "start_time INTEGER)")
    connection.execute("CREATE TABLE metrics (key TEXT, value FLOAT, timestamp INTEGER, step INTEGER, "
                       "is_nan BOOLEAN, run_uuid TEXT)")
    connection.execute("CREATE TABLE params (key TEXT, value TEXT, run_uuid TEXT)")
    connection.executemany("INSERT INTO runs VALUES (?, ?, 'n', ?, 0)",
                           [(uuid, exp, "deleted" if uuid.startswith("del") else "active") for uuid, exp in runs])

    def encoded(value: float) -> tuple[float, int]:
        if math.isnan(value):
            return 0.0, 1
        return (math.copysign(sys.float_info.max, value) if math.isinf(value) else value), 0

    connection.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)",
                           [(key, *encoded(value)[:1], stamp, step, encoded(value)[1], run)
                            for key, value, stamp, step, run in rows])
    connection.executemany("INSERT INTO params VALUES (?, ?, ?)", params)
    connection.commit()
    connection.close()
    return path
