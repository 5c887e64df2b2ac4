"""Decoding one image file to RGB, safely: odd-but-valid images are converted and counted; broken ones
are refused with a reason, never decoded as partial images; decompression bombs are refused."""
from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
MAX_PIXELS = 178_956_970  # PIL's own bomb limit (2 x MAX_IMAGE_PIXELS default); refuse, never warn

# Partial images must never be used: keep PIL's default of raising on truncated data.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class UndecodableImage(Exception):
    """Raised with a short reason ("empty file", "truncated", ...) for a file that is not a usable image."""


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def decode_rgb(path: str) -> tuple[Image.Image, bool]:
    """The image as 8-bit RGB, and whether it had to be converted (grayscale, CMYK, RGBA, palette,
    16-bit). No EXIF rotation: the references (torchvision, timm) do not apply it either."""
    try:
        if os.path.getsize(path) == 0:
            raise UndecodableImage("empty file")
    except OSError as exc:
        raise UndecodableImage(f"cannot read file ({exc.strerror or exc})") from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS // 2:
                    raise UndecodableImage(f"decompression bomb refused ({width}x{height} pixels)")
                image.load()
                return _to_rgb(image)
    except UndecodableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UndecodableImage("decompression bomb refused") from exc
    except UnidentifiedImageError as exc:
        raise UndecodableImage("not an image (unrecognised format)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        text = str(exc).lower()
        reason = "truncated image" if "truncated" in text or "premature" in text else f"undecodable ({exc})"
        raise UndecodableImage(reason) from exc


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
