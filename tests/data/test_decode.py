"""The broken-file corpus: odd-but-valid images are converted and counted; broken ones are refused."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from nnprobe.data.decode import UndecodableImage, decode_rgb


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height (a decompression bomb that never needs decoding)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))


def make_odd_images(folder):
    """Valid images in modes that need conversion: name -> expected RGB of pixel (0, 0)."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("L", (20, 20), 100).save(folder / "gray.png")
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(folder / "cmyk.jpg", quality=100)
    Image.new("RGBA", (20, 20), (10, 20, 30, 128)).save(folder / "rgba.png")
    Image.new("P", (20, 20), 0).save(folder / "palette.gif")
    Image.fromarray(np.full((20, 20), 51400, dtype=np.uint16)).save(folder / "gray16.png")
    return {"gray.png": (100, 100, 100), "cmyk.jpg": (255, 0, 0), "rgba.png": (10, 20, 30),
            "palette.gif": (0, 0, 0), "gray16.png": (200, 200, 200)}


def make_broken_files(folder):
    """Files with image names that are not usable images: name -> reason prefix."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not a picture")
    Image.new("RGB", (64, 64), (1, 2, 3)).save(folder / "full.jpg", quality=90)
    data = (folder / "full.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "full.jpg").unlink()
    _png_header_only(folder / "bomb.png", 30000, 30000)
    return {"empty.jpg": "empty file", "text.jpg": "not an image", "truncated.jpg": "truncated image",
            "bomb.png": "decompression bomb"}


def test_odd_modes_convert_to_rgb(tmp_path):
    for name, expected in make_odd_images(tmp_path).items():
        image, converted = decode_rgb(str(tmp_path / name))
        assert image.mode == "RGB" and converted, name
        got = image.getpixel((0, 0))
        assert max(abs(a - b) for a, b in zip(got, expected)) <= 2, (name, got)


def test_rgb_is_not_counted_as_converted(tmp_path):
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "a.png")
    image, converted = decode_rgb(str(tmp_path / "a.png"))
    assert not converted and image.getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.parametrize("name", ["empty.jpg", "text.jpg", "truncated.jpg", "bomb.png"])
def test_broken_files_are_refused_with_reason(tmp_path, name):
    reasons = make_broken_files(tmp_path)
    with pytest.raises(UndecodableImage) as info:
        decode_rgb(str(tmp_path / name))
    assert str(info.value).startswith(reasons[name])
