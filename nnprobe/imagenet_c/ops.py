"""The 15 ImageNet-C corruptions (Hendrycks & Dietterich 2019) as batched torch ops on any device.

Every op takes float pixels in [0, 1], NCHW, a severity 1..5 and one `torch.Generator` per sample, and
returns float pixels in [0, 1]. The parameter tables and the arithmetic are ported line by line from the
`imagecorruptions` package 1.1.2 (`corruptions.py`), which reproduces the paper's code; each sample draws
its randomness from its own generator, so an image's corruption does not depend on its batch or rank.
The ops whose randomness is a few numbers or fields also exist as `*_from` functions taking those draws,
so tests feed them numpy's draws and compare with the reference pixel for pixel.

Glass blur's reference "swaps" pixels in a per-pixel Python loop in reverse raster order (a tuple swap of
numpy views, which copies rather than swaps); `local_shuffle` does that very sequence in vectorised
wavefronts of independent steps, so given the same offsets its output equals the loop's.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

Gens = Sequence[torch.Generator]
FROST_DIR = Path(__file__).with_name("frost")
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")


# ---------------------------------------------------------------- helpers: draws, filters, resampling

def _draw(gens: Gens, make: Callable[[torch.Generator], torch.Tensor]) -> torch.Tensor:
    """One draw per sample from its own generator, stacked (batch-independent by construction)."""
    return torch.stack([make(g) for g in gens])


def _rand(gens: Gens, shape, device, dtype=torch.float32) -> torch.Tensor:
    return _draw(gens, lambda g: torch.rand(shape, generator=g, device=device, dtype=dtype))


def _scalars(gens: Gens, low: float, high: float) -> list[float]:
    """One uniform float per sample in [low, high), as numpy's `uniform` maps its [0, 1) draw."""
    return [low + (high - low) * float(torch.rand((), generator=g, device=g.device, dtype=torch.float64))
            for g in gens]


def _fold(idx: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """Out-of-range indices mapped as scipy.ndimage's boundary `mode` (nearest, reflect, mirror)."""
    if mode == "nearest":
        return idx.clamp(0, n - 1)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * n if mode == "reflect" else 2 * n - 2
    idx = idx.remainder(period)
    return torch.where(idx >= n, period - 1 - idx if mode == "reflect" else period - idx, idx)


def _pad(x: torch.Tensor, dim: int, r: int, mode: str) -> torch.Tensor:
    n = x.shape[dim]
    return x.index_select(dim, _fold(torch.arange(-r, n + r, device=x.device), n, mode))


def _correlate(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """2D correlation of every channel of NCHW `x` with `kernel` (kh, kw), padded by `mode`: a 1-D kernel
    as a weighted sum of shifted views, a 2-D one through the FFT (single-channel conv2d is slow on CPUs)."""
    h, w = x.shape[-2:]
    kh, kw = kernel.shape
    x = _pad(_pad(x, 2, kh // 2, mode), 3, kw // 2, mode)
    kernel = kernel.to(x.device, x.dtype)
    if kh == 1 or kw == 1:
        out = torch.zeros(*x.shape[:2], h, w, device=x.device, dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                out += kernel[i, j] * x[..., i:i + h, j:j + w]
        return out
    size = x.shape[-2:]
    padded = torch.zeros(size, device=x.device, dtype=x.dtype)
    padded[:kh, :kw] = kernel.flip(0, 1)
    full = torch.fft.irfft2(torch.fft.rfft2(x) * torch.fft.rfft2(padded), s=size)
    return full[..., kh - 1:, kw - 1:]


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter1d's weights."""
    radius = int(truncate * float(sigma) + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    phi = torch.exp(-0.5 / (sigma * sigma) * t * t)
    return phi / phi.sum()


def gaussian_filter(x: torch.Tensor, sigma, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """skimage.filters.gaussian over H and W of NCHW `x` (separable, scipy's boundary modes)."""
    sh, sw = (sigma, sigma) if np.isscalar(sigma) else sigma
    x = _correlate(x, gaussian_kernel1d(sh, truncate)[:, None], mode)
    return _correlate(x, gaussian_kernel1d(sw, truncate)[None, :], mode)


def _linear_axis(x: torch.Tensor, dim: int, out_n: int, keep: int) -> torch.Tensor:
    """scipy.ndimage.zoom(order=1) along `dim` to `out_n` samples, first `keep` of them."""
    in_n = x.shape[dim]
    pos = torch.arange(keep, dtype=torch.float64) * ((in_n - 1) / (out_n - 1) if out_n > 1 else 0.0)
    i0 = pos.floor().long().clamp(0, in_n - 1)
    i1 = (i0 + 1).clamp(max=in_n - 1)
    shape = [1] * x.dim()
    shape[dim] = keep
    weight = (pos - i0).to(x).to(x.device).reshape(shape)
    dev = x.device
    return x.index_select(dim, i0.to(dev)) * (1 - weight) + x.index_select(dim, i1.to(dev)) * weight


def clipped_zoom(x: torch.Tensor, factor: float, cut: bool = True) -> torch.Tensor:
    """The reference's `clipped_zoom`: centre crop of 1/factor, zoomed back (linear), cut to H x W (or,
    `cut=False`, whole: round(ceil(H / factor) * factor) may exceed H, and snow blurs that whole layer)."""
    h, w = x.shape[-2:]
    ch, cw = int(math.ceil(h / float(factor))), int(math.ceil(w / float(factor)))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top:top + ch, left:left + cw]
    out_h, out_w = int(round(ch * factor)), int(round(cw * factor))
    # scipy's zoom (grid_mode=False) maps output i to input i * (in - 1) / (out - 1): align_corners=True
    zoomed = F.interpolate(crop, size=(out_h, out_w), mode="bilinear", align_corners=True)
    return zoomed[..., :h, :w] if cut else zoomed


def quantize(x: torch.Tensor) -> torch.Tensor:
    """The reference's final `np.uint8(...)` (truncation) onto the 8-bit grid; the 1e-4 keeps values that
    are already k/255 exactly where they are despite float rounding."""
    return torch.floor(x.clamp(0, 1) * 255 + 1e-4) / 255


# ---------------------------------------------------------------- noise

def gaussian_noise(x, severity, gens):
    c = [.08, .12, 0.18, 0.26, 0.38][severity - 1]
    noise = _draw(gens, lambda g: torch.randn(x.shape[1:], generator=g, device=x.device, dtype=x.dtype))
    return (x + noise * c).clamp(0, 1)


def shot_noise(x, severity, gens):
    c = [60, 25, 12, 5, 3][severity - 1]
    counts = torch.stack([torch.poisson(img * c, generator=g) for img, g in zip(x, gens)])
    return (counts / c).clamp(0, 1)


def impulse_noise(x, severity, gens):
    """skimage `random_noise(mode='s&p')`: each value flipped with probability c, to 1 or 0 evenly."""
    c = [.03, .06, .09, 0.17, 0.27][severity - 1]
    u = _rand(gens, (2, *x.shape[1:]), x.device)
    flipped, salt = u[:, 0] < c, u[:, 1] < 0.5
    return torch.where(flipped, salt.to(x.dtype), x)


# ---------------------------------------------------------------- blur

@functools.lru_cache(maxsize=None)
def disk_kernel(radius: int, alias_blur: float) -> torch.Tensor:
    """The reference's `disk`: an aliased disk smoothed by cv2.GaussianBlur (3x3 or 5x5, reflect-101)."""
    span = 8 if radius <= 8 else radius
    ksize = 3 if radius <= 8 else 5
    t = torch.arange(-span, span + 1, dtype=torch.float64)
    aliased = ((t[None, :] ** 2 + t[:, None] ** 2) <= radius ** 2).float()
    aliased = (aliased / aliased.sum()).double()
    g = torch.exp(-((torch.arange(ksize, dtype=torch.float64) - ksize // 2) ** 2) / (2 * alias_blur ** 2))
    g = g / g.sum()
    out = _correlate(_correlate(aliased[None, None], g[:, None], "mirror"), g[None, :], "mirror")
    return out[0, 0].float()


def defocus_blur(x, severity, gens=None):
    radius, alias = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)][severity - 1]
    return _correlate(x, disk_kernel(radius, alias), "mirror").clamp(0, 1)


def glass_blur(x, severity, gens):
    sigma, delta, iterations = [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)][severity - 1]
    h, w = x.shape[-2:]
    y = torch.floor(gaussian_filter(x, sigma) * 255) / 255  # the reference's np.uint8(... * 255)
    for _ in range(iterations):
        offsets = _draw(gens, lambda g: torch.randint(-delta, delta, (2, h, w), generator=g, device=x.device))
        y = local_shuffle(y, delta, offsets)
    return gaussian_filter(y, sigma).clamp(0, 1)


def local_shuffle(x: torch.Tensor, delta: int, offsets: torch.Tensor) -> torch.Tensor:
    """The reference's "swap" loop, exactly: for h = H-d .. d+1, w = W-d .. d+1 (reverse raster order)
    `x[h, w], x[h', w'] = x[h', w'], x[h, w]` with (h', w') = (h + dy, w + dx). On numpy views that tuple
    assignment copies (x[h, w] <- x[h', w'], and x[h', w'] gets its own value back), so pixels are copied
    from up to d away, not swapped, and a copy can travel on; reproduced as such. offsets: (B, 2, H, W),
    (dx, dy) in [-d, d) per position.

    Each step reads within [-d, d) of its position and writes its position, so it depends only on steps
    less than 2d away; in wavefronts t = (H-d-h) * 2d + (W-d-w) each such earlier step has a smaller t and
    the steps of one wavefront touch disjoint pixels: one gather/scatter per wavefront gives the loop's
    result."""
    b, c, h, w = x.shape
    here, counts = _wavefronts(h, w, delta, str(x.device))
    if not counts:
        return x
    rr, cc = here // w, here % w
    there = (here + offsets[:, 1, rr, cc] * w + offsets[:, 0, rr, cc]).split(counts, dim=1)
    source = torch.arange(h * w, device=x.device).repeat(b, 1)  # which original pixel sits where
    for near, far in zip(here.expand(b, -1).split(counts, dim=1), there):
        source.scatter_(1, near, source.gather(1, far))
    return x.reshape(b, c, h * w).gather(2, source[:, None].expand(b, c, -1)).reshape(b, c, h, w)


@functools.lru_cache(maxsize=16)
def _wavefronts(h: int, w: int, delta: int, device: str) -> tuple[torch.Tensor, list[int]]:
    """Flat positions of the swap loop in wavefront order, and each wavefront's size (see `local_shuffle`)."""
    rows = torch.arange(h - delta, delta, -1)
    cols = torch.arange(w - delta, delta, -1)
    if not rows.numel() or not cols.numel():
        return torch.zeros(0, dtype=torch.long), []
    rr, cc = (t.flatten() for t in torch.meshgrid(rows, cols, indexing="ij"))
    t = (h - delta - rr) * 2 * delta + (w - delta - cc)
    order = torch.argsort(t, stable=True)
    counts = torch.unique_consecutive(t[order], return_counts=True)[1].tolist()
    return (rr[order] * w + cc[order]).to(device), counts


def motion_kernel(radius: int, sigma: float) -> np.ndarray:
    width = radius * 2 + 1
    k = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
    return k / k.sum()


def motion_blur_at(x: torch.Tensor, radius: int, sigma: float, angles: Sequence[float]) -> torch.Tensor:
    """The reference's `_motion_blur` with one angle (degrees) per sample: a weighted sum of copies
    shifted along the angle, edges replicated; a shift past the border ends the sum, as there."""
    b, c, h, w = x.shape
    kernel = motion_kernel(radius, sigma)
    shifts: list[list[tuple[float, int, int]]] = []
    for angle in angles:
        py, px = len(kernel) * np.sin(np.deg2rad(angle)), len(kernel) * np.cos(np.deg2rad(angle))
        hyp = math.hypot(py, px)
        shifts.append([])
        for i, weight in enumerate(kernel):
            dy, dx = -math.ceil((i * py) / hyp - 0.5), -math.ceil((i * px) / hyp - 0.5)
            if abs(dy) >= h or abs(dx) >= w:
                break
            shifts[-1].append((float(weight), dy, dx))
    reach = max([abs(d) for sample in shifts for _, dy, dx in sample for d in (dy, dx)] + [0])
    padded = F.pad(x, (reach,) * 4, mode="replicate") if reach else x  # shifted[h] = x[clamp(h - dy)]
    out = torch.zeros_like(x)
    for n, sample in enumerate(shifts):
        for weight, dy, dx in sample:
            out[n] += weight * padded[n, :, reach - dy:reach - dy + h, reach - dx:reach - dx + w]
    return out


def motion_blur(x, severity, gens):
    radius, sigma = [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)][severity - 1]
    return motion_blur_at(x, radius, sigma, _scalars(gens, -45, 45)).clamp(0, 1)


ZOOMS = (np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
         np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03))


def zoom_blur(x, severity, gens=None):
    factors = ZOOMS[severity - 1]
    out = torch.zeros_like(x)
    for factor in factors:
        out += clipped_zoom(x, float(factor))
    return ((x + out) / (len(factors) + 1)).clamp(0, 1)


# ---------------------------------------------------------------- weather

SNOW = [(0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)]


def snow_from(x: torch.Tensor, severity: int, layer: torch.Tensor, angles: Sequence[float]) -> torch.Tensor:
    """Snow given its draws: `layer` (B, H, W) normal(c0, c1) and one motion angle per sample."""
    c = SNOW[severity - 1]
    h, w = x.shape[-2:]
    flakes = clipped_zoom(layer[:, None].to(x.device, torch.float64), c[2], cut=False)  # float64 as numpy
    flakes = torch.where(flakes < c[3], torch.zeros_like(flakes), flakes).clamp(0, 1)
    flakes = motion_blur_at(flakes, c[4], c[5], angles)[..., :h, :w]
    flakes = (torch.round(flakes * 255) / 255).to(x.dtype)
    grey = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    x = c[6] * x + (1 - c[6]) * torch.maximum(x, grey * 1.5 + 0.5)
    return (x + flakes + flakes.flip(-1, -2)).clamp(0, 1)


def snow(x, severity, gens):
    c = SNOW[severity - 1]
    layer = _draw(gens, lambda g: torch.randn(x.shape[-2:], generator=g, device=x.device, dtype=torch.float64))
    layer = layer * c[1] + c[0]
    return snow_from(x, severity, layer, _scalars(gens, -135, -45))


FROST = [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)]


@functools.lru_cache(maxsize=32)
def frost_overlay(index: int, height: int, width: int) -> torch.Tensor:
    """Frost image `index` (0..4) rescaled as the reference does for an H x W image (cv2 INTER_CUBIC,
    a = -0.75, as torch's bicubic), uint8 RGB CHW on the CPU."""
    from PIL import Image

    with Image.open(FROST_DIR / FROST_FILES[index]) as im:
        frost = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).contiguous()
    fh, fw = frost.shape[1:]
    scale = 1.0
    if fh < height and fw >= width:
        scale = height / fh
    elif fh >= height and fw < width:
        scale = width / fw
    elif fh < height and fw < width:
        scale = max(height / fh, width / fw)
    scale *= 1.1
    size = (int(np.ceil(fh * scale)), int(np.ceil(fw * scale)))
    resized = F.interpolate(frost[None].double(), size=size, mode="bicubic", align_corners=False)
    return resized[0].round().clamp(0, 255).to(torch.uint8)


def frost_from(x: torch.Tensor, severity: int, picks: Sequence[tuple[int, int, int]]) -> torch.Tensor:
    """Frost given its draws: per sample (image index 0..4, top, left) of the crop of the rescaled overlay."""
    a, b = FROST[severity - 1]
    h, w = x.shape[-2:]
    crops = [frost_overlay(i, h, w)[:, top:top + h, left:left + w] for i, top, left in picks]
    overlay = torch.stack(crops).to(x.device, x.dtype)
    return ((a * x * 255 + b * overlay).clamp(0, 255) / 255)


def frost(x, severity, gens):
    h, w = x.shape[-2:]
    picks = []
    for g in gens:
        index = int(torch.randint(5, (), generator=g, device=g.device))
        fh, fw = frost_overlay(index, h, w).shape[1:]
        top = int(torch.randint(fh - h, (), generator=g, device=g.device))
        picks.append((index, top, int(torch.randint(fw - w, (), generator=g, device=g.device))))
    return frost_from(x, severity, picks)


def plasma_fractal(batch: int, mapsize: int, wibbledecay: float,
                   uniform: Callable[[tuple], torch.Tensor]) -> torch.Tensor:
    """The reference's diamond-square heightmap, for `batch` maps at once; `uniform(shape)` gives (batch,
    *shape) float64 draws in [0, 1), used as numpy's `uniform(-wibble, wibble)` uses its own."""
    grid = torch.zeros(batch, mapsize, mapsize, dtype=torch.float64)
    step, wibble = mapsize, 100.0

    def wibbled(a):
        return a / 4 + wibble * (-wibble + 2 * wibble * uniform(tuple(a.shape[1:])).to(a))

    while step >= 2:
        half = step // 2
        corner = grid[:, 0::step, 0::step]
        acc = corner + corner.roll(-1, 1)
        acc = acc + acc.roll(-1, 2)
        grid[:, half::step, half::step] = wibbled(acc)
        dr, ul = grid[:, half::step, half::step], grid[:, 0::step, 0::step]
        grid[:, 0::step, half::step] = wibbled(dr + dr.roll(1, 1) + ul + ul.roll(-1, 2))
        grid[:, half::step, 0::step] = wibbled(dr + dr.roll(1, 2) + ul + ul.roll(-1, 1))
        step //= 2
        wibble /= wibbledecay
    grid = grid - grid.amin(dim=(1, 2), keepdim=True)
    return grid / grid.amax(dim=(1, 2), keepdim=True)


FOG = [(1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4)]


def fog_from(x: torch.Tensor, severity: int, plasma: torch.Tensor) -> torch.Tensor:
    """Fog given its heightmaps (B, M, M), M >= H, W."""
    strength = FOG[severity - 1][0]
    h, w = x.shape[-2:]
    top = x.amax(dim=(1, 2, 3), keepdim=True)
    x = x + strength * plasma[:, None, :h, :w].to(x.device, x.dtype)
    return (x * top / (top + strength)).clamp(0, 1)


def fog(x, severity, gens):
    size = 1 << (max(x.shape[-2:]) - 1).bit_length()
    maps = plasma_fractal(len(gens), size, FOG[severity - 1][1],
                          lambda shape: _rand(gens, shape, x.device, torch.float64).cpu())
    return fog_from(x, severity, maps)


def brightness(x, severity, gens=None):
    """HSV value + c (skimage rgb2hsv/hsv2rgb): with hue and saturation kept, every channel scales by
    v'/v (and a black pixel becomes grey v')."""
    c = [.1, .2, .3, .4, .5][severity - 1]
    v = x.amax(dim=1, keepdim=True)
    bright = (v + c).clamp(0, 1)
    return torch.where(v > 0, x * bright / v.clamp_min(1e-12), bright.expand_as(x)).clamp(0, 1)


# ---------------------------------------------------------------- digital

def contrast(x, severity, gens=None):
    c = [0.4, .3, .2, .1, .05][severity - 1]
    means = x.mean(dim=(2, 3), keepdim=True)
    return ((x - means) * c + means).clamp(0, 1)


def elastic_from(x: torch.Tensor, severity: int, ux: torch.Tensor, uy: torch.Tensor) -> torch.Tensor:
    """Elastic transform given its draws: ux, uy (B, H, W) in [0, 1) (numpy's uniform draws)."""
    alpha = [250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12][severity - 1]
    b, c, h, w = x.shape
    bound = h * 0.005
    sigma = (h * 0.01, w * 0.01)
    fields = torch.stack([ux, uy], dim=1).to(x.device, torch.float64) * (2 * bound) - bound
    fields = (gaussian_filter(fields, sigma, mode="reflect", truncate=3) * alpha).float().double()
    ys = torch.arange(h, device=x.device, dtype=torch.float64)[:, None] + fields[:, 1]
    xs = torch.arange(w, device=x.device, dtype=torch.float64)[None, :] + fields[:, 0]
    return _bilinear_reflect(x, ys, xs).clamp(0, 1)


def _bilinear_reflect(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """map_coordinates(order=1, mode='reflect') per channel at (B, H, W) coordinates."""
    b, c, h, w = x.shape
    y0, x0 = ys.floor(), xs.floor()
    wy, wx = (ys - y0).to(x.dtype)[:, None], (xs - x0).to(x.dtype)[:, None]
    y0, x0 = y0.long(), x0.long()
    flat = x.reshape(b, c, h * w)

    def at(yy, xx):
        index = (_fold(yy, h, "reflect") * w + _fold(xx, w, "reflect")).reshape(b, 1, h * w).expand(b, c, -1)
        return flat.gather(2, index).reshape(b, c, h, w)

    top = at(y0, x0) * (1 - wx) + at(y0, x0 + 1) * wx
    bottom = at(y0 + 1, x0) * (1 - wx) + at(y0 + 1, x0 + 1) * wx
    return top * (1 - wy) + bottom * wy


def elastic_transform(x, severity, gens):
    u = _rand(gens, (2, *x.shape[-2:]), x.device, torch.float64)
    return elastic_from(x, severity, u[:, 0], u[:, 1])


def _box_weights(in_n: int, out_n: int) -> torch.Tensor:
    """Pillow's BOX resampling coefficients (Resample.c precompute_coeffs), (out_n, in_n)."""
    scale = in_n / out_n
    support = 0.5 * max(scale, 1.0)
    m = torch.zeros(out_n, in_n, dtype=torch.float64)
    for xx in range(out_n):
        center = (xx + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_n)
        for i in range(lo, hi):
            t = (i - center + 0.5) / max(scale, 1.0)
            m[xx, i] = 1.0 if -0.5 < t <= 0.5 else 0.0
        m[xx] /= m[xx].sum()
    return m


def _nearest_index(in_n: int, out_n: int) -> torch.Tensor:
    """Pillow's NEAREST resize (ImagingScaleAffine): source = int of an accumulated (x + 0.5) * scale."""
    scale, pos, index = in_n / out_n, in_n / out_n * 0.5, []
    for _ in range(out_n):
        index.append(min(int(pos), in_n - 1))
        pos += scale
    return torch.tensor(index)


def pixelate(x, severity, gens=None):
    """PIL BOX down to int(side * c) (horizontal pass first, each rounded to 8 bits), NEAREST back up."""
    c = [0.6, 0.5, 0.4, 0.3, 0.25][severity - 1]
    h, w = x.shape[-2:]
    sh, sw = int(h * c), int(w * c)
    v = torch.round(x * 255).double()
    v = torch.floor(torch.einsum("bchw,vw->bchv", v, _box_weights(w, sw).to(x.device)) + 0.5)
    v = torch.floor(torch.einsum("bchw,uh->bcuw", v, _box_weights(h, sh).to(x.device)) + 0.5)
    v = v.index_select(2, _nearest_index(sh, h).to(x.device)).index_select(3, _nearest_index(sw, w).to(x.device))
    return (v / 255).to(x.dtype)


def jpeg_compression(x, severity, gens=None):
    """JPEG at quality c of the 8-bit image (torchvision's libjpeg; on CUDA nvjpeg where available)."""
    from torchvision.io import decode_jpeg, encode_jpeg

    import warnings

    quality = [25, 18, 15, 10, 7][severity - 1]
    images = list(torch.round(x.clamp(0, 1) * 255).to(torch.uint8))
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its codecs for TorchCodec: swap here
        warnings.simplefilter("ignore", DeprecationWarning)
        try:  # the encoded bytes are read from the CPU; on CUDA the decode runs on the device
            decoded = decode_jpeg([e.cpu() for e in encode_jpeg(images, quality=quality)], device=x.device)
        except (RuntimeError, ValueError, TypeError):  # no device codec: the CPU's
            decoded = decode_jpeg(encode_jpeg([i.cpu() for i in images], quality=quality))
    return torch.stack(decoded).to(x.device, x.dtype) / 255
