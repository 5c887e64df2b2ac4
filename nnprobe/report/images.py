"""Pictures people look at: the fooling panel (original | perturbation amplified | adversarial)."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nnprobe.io import atomic_write_bytes


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # lossless: JPEG would destroy the perturbation
    return buffer.getvalue()


def amplified(original: np.ndarray, adversarial: np.ndarray) -> tuple[Image.Image, float]:
    """The perturbation on mid-grey, scaled so its largest value spans the range; returns the gain."""
    delta = adversarial.astype(np.int32) - original.astype(np.int32)
    peak = max(int(np.abs(delta).max()), 1)
    gain = 127.0 / peak
    shown = np.clip(np.rint(128 + delta * gain), 0, 255).astype(np.uint8)
    return Image.fromarray(shown, "RGB"), gain


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def panel(original: np.ndarray, adversarial: np.ndarray, captions: tuple[str, str, str]) -> Image.Image:
    """Three HWC uint8 images side by side, each with a caption strip below."""
    height, width = original.shape[:2]
    tiles = [Image.fromarray(original, "RGB"), amplified(original, adversarial)[0],
             Image.fromarray(adversarial, "RGB")]
    gap = max(4, width // 60)
    font_size = max(11, min(24, width // 22))
    font = _font(font_size)
    line = font_size + 4
    strip = 2 * line + gap
    canvas = Image.new("RGB", (3 * width + 4 * gap, height + strip + 2 * gap), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (tile, caption) in enumerate(zip(tiles, captions)):
        left = gap + i * (width + gap)
        canvas.paste(tile, (left, gap))
        for j, text in enumerate(caption.split("\n")[:2]):
            draw.text((left, height + gap + gap // 2 + j * line), _fit(draw, text, font, width), fill="black",
                      font=font)
    return canvas


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


def write_panel(path: str, original: np.ndarray, adversarial: np.ndarray, captions: tuple[str, str, str]) -> None:
    atomic_write_bytes(path, png_bytes(panel(original, adversarial, captions)))
