"""ImageNet-P's spatter sequence in torch, batched on the device: make_imagenet_p.py's OpenCV pipeline
step by step, each step the integer or float arithmetic OpenCV does, so frames equal the reference's given
the same liquid layer.

Per image, a liquid layer: normal(0.65, 0.27) draws, skimage's Gaussian (sigma 3.7), under 0.69 cleared.
Per frame i = 0..30, from the layer L (float64):

    l8   = uint8(255 L)                                 truncated
    edge = cv2.Canny(l8, 50, 150)                      Sobel 3x3 (border replicated), |dx| + |dy|,
                                                       non-maximum suppression in 4 directions, hysteresis
    dist = cv2.distanceTransform(255 - edge, L2, 5)    5x5 chamfer (1, 1.4, 2.1969), summed in float32
    dist = uint8(box3x3(min(dist, 20)))                float box filter, truncated
    dist = box3x3(filter2D(equalizeHist(dist), [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))   on 8 bits
    m    = 0.6 l8 dist / max(l8 dist)                  float32
    frame = uint8(clip(x + m (175, 238, 238) / 255, 0, 1) 255)
    L    = L convolved down the rows with [0.05, 0.1, 0.15, 0.7] (np.convolve 'same'): the drops run down

(borders of the box filters and filter2D reflected without the edge pixel, OpenCV's default). The
reference's RGB image goes through OpenCV's BGR conversions unchanged, so the turquoise (175, 238, 238) is
added in R, G, B order; a layer with no liquid divides 0 by 0 there (NaN, then 0 in uint8): here the
frame is the clean image. The published sequences were x264 videos; these frames are not encoded.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

FRAMES = 31
TG22 = 13573  # round(tan(22.5 degrees) * 2**15), Canny's direction test
CHAMFER = (1.0, 1.4, 2.1969)  # distanceTransform's 5x5 L2 weights, added in float32 as OpenCV 5 does
CHAMFER_MOVES = ([(0, 1), (1, 0), (0, -1), (-1, 0)], [(1, 1), (1, -1), (-1, 1), (-1, -1)],
                 [(1, 2), (2, 1), (-1, 2), (-2, 1), (1, -2), (2, -1), (-1, -2), (-2, -1)])
TRUNC = 20


def liquid_layer(draws: torch.Tensor) -> torch.Tensor:
    """The layer from its normal(0.65, 0.27) draws (B, H, W), float64: skimage's gaussian, < 0.69 cleared."""
    from nnprobe.imagenet_c.ops import gaussian_filter

    layer = gaussian_filter(draws[:, None].double(), 3.7)[:, 0]
    return torch.where(layer < 0.69, torch.zeros_like(layer), layer)


def _shift(x: torch.Tensor, dy: int, dx: int, fill) -> torch.Tensor:
    """x[y + dy, x + dx] for (B, H, W) `x`, `fill` beyond the edge."""
    h, w = x.shape[-2:]
    padded = F.pad(x[:, None], (2, 2, 2, 2), value=fill)[:, 0] if not isinstance(fill, str) else \
        F.pad(x[:, None].double(), (2, 2, 2, 2), mode=fill)[:, 0].to(x.dtype)
    return padded[:, 2 + dy:2 + dy + h, 2 + dx:2 + dx + w]


def _correlate3(x: torch.Tensor, kernel: Sequence[Sequence[int]], border: str) -> torch.Tensor:
    """3x3 correlation of (B, H, W) `x`, exact in float64 on integers, the border by `border`."""
    out = torch.zeros_like(x, dtype=torch.float64)
    for i in range(3):
        for j in range(3):
            if kernel[i][j]:
                out += kernel[i][j] * _shift(x.double(), i - 1, j - 1, border)
    return out


def canny(image: torch.Tensor, low: int = 50, high: int = 150) -> torch.Tensor:
    """cv2.Canny(image, low, high) of uint8 (B, H, W), L1 gradient, aperture 3: the edge mask (bool)."""
    dx = _correlate3(image, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], "replicate").long()
    dy = _correlate3(image, [[-1, -2, -1], [0, 0, 0], [1, 2, 1]], "replicate").long()
    mag = dx.abs() + dy.abs()

    def at(sy, sx):
        return _shift(mag, sy, sx, 0)

    ax, ay = dx.abs(), dy.abs() << 15
    tg22x = ax * TG22
    horizontal = ay < tg22x
    vertical = ~horizontal & (ay > tg22x + (ax << 16))
    same_sign = (dx ^ dy) >= 0
    peak = torch.where(horizontal, (mag > at(0, -1)) & (mag >= at(0, 1)),
                       torch.where(vertical, (mag > at(-1, 0)) & (mag >= at(1, 0)),
                                   torch.where(same_sign, (mag > at(-1, -1)) & (mag > at(1, 1)),
                                               (mag > at(-1, 1)) & (mag > at(1, -1)))))
    candidate = peak & (mag > low)
    edges = candidate & (mag > high)
    while True:  # hysteresis: grow the strong edges through 8-connected candidates
        grown = candidate & (F.max_pool2d(edges[:, None].float(), 3, 1, 1)[:, 0] > 0) | edges
        if torch.equal(grown, edges):
            return edges
        edges = grown


def chamfer_distance(zero: torch.Tensor) -> torch.Tensor:
    """cv2.distanceTransform(src, DIST_L2, 5) of a (B, H, W) image whose zero pixels are `zero`, truncated at
    20 (what the pipeline keeps): the cheapest 5x5 chamfer path, its weights summed in float32."""
    cap = float(TRUNC + 1)
    weights = [torch.tensor(w, dtype=torch.float32) for w in CHAMFER]
    d = torch.where(zero, 0.0, cap).float()
    for _ in range(TRUNC + 1):  # every move costs >= 1: a path of cost <= 20 has <= 20 moves
        step = d
        for weight, moves in zip(weights, CHAMFER_MOVES):
            for dy, dx in moves:
                step = torch.minimum(step, _shift(d, dy, dx, cap) + weight.to(d.device))
        if torch.equal(step, d):
            break
        d = step
    return d.clamp(max=float(TRUNC))


def box3(x: torch.Tensor) -> torch.Tensor:
    """cv2.blur(x, (3, 3)) before its cast: the 3x3 mean, borders reflected without the edge (float64)."""
    return _correlate3(x, [[1, 1, 1]] * 3, "reflect") * (1 / 9)


def equalize_hist(x: torch.Tensor) -> torch.Tensor:
    """cv2.equalizeHist of uint8 (B, H, W) images, each on its own histogram (its float32 scale, cvRound)."""
    b = x.shape[0]
    flat = x.reshape(b, -1).long()
    hist = torch.zeros(b, 256, dtype=torch.int64, device=x.device).scatter_add_(1, flat, torch.ones_like(flat))
    first = (hist > 0).long().argmax(dim=1, keepdim=True)
    below = hist.gather(1, first)
    total = flat.shape[1]
    scale = (torch.tensor(255.0, dtype=torch.float32) / (total - below).float().clamp(min=1)).to(x.device)
    cumulative = hist.cumsum(dim=1) - below
    levels = torch.arange(256, device=x.device)[None]
    lut = torch.round(cumulative.float() * scale).clamp(0, 255)
    lut = torch.where(levels <= first, torch.zeros_like(lut), lut)
    lut = torch.where(below == total, first.float().expand_as(lut), lut)  # one value: kept as it is
    return lut.gather(1, flat).reshape(x.shape).to(torch.uint8)


def _flow(layer: torch.Tensor) -> torch.Tensor:
    """np.convolve(column, [0.05, 0.1, 0.15, 0.7], 'same') down each column: out[n] = 0.05 in[n + 1] +
    0.1 in[n] + 0.15 in[n - 1] + 0.7 in[n - 2], zeros beyond the edge."""
    return (0.05 * _shift(layer, 1, 0, 0.0) + 0.1 * layer + 0.15 * _shift(layer, -1, 0, 0.0)
            + 0.7 * _shift(layer, -2, 0, 0.0))


def spatter_mask(layer: torch.Tensor) -> torch.Tensor:
    """m of one frame (B, H, W), float32, from the layer (float64)."""
    l8 = torch.floor(layer * 255).clamp(0, 255).to(torch.uint8)
    distance = chamfer_distance(canny(l8))
    dist = torch.floor(box3(distance.double()).float().double()).to(torch.uint8)  # float32 result, then uint8
    dist = equalize_hist(dist)
    dist = _correlate3(dist, [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], "reflect").clamp(0, 255)
    dist = torch.floor(box3(dist) + 0.5).float()  # 8-bit box filter rounds
    m = l8.float() * dist
    peak = m.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, m / peak.clamp(min=1e-30), torch.zeros_like(m)) * 0.6


def spatter_frames_from(x: torch.Tensor, layer: torch.Tensor) -> Iterator[torch.Tensor]:
    """The frames given each image's liquid layer (B, H, W) float64: float [0, 1] on 8 bits."""
    colour = torch.tensor([175 / 255., 238 / 255., 238 / 255.], dtype=torch.float32, device=x.device)[None, :, None,
                                                                                                    None]
    image = (torch.round(x * 255).float() / 255).float()
    for _ in range(FRAMES):
        m = spatter_mask(layer)[:, None]
        yield torch.floor((image + m * colour).clamp(0, 1) * 255) / 255
        layer = _flow(layer)


def liquid_draws(gens: Sequence[torch.Generator], h: int, w: int) -> torch.Tensor:
    """normal(0.65, 0.27) draws (B, H, W), float64, one image's from its own generator."""
    return torch.stack([0.65 + 0.27 * torch.randn((h, w), generator=g, device=g.device, dtype=torch.float64)
                        for g in gens])


def spatter_frames(x: torch.Tensor, gens: Sequence[torch.Generator]) -> Iterator[torch.Tensor]:
    yield from spatter_frames_from(x, liquid_layer(liquid_draws(gens, *x.shape[-2:]).to(x.device)))
