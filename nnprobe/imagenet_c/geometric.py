"""ImageNet-P's geometric sequences, batched on the device, from the canvas around the model's crop.

`make_imagenet_p.py` (hendrycks/robustness) transforms the whole resized image and then takes the centre
crop, so pixels from outside the crop move into it; the sweep hands these operations the canvas of
`data/context.py` (the crop with the pixels around it, and where the whole resized image lies) and they
return the model's crop of each frame:

    translate  41 frames: torchvision affine, translate (i - 20, 0), nearest (the call's default resample)
    rotate     31 frames: affine, angle i - 15 degrees, bilinear
    scale      31 frames: affine, scale (2.5 i + 40) / 100, bilinear
    shear      31 frames: affine, shear i - 15 degrees, bilinear
    tilt       31 frames: cv2.warpPerspective (bilinear, black border) of the 3-D rotation by i - 15 degrees
               about both axes, focal length the image's diagonal

The affine ones follow torchvision 0.2, the version the generation code called (`resample=` keyword): the
centre at (w / 2 + 0.5, h / 2 + 0.5) and the inverse of [[cos a, -sin(a + s)], [sin a, cos(a + s)]] / scale
(torchvision >= 0.5 changed both the centre and the shear), sampled as PIL's Image.transform does: pixel
centres at +0.5, black outside the image, edge pixels repeated inside it, bilinear values truncated to 8 bits.
Tilt samples as OpenCV 5 does: at the exact source point (OpenCV 3 and 4 rounded it to 1/32 pixel, a few grey
levels apart on sharp edges), black beyond the image, rounded to 8 bits.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

GEOMETRIC = ("translate", "rotate", "tilt", "scale", "shear")
FRAME_COUNTS = {"translate": 41}  # the others 31


def frame_count(name: str) -> int:
    return FRAME_COUNTS.get(name, 31)


def inverse_affine(center: Sequence[float], angle: float, translate: Sequence[float], scale: float,
                   shear: float) -> list[float]:
    """torchvision 0.2's _get_inverse_affine_matrix: output pixel -> input point, PIL's 6 coefficients."""
    angle, shear, scale = math.radians(angle), math.radians(shear), 1.0 / scale
    d = math.cos(angle + shear) * math.cos(angle) + math.sin(angle + shear) * math.sin(angle)
    matrix = [math.cos(angle + shear), math.sin(angle + shear), 0, -math.sin(angle), math.cos(angle), 0]
    matrix = [scale / d * m for m in matrix]
    matrix[2] += matrix[0] * (-center[0] - translate[0]) + matrix[1] * (-center[1] - translate[1])
    matrix[5] += matrix[3] * (-center[0] - translate[0]) + matrix[4] * (-center[1] - translate[1])
    matrix[2] += center[0]
    matrix[5] += center[1]
    return matrix


def affine_arguments(name: str, i: int) -> tuple[float, tuple[float, float], float, float]:
    """(angle, translate, scale, shear) of frame i, as make_imagenet_p.py passes them."""
    if name == "translate":
        return 0.0, (i - 20, 0), 1.0, 0.0
    if name == "rotate":
        return float(i - 15), (0, 0), 1.0, 0.0
    if name == "scale":
        return 0.0, (0, 0), (i * 2.5 + 40) / 100., 0.0
    if name == "shear":
        return 0.0, (0, 0), 1.0, float(i - 15)
    raise KeyError(name)


def tilt_matrix(width: int, height: int, i: int) -> np.ndarray:
    """The generation code's forward homography of frame i for a width x height image."""
    phi = theta = np.deg2rad(i - 15)
    w, h = width, height
    f = np.sqrt(w ** 2 + h ** 2)
    p1 = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1], [0, 0, 1]])
    rx = np.array([[1, 0, 0, 0], [0, np.cos(theta), -np.sin(theta), 0], [0, np.sin(theta), np.cos(theta), 0],
                   [0, 0, 0, 1]])
    ry = np.array([[np.cos(phi), 0, -np.sin(phi), 0], [0, 1, 0, 0], [np.sin(phi), 0, np.cos(phi), 0], [0, 0, 0, 1]])
    t = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]])
    p2 = np.array([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0]])
    return p2 @ t @ rx @ ry @ p1


def _output_grid(boxes: torch.Tensor, crop: int, margin: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-image pixel indices (float64, B x crop x crop) of the crop's pixels: canvas index - image origin."""
    steps = torch.arange(crop, dtype=torch.float64, device=boxes.device) + margin
    ys = steps[None, :, None] - boxes[:, 0, None, None].double()
    xs = steps[None, None, :] - boxes[:, 1, None, None].double()
    return xs.expand(-1, crop, crop), ys.expand(-1, crop, crop)


def _gather(canvas: torch.Tensor, boxes: torch.Tensor, xi: torch.Tensor, yi: torch.Tensor,
            inside_image: torch.Tensor) -> torch.Tensor:
    """Canvas values (float64, B x C x crop x crop) at full-image pixel indices; 0 outside the image."""
    b, c, size, _ = canvas.shape
    cy, cx = yi + boxes[:, 0, None, None], xi + boxes[:, 1, None, None]
    in_canvas = (cx >= 0) & (cx < size) & (cy >= 0) & (cy < size)
    if bool((inside_image & ~in_canvas).any()):
        raise RuntimeError("a geometric perturbation needs image pixels beyond its canvas (the margin is too small)")
    keep = inside_image & in_canvas
    flat = (cy.clamp(0, size - 1) * size + cx.clamp(0, size - 1)).reshape(b, 1, -1).expand(b, c, -1)
    values = canvas.reshape(b, c, -1).gather(2, flat).reshape(b, c, *xi.shape[1:]).double()
    return values * keep[:, None]


def pil_affine(canvas: torch.Tensor, boxes: torch.Tensor, crop: int, coefficients: torch.Tensor,
               nearest: bool) -> torch.Tensor:
    """The model's crop of PIL's Image.transform(AFFINE) of each whole image: coefficients (B, 6) map
    output pixel centres to input points in full-image coordinates. Values 0..255 (float64) on 8 bits."""
    margin = (canvas.shape[-1] - crop) // 2
    xs, ys = _output_grid(boxes, crop, margin)
    a = coefficients.double()[:, :, None, None]
    xin = a[:, 0] * (xs + 0.5) + a[:, 1] * (ys + 0.5) + a[:, 2]
    yin = a[:, 3] * (xs + 0.5) + a[:, 4] * (ys + 0.5) + a[:, 5]
    h, w = boxes[:, 2, None, None], boxes[:, 3, None, None]
    inside = (xin >= 0) & (xin < w) & (yin >= 0) & (yin < h)
    if nearest:
        xi, yi = xin.floor().long(), yin.floor().long()
        return _gather(canvas, boxes, xi.clamp(min=-1), yi.clamp(min=-1), inside)
    xin, yin = xin - 0.5, yin - 0.5
    x, y = xin.floor(), yin.floor()
    dx, dy = (xin - x)[:, None], (yin - y)[:, None]
    x0, x1 = x.long().clamp(0, None), (x.long() + 1)
    x0, x1 = torch.minimum(x0, w - 1), torch.minimum(x1.clamp(0, None), w - 1)
    y0, y1 = torch.minimum(y.long().clamp(0, None), h - 1), torch.minimum((y.long() + 1).clamp(0, None), h - 1)
    top = _lerp(_gather(canvas, boxes, x0, y0, inside), _gather(canvas, boxes, x1, y0, inside), dx)
    bottom = _lerp(_gather(canvas, boxes, x0, y1, inside), _gather(canvas, boxes, x1, y1, inside), dx)
    return _lerp(top, bottom, dy).floor()  # PIL's (UINT8) cast


def _lerp(a: torch.Tensor, b: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    return a + (b - a) * d  # PIL's BILINEAR(v, a, b, d), in the same order


def cv2_perspective(canvas: torch.Tensor, boxes: torch.Tensor, crop: int, inverse: torch.Tensor) -> torch.Tensor:
    """The model's crop of cv2.warpPerspective(image, M, (w, h)) (bilinear, constant 0 border) of each whole
    image: inverse (B, 3, 3) = M^-1 maps output pixels to input pixels. Values 0..255 (float64)."""
    margin = (canvas.shape[-1] - crop) // 2
    xs, ys = _output_grid(boxes, crop, margin)
    m = inverse.double()[:, :, :, None, None]
    depth = m[:, 2, 0] * xs + m[:, 2, 1] * ys + m[:, 2, 2]
    depth = torch.where(depth != 0, 1 / depth, torch.zeros_like(depth))
    sx = (m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]) * depth
    sy = (m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]) * depth
    x0, y0 = sx.floor(), sy.floor()
    fx, fy = (sx - x0)[:, None], (sy - y0)[:, None]
    x0, y0 = x0.clamp(-2, 1 << 30).long(), y0.clamp(-2, 1 << 30).long()
    h, w = boxes[:, 2, None, None], boxes[:, 3, None, None]

    def at(xi, yi):
        return _gather(canvas, boxes, xi, yi, (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h))

    value = ((at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx) * (1 - fy)
             + (at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx) * fy)
    return torch.floor(value + 0.5)


def geometric_frame(canvas: torch.Tensor, boxes: torch.Tensor, crop: int, name: str, i: int) -> torch.Tensor:
    """Frame i of `name` for each canvas (uint8 B x 3 x N x N on the device), as float [0, 1] at the crop."""
    sizes = boxes[:, 2:].tolist()
    if name == "tilt":
        inverse = torch.tensor(np.stack([np.linalg.inv(tilt_matrix(w, h, i)) for h, w in sizes]),
                               dtype=torch.float64, device=canvas.device)
        return (cv2_perspective(canvas, boxes, crop, inverse) / 255).float()
    angle, translate, scale, shear = affine_arguments(name, i)
    coefficients = torch.tensor([inverse_affine((w * 0.5 + 0.5, h * 0.5 + 0.5), angle, translate, scale, shear)
                                 for h, w in sizes], dtype=torch.float64, device=canvas.device)
    return (pil_affine(canvas, boxes, crop, coefficients, nearest=name == "translate") / 255).float()


def geometric_frames(canvas: torch.Tensor, boxes: torch.Tensor, crop: int, name: str) -> Iterator[torch.Tensor]:
    for i in range(frame_count(name)):
        yield geometric_frame(canvas, boxes, crop, name, i)


def reach(name: str, crop: int, side: int) -> float:
    """How far (pixels, from the crop's centre) the frames of `name` read on a side x side image."""
    corners = [(x, y) for x in (0, crop - 1) for y in (0, crop - 1)]
    offset = (side - crop) / 2
    far = 0.0
    for i in range(frame_count(name)):
        if name == "tilt":
            inverse = np.linalg.inv(tilt_matrix(side, side, i))
            for x, y in corners:
                p = inverse @ np.array([x + offset, y + offset, 1.0])
                far = max(far, abs(p[0] / p[2] - side / 2), abs(p[1] / p[2] - side / 2))
            continue
        angle, translate, scale, shear = affine_arguments(name, i)
        a = inverse_affine((side * 0.5 + 0.5, side * 0.5 + 0.5), angle, translate, scale, shear)
        for x, y in corners:
            px, py = x + offset + 0.5, y + offset + 0.5
            far = max(far, abs(a[0] * px + a[1] * py + a[2] - side / 2), abs(a[3] * px + a[4] * py + a[5] - side / 2))
    return far


def canvas_size(names: Sequence[str], crop: int, resize: int | None) -> int:
    """The canvas side that holds every pixel the geometric `names` read (0 when none is asked for): the
    farthest point on the smallest image the preprocessing makes (short side `resize`), plus 2 pixels."""
    moving = [n for n in names if n in GEOMETRIC]
    if not moving:
        return 0
    side = max(crop, resize or crop)
    far = max(reach(n, crop, side) for n in moving)
    return crop + 2 * max(0, math.ceil(far - crop / 2) + 2)
