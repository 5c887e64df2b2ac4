"""A plain-loop numpy port of ImageNet-C-bar's 10 corruptions (facebookresearch/augmentation-corruption,
`imagenet_c_bar/corrupt.py`): one Python evaluation per pixel, float64, uint8 HWC in and out, given the
random parameters. Written from the published formulas for the tests (the reference is not on PyPI); checked
once against the reference itself on recorded parameters (docs/corruptions.md says how).

`draw(name, level, n, rng)` draws each corruption's parameters with numpy as the reference's
`sample_parameters` (and its seeded RandomState) does, in the form both this port and nnprobe's `*_from` ops take.
"""
from __future__ import annotations

import math

import numpy as np

LUMA = np.array([0.2126, 0.7152, 0.0722])


def fp(level, maxval):
    return float(level) * maxval / 10.0


def _u8(out):
    return np.clip(out, 0, 255).astype(np.uint8)


def single_frequency_greyscale(image, level, freq, phase):
    n = image.shape[0]
    noise = np.array([[math.sin(x * freq[0] + y * freq[1] + phase) for x in range(n)] for y in range(n)])
    return _u8(image + fp(level, 196) * noise[..., None])


def cocentric_sine_waves(image, level, offset, freq, amplitude, ring_width):
    n = image.shape[0]
    noise = np.zeros((n, n))
    for y in range(n):
        for x in range(n):
            angle = math.atan2(x - offset[0], y - offset[1]) * freq
            r = math.sqrt((x - offset[0]) ** 2 + (y - offset[1]) ** 2) + math.sin(angle) * amplitude
            noise[y, x] = (r % ring_width) / ring_width - 0.5
    return _u8(image + fp(level, 128) * noise[..., None])


def _plasma(x, y, rand, iterations, sharp, scale):
    x, y = x / scale, y / scale
    i = [1.0, 1.0, 1.0, 0.0]
    for _ in range(iterations):
        r = [math.cos(y * i[0] - i[3] + rand / i[1]) / i[2], math.sin(x * i[0] - i[3] + rand / i[1]) / i[2]]
        r = [r[0] - r[1] * 0.3, r[1] + r[0] * 0.3]
        x, y = x + r[0], y + r[1]
        i = [i[0] * 1.93, i[1] * 1.15, i[2] * (2.25 - sharp), i[3] * rand * i[1]]
    return [math.sin(x - rand), math.sin((x + y + math.sin(rand)) * 0.5), math.sin(y + rand)]


def plasma_noise(image, level, time, iterations, sharpness, scale):
    n = image.shape[0]
    noise = np.array([[_plasma(x, y, time, iterations, sharpness, scale) for x in range(n)] for y in range(n)])
    intensity = fp(level, 64)
    return _u8((1 - intensity / 255) * image + intensity * noise)


def _caustic(y, x, time, size):
    p = [(y / size) % 1 * 6.28318530718 - 250, (x / size) % 1 * 6.28318530718 - 250]
    i, c = list(p), 1.0
    for k in range(5):
        t = time * (1.0 - 3.5 / (k + 1))
        i = [p[0] + math.cos(t - i[0]) + math.sin(t + i[1]), p[1] + math.sin(t - i[1]) + math.cos(t + i[0])]
        c += 1.0 / math.sqrt((p[0] / (math.sin(i[0] + t) / 0.005)) ** 2 + (p[1] / (math.cos(i[1] + t) / 0.005)) ** 2)
    return min(max(abs(1.17 - (c / 5.0) ** 1.4) ** 8.0, 0.0), 1.0)


def _gauss_reflect(a, sigma=1.0):
    """scipy.ndimage.gaussian_filter(mode='reflect', truncate=4) over a 2-D array, as plain loops."""
    radius = int(4.0 * sigma + 0.5)
    w = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    w /= w.sum()
    n, m = a.shape

    def fold(k, size):
        while k < 0 or k >= size:
            k = -k - 1 if k < 0 else 2 * size - k - 1
        return k

    rows = np.array([[sum(w[j] * a[fold(r + j - radius, n), c] for j in range(len(w))) for c in range(m)]
                     for r in range(n)])
    return np.array([[sum(w[j] * rows[r, fold(c + j - radius, m)] for j in range(len(w))) for c in range(m)]
                     for r in range(n)])


def _bilinear(image, py, px):
    h, w = image.shape[:2]
    l, u = math.floor(py), math.floor(px)

    def at(r, c):
        return image[r, c] if 0 <= r < h and 0 <= c < w else np.zeros(3)

    al = at(l, u) * (1.0 - px + u) + at(l, u + 1) * (px - u)
    ar = at(l + 1, u) * (1.0 - px + u) + at(l + 1, u + 1) * (px - u)
    return al * (1.0 - py + l) + ar * (py - l)


def _refract(normal, eta):
    incident = np.array([0.0, 0.0, 1.0])
    if abs(normal @ incident) >= 1.0 - 1e-3:
        return incident
    out_angle = math.asin(math.sin(math.acos(normal @ incident)) / eta)
    spectator = np.cross(incident, normal)
    spectator /= np.linalg.norm(spectator)
    rotation = np.stack((normal, np.cross(normal, spectator), spectator))
    return np.linalg.inv(rotation) @ np.array([math.cos(out_angle), math.sin(out_angle), 0.0])


def caustic_refraction(image, level, time, size):
    n = image.shape[0]
    lens_scale, lighting = fp(level, 0.5 * n), fp(level, 2.0)
    caustics = _gauss_reflect(np.array([[_caustic(y, x, time, size) for x in range(n)] for y in range(n)]))

    def luma(r, c):
        return float(np.array([caustics[r, c]] * 3) @ LUMA) if 0 <= r < n and 0 <= c < n else 0.0

    pixels = image.astype(np.float32) / 255
    out = np.zeros((n, n, 3))
    for y in range(n):
        for x in range(n):
            north, south, west, east = luma(y, x - 1), luma(y, x + 1), luma(y - 1, x), luma(y + 1, x)
            normal = np.array([east - west, south - north, 1.0])
            offset = np.round(_refract(normal / np.linalg.norm(normal), 4.0) * lens_scale, 3)
            value = _bilinear(pixels, y + offset[0], x + offset[1])
            value = value + (north - south) * lighting + (east - west) * lighting
            out[y, x] = np.clip(value, 0, 1)
    return np.clip((out * 255).astype(np.uint8), 0, 255)


def _sparkle(value, y, x, center, lengths, amount):
    rays = len(lengths)
    dy, dx = y - center[0], x - center[1]
    d = (math.atan2(dx, dy) + math.pi) / (2 * math.pi) * rays
    i = int(d)
    f = d - i
    length = lengths[i % rays] + f * (lengths[(i + 1) % rays] - lengths[i % rays])
    g = (length ** 2 / (dy ** 2 + dx ** 2 + 1e-4)) ** ((100 - amount) / 50.0)
    return min(max((1 - (f - 0.5) ** 2) * g, 0.0), 1.0)


def sparkles(image, level, centers, rays, lengths):
    n = image.shape[0]
    for center, count, ray_lengths in zip(centers, rays, lengths):
        image = image.astype(np.float32)
        out = np.zeros((n, n, 3))
        for y in range(n):
            for x in range(n):
                f = _sparkle(image[y, x], y, x, center, ray_lengths[:count], 50)
                out[y, x] = image[y, x] + f * (255 - image[y, x])
        image = out
    return _u8(image)


def inverse_sparkles(image, level, center, rays, lengths):
    n = image.shape[0]
    amount = 100 - fp(level, 65)
    out = np.zeros((n, n, 3))
    value = image.astype(np.float32)
    for y in range(n):
        for x in range(n):
            f = _sparkle(value[y, x], y, x, center, lengths[:rays], amount)
            out[y, x] = 255 + f * (value[y, x] - 255)
    return _u8(out)


def _noise(perm, grad, x, y):
    t = x + 4096
    bx0 = int(t) % 256
    bx1, rx0 = (bx0 + 1) % 256, t % 1
    t = y + 4096
    by0 = int(t) % 256
    by1, ry0 = (by0 + 1) % 256, t % 1
    rx1, ry1 = rx0 - 1.0, ry0 - 1.0
    i, j = perm[bx0], perm[bx1]
    sx, sy = rx0 ** 2 * (3 - 2 * rx0), ry0 ** 2 * (3 - 2 * ry0)
    u, v = rx0 * grad[perm[i + by0], 0] + ry0 * grad[perm[i + by0], 1], rx1 * grad[perm[j + by0], 0] + ry0 * grad[perm[j + by0], 1]
    a = u + sx * (v - u)
    u, v = rx0 * grad[perm[i + by1], 0] + ry1 * grad[perm[i + by1], 1], rx1 * grad[perm[j + by1], 0] + ry1 * grad[perm[j + by1], 1]
    b = u + sx * (v - u)
    return 1.5 * (a + sy * (b - a))


def perlin_noise(image, level, perm, grad):
    n = image.shape[0]
    m = 1 / (32 * n / 224)
    alpha = fp(level, 0.5)
    noise = np.zeros((n, n))
    for y in range(n):
        for x in range(n):
            total, f = 0.0, 1.0
            while f <= 16.0:
                total += abs(_noise(perm, grad, f * y * m, f * x * m)) / f
                f *= 2
            noise[y, x] = min(max(0.5 * total + 0.5, 0.0), 1.0)
    return _u8((1 - alpha) * image.astype(np.float32) + 255 * alpha * noise[..., None])


def perlin_tables(rng):
    """The reference's PerlinNoiseGenerator tables from a RandomState: gradients then the swap loop."""
    grad = np.array([(v := (rng.randint(0, 2 ** 31, size=2) % 512 - 256) / 256) / np.linalg.norm(v)
                     for _ in range(514)])
    perm = np.arange(514)
    for i in range(255, -1, -1):
        j = rng.randint(0, 2 ** 31) % 256
        perm[i], perm[j] = perm[j], perm[i]
    for i in range(258):
        perm[256 + i], grad[256 + i] = perm[i], grad[i]
    return perm, grad


def _spectral(n, phases, centre, power):
    if n % 2:
        column = np.concatenate((centre[:, None], [[0.0]], centre[::-1, None]))
        phases = np.concatenate((phases, column, phases[::-1, ::-1]), axis=1)
    else:
        phases = np.concatenate((phases, phases[::-1, ::-1]), axis=1)
    spectrum = power * (np.cos(phases) + np.sin(phases) * 1j)
    spectrum = np.roll(np.roll(spectrum, n // 2, axis=0), n // 2, axis=1)
    noise = np.real(np.fft.ifft2(spectrum))
    return noise / np.std(noise)


def _distances(n):
    return np.array([[math.hypot(x - n / 2, y - n / 2) for x in range(n)] for y in range(n)])


def blue_noise_sample(image, level, phases, centre=None):
    n = image.shape[0]
    noise = _spectral(n, phases, centre, _distances(n))
    return _u8(image * (noise > fp(level, 3.0) - 2.5)[..., None])


def brownish_noise(image, level, phases, centre=None):
    n = image.shape[0]
    power = 1 / (_distances(n) ** 2 + 1)
    noise = np.stack([_spectral(n, phases[c], None if centre is None else centre[c], power) for c in range(3)], 2)
    return _u8(image + fp(level, 64) * noise)


def checkerboard_cutout(image, level, angle, scale, grid):
    n = image.shape[0]
    out = image.copy()
    for y in range(n):
        for x in range(n):
            nx = (math.cos(angle) * y + math.sin(angle) * x) / scale
            ny = (-math.sin(angle) * y + math.cos(angle) * x) / scale
            if int(nx % 2) == int(ny % 2) and grid[int(nx), int(ny)]:
                out[y, x] = 128
    return out


def _phases(rng, n):
    phases = rng.uniform(0, 2 * np.pi, size=(n, n // 2))
    return phases, (rng.uniform(0, 2 * np.pi, size=n // 2) if n % 2 else None)


def draw(name: str, level: float, n: int, rng: np.random.RandomState) -> tuple:
    """The parameters of `name` at `level` on an n x n image, drawn with numpy as the reference draws them."""
    if name == "single_frequency_greyscale":
        magnitude = rng.uniform(-np.pi, np.pi)
        other = rng.uniform(-abs(magnitude), abs(magnitude))
        return np.array([magnitude, other])[rng.permutation(2)], rng.uniform(0, 2 * np.pi)
    if name == "cocentric_sine_waves":
        return rng.uniform(0, n, size=2), rng.uniform(0, 10), rng.uniform(0, n / 10), rng.uniform(0, n / 10)
    if name == "plasma_noise":
        return (rng.uniform(0, 6 * np.pi), rng.randint(4, 7), rng.uniform(0.5, 1.0), rng.uniform(0.075, 0.2) * n)
    if name == "caustic_refraction":
        return rng.uniform(0.5, 2.0), rng.uniform(0.75, 1.25) * n
    if name == "sparkles":
        centers, rays = rng.uniform(0, n, size=(5, 2)), rng.randint(50, 200, size=5)
        radius = fp(level, 0.1) * n
        lengths = np.ones((5, 200))
        for k, count in enumerate(rays):
            lengths[k, :count] = [max(1, radius + 0.25 * radius * rng.randn()) for _ in range(count)]
        return centers, rays, lengths
    if name == "inverse_sparkles":
        center, rays = rng.uniform(0.25, 0.75, size=2) * n, rng.randint(50, 200)
        lengths = np.ones(200)
        lengths[:rays] = [0.25 * n + 0.25 * 0.25 * n * rng.randn() for _ in range(rays)]
        return center, rays, lengths
    if name == "perlin_noise":
        return perlin_tables(rng)
    if name == "blue_noise_sample":
        return _phases(rng, n)
    if name == "brownish_noise":
        draws = [_phases(rng, n) for _ in range(3)]
        return np.stack([d[0] for d in draws]), (None if n % 2 == 0 else np.stack([d[1] for d in draws]))
    if name == "checkerboard_cutout":
        angle, scale = rng.uniform(0, 2 * np.pi), max(rng.uniform(0.1, 0.25) * n, 1)
        size = int(4 * n // scale)
        return angle, scale, rng.uniform(size=(size, size)) < fp(level, 1.0)
    raise KeyError(name)
