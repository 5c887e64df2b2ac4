"""ImageNet-C-bar's 10 corruptions (Mintun, Kirillov and Xie 2021, "On Interaction Between Augmentations and
Corruptions in Natural Corruption Robustness") as batched torch ops on any device.

The reference is facebookresearch/augmentation-corruption (`imagenet_c_bar/corrupt.py`, MIT): one numpy
image at a time, a Python call per pixel. Here every op takes float NCHW pixels in [0, 1] (square, as the
reference's `im_size`), a severity 1..5 and one `torch.Generator` per sample, and returns the reference's
uint8 result (truncated, `astype(np.uint8)`) as float pixels. Severity s means the published level
`LEVELS[name][s - 1]` (`imagenet_c_bar.csv`: a float on the reference's 0..10 scale, turned into each
parameter by `level * maxval / 10`). Each op is split in two: a sampler drawing the reference's random
parameters from the sample's own generator (same distributions, torch's stream), and a `*_from` function
that takes those parameters and does the arithmetic on the whole batch in float64; tests feed the
`*_from` functions parameters drawn by numpy and compare with a plain-loop port of the reference.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from nnprobe.errors import UsageError

Gens = Sequence[torch.Generator]

# imagenet_c_bar.csv: the five published levels of each corruption
LEVELS: dict[str, tuple[float, ...]] = {
    "blue_noise_sample": (0.8, 1.6, 2.4, 4.0, 5.6),
    "brownish_noise": (1.0, 2.0, 3.0, 4.0, 5.0),
    "caustic_refraction": (2.35, 3.2, 4.9, 6.6, 9.15),
    "checkerboard_cutout": (2.0, 3.0, 4.0, 5.0, 6.0),
    "cocentric_sine_waves": (3.0, 5.0, 8.0, 9.0, 10.0),
    "inverse_sparkles": (1.0, 2.0, 4.0, 9.0, 10.0),
    "perlin_noise": (4.6, 5.2, 5.8, 7.6, 8.8),
    "plasma_noise": (4.75, 7.0, 8.5, 9.25, 10.0),
    "single_frequency_greyscale": (1.0, 1.5, 2.0, 4.5, 5.0),
    "sparkles": (1.0, 2.0, 3.0, 5.0, 6.0),
}
LUMA = (0.2126, 0.7152, 0.0722)


def param(level: float, maxval: float) -> float:
    """The reference's `float_parameter`: a level on its 0..10 scale times `maxval` / 10."""
    return float(level) * maxval / 10.0


# ---------------------------------------------------------------- helpers

def side(x: torch.Tensor) -> int:
    h, w = x.shape[-2:]
    if h != w:
        raise UsageError(f"The ImageNet-C-bar corruptions are defined on square images (the reference's im_size); "
                         f"got {h}x{w}: give the model a square crop.")
    return h


def _grid(n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row (y) and column (x) coordinates, float64, shaped (1, n, 1) and (1, 1, n)."""
    t = torch.arange(n, dtype=torch.float64, device=device)
    return t.view(1, n, 1), t.view(1, 1, n)


def _finish(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """0..255 float64 values -> np.clip(..., 0, 255).astype(np.uint8) -> float pixels of x's dtype."""
    return (torch.floor(values.clamp(0, 255)) / 255).to(x.dtype)


def _u(gens: Gens, low: float, high: float, shape=()) -> torch.Tensor:
    """numpy's uniform(low, high, shape) per sample: (B, *shape) float64 on the generators' device."""
    draws = [torch.rand(shape, generator=g, device=g.device, dtype=torch.float64) for g in gens]
    return low + (high - low) * torch.stack(draws)


def _randint(gens: Gens, low: int, high: int, shape=()) -> torch.Tensor:
    return torch.stack([torch.randint(low, high, shape, generator=g, device=g.device) for g in gens])


def _randn(gens: Gens, shape) -> torch.Tensor:
    return torch.stack([torch.randn(shape, generator=g, device=g.device, dtype=torch.float64) for g in gens])


def _col(v: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1) for broadcasting over a (B, H, W) field."""
    return v.to(torch.float64).view(-1, 1, 1)


def _pixels(x: torch.Tensor) -> torch.Tensor:
    """Float [0, 1] pixels -> the reference's uint8 values as float64 (the input is on the 8-bit grid)."""
    return torch.round(x.double() * 255)


# ---------------------------------------------------------------- additive patterns

def single_frequency_greyscale_from(x, level, freq, phase):
    """freq (B, 2), phase (B,): image + intensity * sin(x f0 + y f1 + phase) on all three channels."""
    ys, xs = _grid(side(x), x.device)
    noise = torch.sin(xs * _col(freq[:, 0]) + ys * _col(freq[:, 1]) + _col(phase))
    return _finish(x, _pixels(x) + param(level, 196) * noise[:, None])


def single_frequency_greyscale(x, severity, gens):
    magnitude = _u(gens, -math.pi, math.pi)
    other = (2 * _u(gens, 0, 1) - 1) * magnitude.abs()  # uniform(-|magnitude|, |magnitude|)
    swap = _randint(gens, 0, 2).bool()  # np.random.permutation(2): either order, evenly
    freq = torch.where(swap[:, None], torch.stack([other, magnitude], 1), torch.stack([magnitude, other], 1))
    return single_frequency_greyscale_from(x, LEVELS["single_frequency_greyscale"][severity - 1], freq,
                                           _u(gens, 0, 2 * math.pi))


def cocentric_sine_waves_from(x, level, offset, freq, amplitude, ring_width):
    """offset (B, 2) = (x0, y0); freq, amplitude, ring_width (B,): rings around the offset, wobbled."""
    ys, xs = _grid(side(x), x.device)
    dx, dy = xs - _col(offset[:, 0]), ys - _col(offset[:, 1])
    angle = torch.atan2(dx, dy) * _col(freq)
    width = _col(ring_width)
    noise = torch.remainder(torch.sqrt(dx ** 2 + dy ** 2) + torch.sin(angle) * _col(amplitude), width) / width - 0.5
    return _finish(x, _pixels(x) + param(level, 128) * noise[:, None])


def cocentric_sine_waves(x, severity, gens):
    n = side(x)
    return cocentric_sine_waves_from(x, LEVELS["cocentric_sine_waves"][severity - 1], _u(gens, 0, n, (2,)),
                                     _u(gens, 0, 10), _u(gens, 0, n / 10), _u(gens, 0, n / 10))


def plasma_noise_from(x, level, time, iterations, sharpness, scale):
    """time, sharpness, scale (B,), iterations (B,) ints: the reference's iterated plasma kernel (r, g, b)."""
    n = side(x)
    ys, xs = _grid(n, x.device)
    px, py = xs / _col(scale), ys / _col(scale)
    px, py = px.expand(-1, n, n).clone(), py.expand(-1, n, n).clone()
    rand = _col(time)
    i0, i1, i2, i3 = (torch.full_like(rand, v) for v in (1.0, 1.0, 1.0, 0.0))
    for step in range(int(iterations.max())):
        live = _col(iterations) > step
        r0 = torch.cos(py * i0 - i3 + rand / i1) / i2
        r1 = torch.sin(px * i0 - i3 + rand / i1) / i2
        r0, r1 = r0 - r1 * 0.3, r1 + r0 * 0.3  # r += [-r1, r0] * 0.3, both from the old r
        px, py = torch.where(live, px + r0, px), torch.where(live, py + r1, py)
        new = (i0 * 1.93, i1 * 1.15, i2 * (2.25 - _col(sharpness)), i3 * rand * i1)
        i0, i1, i2, i3 = (torch.where(live, a, b) for a, b in zip(new, (i0, i1, i2, i3)))
    noise = torch.stack([torch.sin(px - rand), torch.sin((px + py + torch.sin(rand)) * 0.5),
                         torch.sin(py + rand)], dim=1)
    intensity = param(level, 64)
    return _finish(x, (1 - intensity / 255) * _pixels(x) + intensity * noise)


def plasma_noise(x, severity, gens):
    n = side(x)
    time, iterations = _u(gens, 0.0, 6 * math.pi), _randint(gens, 4, 7)
    sharpness, scale = _u(gens, 0.5, 1.0), _u(gens, 0.075, 0.2) * n
    return plasma_noise_from(x, LEVELS["plasma_noise"][severity - 1], time, iterations, sharpness, scale)


def _spectral_noise(power: torch.Tensor, phases: torch.Tensor, centre: torch.Tensor | None) -> torch.Tensor:
    """The reference's gen_noise given its phase draws, (B, n, n//2) and for odd n a centre column (B, n//2):
    a Hermitian spectrum power * e^(i phase), rolled by n//2, inverse FFT, real part over its std."""
    b, n = phases.shape[0], power.shape[0]
    parts = [phases]
    if n % 2:
        zero = phases.new_zeros(b, 1)
        parts.append(torch.cat([centre, zero, centre.flip(1)], dim=1)[:, :, None])
    full = torch.cat([*parts, phases.flip(1, 2)], dim=2)
    spectrum = torch.polar(power.expand(b, n, n).contiguous(), full)
    spectrum = torch.roll(spectrum, shifts=(n // 2, n // 2), dims=(1, 2))
    noise = torch.fft.ifft2(spectrum).real
    return noise / noise.std(dim=(1, 2), correction=0, keepdim=True)


def _phases(gens: Gens, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    return _u(gens, 0, 2 * math.pi, (n, n // 2)), (_u(gens, 0, 2 * math.pi, (n // 2,)) if n % 2 else None)


def _distance(n: int, device) -> torch.Tensor:
    """|(x, y) - n/2| on the n x n grid (the reference's `power` before blue/brownish shaping)."""
    ys, xs = _grid(n, device)
    return torch.sqrt((xs - n / 2) ** 2 + (ys - n / 2) ** 2)[0]


def blue_noise_sample_from(x, level, phases, centre=None):
    """Pixels kept where blue noise (power ~ frequency) exceeds level * 3 / 10 - 2.5, black elsewhere."""
    n = side(x)
    noise = _spectral_noise(_distance(n, x.device), phases.to(x.device), None if centre is None else
                            centre.to(x.device))
    keep = noise > param(level, 3.0) - 2.5
    return _finish(x, _pixels(x) * keep[:, None])


def blue_noise_sample(x, severity, gens):
    return blue_noise_sample_from(x, LEVELS["blue_noise_sample"][severity - 1], *_phases(gens, side(x)))


def brownish_noise_from(x, level, phases, centre=None):
    """phases (B, 3, n, n//2) [centre (B, 3, n//2)]: one brownish (power ~ 1/(f^2+1)) field per channel, added."""
    n = side(x)
    power = 1 / (_distance(n, x.device) ** 2 + 1)
    noise = torch.stack([_spectral_noise(power, phases[:, c].to(x.device), None if centre is None else
                                         centre[:, c].to(x.device)) for c in range(3)], dim=1)
    return _finish(x, _pixels(x) + param(level, 64) * noise)


def brownish_noise(x, severity, gens):
    n = side(x)
    draws = [_phases(gens, n) for _ in range(3)]
    centre = None if n % 2 == 0 else torch.stack([d[1] for d in draws], 1)
    return brownish_noise_from(x, LEVELS["brownish_noise"][severity - 1], torch.stack([d[0] for d in draws], 1),
                               centre)
