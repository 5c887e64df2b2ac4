"""ImageNet-C-bar's shaped corruptions: caustic refraction, sparkles, inverse sparkles, Perlin noise and the
checkerboard cutout (see `cbar.py` for the conventions: float64 arithmetic on the reference's 0..255 values,
`*_from` functions taking the random parameters, samplers drawing them from each sample's generator)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nnprobe.imagenet_c.cbar import (LEVELS, LUMA, _col, _finish, _grid, _pixels, _randint, _randn, _u,
                                     param, side)

MAX_RAYS = 200  # the reference draws ray counts with randint(50, 200)


# ---------------------------------------------------------------- caustic refraction

def caustics(n: int, time: torch.Tensor, size: torch.Tensor, device) -> torch.Tensor:
    """The reference's caustic_noise_kernel at every (y, x): (B, n, n) float64 in [0, 1]."""
    ys, xs = _grid(n, device)
    p0 = torch.remainder(ys / _col(size), 1) * 6.28318530718 - 250
    p1 = torch.remainder(xs / _col(size), 1) * 6.28318530718 - 250
    p0, p1 = p0.expand(-1, n, n), p1.expand(-1, n, n)
    i0, i1, c = p0, p1, 1.0
    inten = 0.005
    for k in range(5):
        t = _col(time) * (1.0 - (3.5 / (k + 1)))
        i0, i1 = p0 + torch.cos(t - i0) + torch.sin(t + i1), p1 + torch.sin(t - i1) + torch.cos(t + i0)
        length = torch.sqrt((p0 / (torch.sin(i0 + t) / inten)) ** 2 + (p1 / (torch.cos(i1 + t) / inten)) ** 2)
        c = c + 1.0 / length
    c = 1.17 - (c / 5.0) ** 1.4
    return (c.abs() ** 8.0).clamp(0, 1)


def _bilinear_zero(image: torch.Tensor, py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """utils.image.bilinear_interpolation at (py, px) per pixel: corners outside the image count as 0."""
    b, c, h, w = image.shape
    top, left = py.floor(), px.floor()
    flat = image.reshape(b, c, h * w)

    def corner(rows, cols):
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).long().reshape(b, 1, h * w).expand(b, c, -1)
        return flat.gather(2, index).reshape(b, c, h, w) * inside[:, None]

    wu, wd = (1.0 - px + left)[:, None], (px - left)[:, None]  # (1 - p1 + u), (1 - d + p1)
    upper = corner(top, left) * wu + corner(top, left + 1) * wd
    lower = corner(top + 1, left) * wu + corner(top + 1, left + 1) * wd
    return upper * (1.0 - py + top)[:, None] + lower * (py - top)[:, None]


def _refraction(luma: torch.Tensor, eta: float, lens_scale: float):
    """Per pixel: the lens normal from the caustics' luma differences, the refracted ray (Snell, eta), its
    (y, x) offset rounded to 3 decimals as the reference does, and the lighting terms."""
    padded = F.pad(luma, (1, 1, 1, 1))
    north, south = padded[:, 1:-1, :-2], padded[:, 1:-1, 2:]  # offsets (0, -1), (0, 1) of point = (y, x)
    west, east = padded[:, :-2, 1:-1], padded[:, 2:, 1:-1]  # offsets (-1, 0), (1, 0)
    nx, ny = east - west, south - north
    norm = torch.sqrt(nx ** 2 + ny ** 2 + 1.0)
    n0, n1, n2 = nx / norm, ny / norm, 1.0 / norm
    out_angle = torch.arcsin(torch.sin(torch.arccos(n2)) / eta)
    spectator = torch.sqrt(n1 ** 2 + n0 ** 2).clamp_min(1e-300)
    s0, s1 = -n1 / spectator, n0 / spectator  # cross((0, 0, 1), normal), normalised
    o0, o1 = -n2 * s1, n2 * s0  # cross(normal, spectator), first two components
    # the rotation (normal, orthogonal, spectator) is orthonormal: its inverse is its transpose
    dy = torch.cos(out_angle) * n0 + torch.sin(out_angle) * o0
    dx = torch.cos(out_angle) * n1 + torch.sin(out_angle) * o1
    straight = n2.abs() >= 1.0 - 1e-3  # the reference returns the incident ray unchanged
    dy = torch.round(torch.where(straight, 0.0, dy) * lens_scale, decimals=3)
    dx = torch.round(torch.where(straight, 0.0, dx) * lens_scale, decimals=3)
    return dy, dx, north - south, east - west


def caustic_refraction_from(x, level, time, size):
    """time, size (B,): the image seen through a caustic lens (eta 4), lit by its slopes."""
    from nnprobe.imagenet_c.ops import gaussian_filter

    n = side(x)
    noise = gaussian_filter(caustics(n, time.to(x.device), size.to(x.device), x.device)[:, None], 1.0,
                            mode="reflect")[:, 0]
    luma = noise * LUMA[0] + noise * LUMA[1] + noise * LUMA[2]
    dy, dx, vertical, horizontal = _refraction(luma, 4.0, param(level, 0.5 * n))
    ys, xs = _grid(n, x.device)
    image = _pixels(x) / 255
    out = _bilinear_zero(image, ys + dy, xs + dx)
    lighting = param(level, 2.0)
    out = out + (vertical * lighting)[:, None] + (horizontal * lighting)[:, None]
    return _finish(x, out.clamp(0, 1) * 255)


def caustic_refraction(x, severity, gens):
    n = side(x)
    return caustic_refraction_from(x, LEVELS["caustic_refraction"][severity - 1], _u(gens, 0.5, 2.0),
                                   _u(gens, 0.75, 1.25) * n)


# ---------------------------------------------------------------- sparkles

def _rays(n: int, center: torch.Tensor, rays: torch.Tensor, lengths: torch.Tensor, amount: float) -> torch.Tensor:
    """The sparkle kernel's blend weight f at every pixel: center (B, 2) = (y, x), rays (B,) ray counts,
    lengths (B, >= max rays) ray lengths."""
    ys, xs = _grid(n, center.device)
    d0, d1 = ys - _col(center[:, 0]), xs - _col(center[:, 1])
    dist = torch.sqrt(d0 ** 2 + d1 ** 2)
    count = rays.view(-1, 1, 1)
    d = (torch.atan2(d1, d0) + math.pi) / (2 * math.pi) * count.double()
    i = d.floor().long()
    f = d - i
    take = lambda k: torch.gather(lengths, 1, torch.remainder(k, count).flatten(1)).view_as(k)  # noqa: E731
    first = take(i)
    length = first + f * (take(i + 1) - first)
    g = (length ** 2 / (dist ** 2 + 1e-4)) ** ((100 - amount) / 50.0)
    return ((1 - (f - 0.5) ** 2) * g).clamp(0, 1)


def sparkles_from(x, level, centers, rays, lengths):
    """centers (B, 5, 2), rays (B, 5), lengths (B, 5, R): five white starbursts, one after the other."""
    n = side(x)
    value = _pixels(x)
    for k in range(centers.shape[1]):
        f = _rays(n, centers[:, k].to(x.device), rays[:, k].to(x.device), lengths[:, k].to(x.device), 50)
        value = value.float().double()  # each pass reads the image as float32
        value = value + f[:, None] * (255 - value)
    return _finish(x, value)


def sparkles(x, severity, gens):
    n = side(x)
    radius = param(LEVELS["sparkles"][severity - 1], 0.1) * n
    centers, rays = _u(gens, 0, n, (5, 2)), _randint(gens, 50, 200, (5,))
    lengths = (radius + 25 / 100.0 * radius * _randn(gens, (5, MAX_RAYS))).clamp_min(1)
    return sparkles_from(x, LEVELS["sparkles"][severity - 1], centers, rays, lengths)


def inverse_sparkles_from(x, level, center, rays, lengths):
    """center (B, 2), rays (B,), lengths (B, R): the image seen through one starburst hole in white."""
    n = side(x)
    amount = 100 - param(level, 65)
    f = _rays(n, center.to(x.device), rays.to(x.device), lengths.to(x.device), amount)
    return _finish(x, 255 + f[:, None] * (_pixels(x) - 255))


def inverse_sparkles(x, severity, gens):
    n = side(x)
    radius = 0.25 * n
    center, rays = _u(gens, 0.25, 0.75, (2,)) * n, _randint(gens, 50, 200)
    lengths = radius + 25 / 100.0 * radius * _randn(gens, (MAX_RAYS,))
    return inverse_sparkles_from(x, LEVELS["inverse_sparkles"][severity - 1], center, rays, lengths)


# ---------------------------------------------------------------- Perlin noise

def _copy_order() -> list[int]:
    """PerlinNoiseGenerator's `p[B + i] = p[i]` for i < B + 2, done in order (514 entries from 256)."""
    source = list(range(514))
    for i in range(258):
        source[256 + i] = source[i]
    return source


def perlin_tables(raw: torch.Tensor, swaps) -> tuple[torch.Tensor, torch.Tensor]:
    """The generator's permutation (514,) and gradients (514, 2) from its draws: `raw` (514, 2) ints in
    [0, 2^31) and `swaps` (256 ints in [0, 2^31), for i = 255 .. 0). A zero gradient (2 in 10^6 rows) stays
    zero instead of the reference's NaN."""
    grad = (torch.remainder(raw, 512) - 256).double() / 256
    grad = grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-300)
    perm = list(range(514))
    for i, j in zip(range(255, -1, -1), swaps):
        j = int(j) % 256
        perm[i], perm[j] = perm[j], perm[i]
    source = torch.tensor(_copy_order(), device=raw.device)
    return torch.tensor(perm, device=raw.device)[source], grad[source]


def _lattice(perm: torch.Tensor, grad: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PerlinNoiseGenerator.noise at (x, y) >= 0 per sample: perm (B, 514), grad (B, 514, 2)."""
    def take(table, index):
        return torch.gather(table, 1, index.flatten(1)).view_as(index)

    tx, ty = x + 4096, y + 4096
    bx0, by0 = tx.floor().long() % 256, ty.floor().long() % 256
    bx1, by1 = (bx0 + 1) % 256, (by0 + 1) % 256
    rx0, ry0 = torch.remainder(tx, 1), torch.remainder(ty, 1)
    rx1, ry1 = rx0 - 1.0, ry0 - 1.0
    i, j = take(perm, bx0), take(perm, bx1)
    gx, gy = grad[..., 0], grad[..., 1]

    def dot(cell, rx, ry):
        return rx * take(gx, cell) + ry * take(gy, cell)

    sx, sy = rx0 ** 2 * (3.0 - 2.0 * rx0), ry0 ** 2 * (3.0 - 2.0 * ry0)
    u, v = dot(take(perm, i + by0), rx0, ry0), dot(take(perm, j + by0), rx1, ry0)
    a = u + sx * (v - u)
    u, v = dot(take(perm, i + by1), rx0, ry1), dot(take(perm, j + by1), rx1, ry1)
    b = u + sx * (v - u)
    return 1.5 * (a + sy * (b - a))


def perlin_noise_from(x, level, perm, grad):
    """perm (B, 514), grad (B, 514, 2): turbulence (16 octaves' worth, 5 terms) blended in by level * 0.05."""
    n = side(x)
    scale = 1 / (32 * n / 224)
    ys, xs = _grid(n, x.device)
    px, py = (ys * scale).expand(len(perm), n, n), (xs * scale).expand(len(perm), n, n)  # point (y, x) @ m
    perm, grad = perm.to(x.device), grad.to(x.device)
    turbulence, f = torch.zeros_like(px), 1.0
    while f <= 16.0:
        turbulence = turbulence + _lattice(perm, grad, f * px, f * py).abs() / f
        f *= 2
    noise = (0.5 * turbulence + 0.5).clamp(0, 1)
    alpha = param(level, 0.50)
    kept = ((1 - alpha) * _pixels(x).float()).double()  # the reference scales the float32 image in float32
    return _finish(x, kept + 255 * alpha * noise[:, None])


def perlin_noise(x, severity, gens):
    tables = [perlin_tables(torch.randint(0, 2 ** 31, (514, 2), generator=g, device=g.device),
                            torch.randint(0, 2 ** 31, (256,), generator=g, device=g.device).tolist())
              for g in gens]
    return perlin_noise_from(x, LEVELS["perlin_noise"][severity - 1], torch.stack([t[0] for t in tables]),
                             torch.stack([t[1] for t in tables]))


# ---------------------------------------------------------------- checkerboard cutout

def checkerboard_cutout_from(x, level, angle, scale, grid):
    """angle, scale (B,), grid: per sample a square bool tensor (the cells cut, uniform < level / 10), of
    side int(4 * n // scale): grey (128) squares on alternate cells of a rotated checkerboard."""
    n = side(x)
    ys, xs = _grid(n, x.device)
    cos, sin, s = _col(torch.cos(angle)), _col(torch.sin(angle)), _col(scale)
    nx, ny = (cos * ys + sin * xs) / s, (-sin * ys + cos * xs) / s
    parity = torch.remainder(nx, 2).floor() != torch.remainder(ny, 2).floor()
    cut = []
    for k, cells in enumerate(grid):  # python indexing of int(n): negative indices wrap around
        cells = cells.to(x.device)
        rows = torch.remainder(torch.trunc(nx[k]).long(), cells.shape[0])
        cols = torch.remainder(torch.trunc(ny[k]).long(), cells.shape[1])
        cut.append(cells[rows, cols])
    keep = parity | ~torch.stack(cut)
    return _finish(x, torch.where(keep[:, None], _pixels(x), torch.full_like(x, 128, dtype=torch.float64)))


def checkerboard_cutout(x, severity, gens):
    n = side(x)
    level = LEVELS["checkerboard_cutout"][severity - 1]
    angle, scale = _u(gens, 0, 2 * math.pi), (_u(gens, 0.1, 0.25) * n).clamp_min(1)
    sizes = [int(4 * n // float(s)) for s in scale]
    grid = [torch.rand((k, k), generator=g, device=g.device, dtype=torch.float64) < param(level, 1.0)
            for k, g in zip(sizes, gens)]
    return checkerboard_cutout_from(x, level, angle, scale, grid)
