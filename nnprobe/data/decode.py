"""Decoding one image file to RGB, safely, for every command (eval, robust and fool read images only
here): odd-but-valid images are converted and counted; broken ones are refused with a reason, never
decoded as partial images; decompression bombs are refused from the header, before decoding; only
regular files are read (a FIFO or /dev/zero named x.jpg would hang or never end)."""
from __future__ import annotations

import contextlib
import os
import warnings

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from nnprobe.io import NotRegularFile, open_regular

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
MAX_PIXELS = 178_956_970  # PIL's own bomb limit (2 x MAX_IMAGE_PIXELS default); refuse, never warn


class UndecodableImage(Exception):
    """Raised with a short reason ("empty file", "truncated", ...) for a file that is not a usable image.

    `kind` lets a caller word its own message: missing, folder, special (FIFO, device, socket),
    unreadable, empty, bomb, unrecognised, truncated, undecodable."""

    def __init__(self, reason: str, kind: str = "undecodable") -> None:
        super().__init__(reason)
        self.kind = kind


@contextlib.contextmanager
def _truncated_images_refused():
    """Partial images must never be used: PIL raises on truncated data for this decode, whatever the
    process (a user's own code) set globally, which is restored afterwards."""
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def decode_rgb(path: str) -> tuple[Image.Image, bool]:
    """The image as 8-bit RGB, and whether it had to be converted (grayscale, CMYK, RGBA, palette,
    16-bit). No EXIF rotation: the references (torchvision, timm) do not apply it either."""
    with _open_image_file(path) as handle:
        return _decode(handle)


def check_header(path: str) -> tuple[int, int]:
    """Width and height from the header alone (no pixels decoded), with every refusal `decode_rgb` makes
    from the header: missing, not a regular file, empty, not an image, decompression bomb."""
    with _open_image_file(path) as handle:
        return _decode(handle, header_only=True)


def _open_image_file(path: str):
    """The open file, if it is a non-empty regular file (never a FIFO or device: see data/files.py)."""
    try:
        handle = open_regular(path)
    except NotRegularFile as exc:
        kind = "folder" if exc.kind == "a folder" else "special"
        raise UndecodableImage(f"{exc.kind}, not an image file", kind) from None
    except FileNotFoundError as exc:
        raise UndecodableImage(f"cannot read file ({exc.strerror or exc})", "missing") from None
    except OSError as exc:
        raise UndecodableImage(f"cannot read file ({exc.strerror or exc})", "unreadable") from None
    if os.fstat(handle.fileno()).st_size == 0:
        handle.close()
        raise UndecodableImage("empty file", "empty")
    return handle


def _decode(handle, header_only: bool = False):
    try:
        with warnings.catch_warnings(), _truncated_images_refused():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(handle) as image:
                width, height = image.size
                if width * height > MAX_PIXELS // 2:
                    raise UndecodableImage(f"decompression bomb refused ({width}x{height} pixels)", "bomb")
                if header_only:
                    return width, height
                image.load()
                return _to_rgb(image)
    except UndecodableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UndecodableImage("decompression bomb refused", "bomb") from exc
    except UnidentifiedImageError as exc:
        raise UndecodableImage("not an image (unrecognised format)", "unrecognised") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        text = str(exc).lower()
        if "truncated" in text or "premature" in text:
            raise UndecodableImage("truncated image", "truncated") from exc
        raise UndecodableImage(f"undecodable ({exc})", "undecodable") from exc


def _to_rgb(image: Image.Image) -> tuple[Image.Image, bool]:
    if image.mode == "RGB":
        return image.copy(), False
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grayscale: PIL's convert("RGB") clips instead of scaling; scale 0..65535 to 0..255.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB"), True
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.rint(values * (255.0 if values.max() <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB"), True
    return image.convert("RGB"), True
