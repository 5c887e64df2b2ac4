"""Pictures people look at: the fooling panel (original | perturbation amplified | adversarial), drawn
from a FoolResult after the attack returned: the original through the one decoder every command reads
with, the adversarial PNG as written (the file the result was judged on)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nnprobe.io import atomic_write_bytes, png_bytes

if TYPE_CHECKING:  # nnprobe.attacks imports torch; the report layer never does
    from nnprobe.attacks.results import FoolItem, FoolResult


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


def captions(item: FoolItem, attack: str) -> tuple[str, str, str]:
    """Top-1 and confidence under the original and the adversarial; the gain and L∞ of the perturbation."""
    linf = item.linf * 255  # the 8-bit perturbation's largest step, in grey levels
    return (f"original: {item.original[0].label}\n{item.original[0].confidence:.1%}",
            f"perturbation x{127 / max(int(linf + 0.5), 1):.0f}\nLinf {linf:.0f}/255 ({attack})",
            f"adversarial: {item.adversarial[0].label}\n{item.adversarial[0].confidence:.1%}")


def _pixels(path: str, prepare: Callable[[Image.Image], Image.Image] | None = None) -> np.ndarray:
    from nnprobe.data.decode import decode_rgb

    image = decode_rgb(path)[0]
    return np.asarray(prepare(image) if prepare is not None else image, dtype=np.uint8)


def write_panels(result: FoolResult, resize_crop: Callable[[Image.Image], Image.Image] | None = None) -> None:
    """Write each item's `panel_image`. A model-space item was attacked on the resized, cropped photo:
    `resize_crop` is that step (the model's own, e.g. `pil_resize_crop` with its preprocessing)."""
    originals: dict[tuple[str, str], object] = {}  # a photo swept over several eps is decoded once
    for item in result.items:
        if item.panel_image is None:
            continue
        if item.space == "model" and resize_crop is None:
            raise ValueError("a model-space panel needs the model's resize_crop to show the attacked input")
        key = (item.image, item.space)
        if key not in originals:
            originals[key] = _pixels(item.image, resize_crop if item.space == "model" else None)
        original = originals[key]
        write_panel(item.panel_image, original, _pixels(item.adversarial_image), captions(item, result.settings.attack))
