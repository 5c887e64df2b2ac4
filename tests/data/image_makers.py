"""Hostile but small image files for tests: real decompression bombs (valid PNGs of huge size that
compress to a few KB) and 16-bit grey PNGs."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path: Path, side: int) -> Path:
    """A valid, fully decodable 1-bit black PNG of side x side pixels, compressed row by row (never held
    whole in memory): 10000 x 10000 is about 12 KB on disk and 100 M pixels decoded."""
    row = b"\0" + b"\0" * ((side + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    parts = [packer.compress(row) for _ in range(side)]
    parts.append(packer.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts))
                     + _chunk(b"IEND", b""))
    return path


def gray16_png(path: Path, value: int = 51400, size=(24, 20)) -> Path:
    """A 16-bit grey PNG: 51400 / 65535 scales to grey 200 (PIL's own convert("RGB") would clip to 255)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0]), value, dtype=np.uint16)).save(path)
    return path
