"""ImageNet-P's spatter in torch against make_imagenet_p.py's own OpenCV pipeline (cv2 and skimage, as the
generation code calls them): the frames given the same liquid layer, each OpenCV step on its own (Canny,
distanceTransform, equalizeHist), and the random liquid layer in distribution against numpy's draws."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from corruption_reference import photos
from nnprobe.imagenet_c import spatter


def reference_frames(crop: np.ndarray, liquid_layer: np.ndarray, frames: int) -> list[np.ndarray]:
    """make_imagenet_p.py's spatter loop, as written there, from a given liquid layer."""
    import cv2

    x = cv2.cvtColor(np.array(crop, dtype=np.float32) / 255., cv2.COLOR_BGR2BGRA)
    out = []
    for _ in range(frames):
        liquid_layer_i = (liquid_layer * 255).astype(np.uint8)
        dist = 255 - cv2.Canny(liquid_layer_i, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        dist = cv2.filter2D(dist, cv2.CV_8U, ker)
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        m = cv2.cvtColor(liquid_layer_i * dist, cv2.COLOR_GRAY2BGRA)
        m /= np.max(m, axis=(0, 1))
        m *= 0.6
        color = np.concatenate((175 / 255. * np.ones_like(m[..., :1]), 238 / 255. * np.ones_like(m[..., :1]),
                                238 / 255. * np.ones_like(m[..., :1])), axis=2)
        color = cv2.cvtColor(color, cv2.COLOR_BGR2BGRA)
        out.append(np.uint8(cv2.cvtColor(np.clip(x + m * color, 0, 1), cv2.COLOR_BGRA2BGR) * 255))
        liquid_layer = np.apply_along_axis(
            lambda mat: np.convolve(mat, np.array([0.05, 0.1, 0.15, 0.7]), mode="same"), axis=0, arr=liquid_layer)
    return out


def numpy_layer(rs: np.random.RandomState, size: int) -> np.ndarray:
    from skimage.filters import gaussian

    layer = gaussian(rs.normal(size=(size, size), loc=0.65, scale=0.27), sigma=3.7)
    layer[layer < 0.69] = 0
    return layer


def test_spatter_frames_equal_the_generation_code_given_its_liquid_layer():
    rs = np.random.RandomState(3)
    for crop, frames in ((photos(64)[0], 31), (photos(96)[1], 8)):
        layer = numpy_layer(rs, crop.shape[0])
        x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
        ours = [torch.round(f[0] * 255).permute(1, 2, 0).numpy().astype(int)
                for _, f in zip(range(frames), spatter.spatter_frames_from(x, torch.from_numpy(layer)[None]))]
        theirs = reference_frames(crop, layer, frames)
        assert len(ours) == frames
        for i, (a, b) in enumerate(zip(ours, theirs)):
            diff = np.abs(a - b.astype(int))
            assert diff.max() <= 1 and diff.mean() <= 0.01, (i, diff.max(), diff.mean())
        assert any(np.abs(b.astype(int) - crop).max() > 20 for b in theirs)  # there is spatter to agree on


def test_each_opencv_step_equals_opencv():
    import cv2

    rs = np.random.RandomState(5)
    layers = [numpy_layer(rs, 80) for _ in range(3)]
    smooth = cv2.GaussianBlur(rs.randint(0, 256, (70, 90)).astype(np.uint8), (5, 5), 1.5)
    for image in [np.uint8(layer * 255) for layer in layers] + [smooth]:
        edges = spatter.canny(torch.from_numpy(image)[None])[0].numpy()
        assert np.array_equal(edges, cv2.Canny(image, 50, 150) > 0)
        assert edges.any()
        theirs = np.minimum(cv2.distanceTransform(np.uint8(255 - 255 * edges), cv2.DIST_L2, 5), 20)
        ours = spatter.chamfer_distance(torch.from_numpy(edges)[None])[0].numpy()
        assert np.abs(ours - theirs).max() < 1e-5  # float32 sums along paths taken in another order
        assert np.array_equal(spatter.equalize_hist(torch.from_numpy(image)[None])[0].numpy(), cv2.equalizeHist(image))
    flat = np.full((8, 8), 7, np.uint8)
    assert np.array_equal(spatter.equalize_hist(torch.from_numpy(flat)[None])[0].numpy(), cv2.equalizeHist(flat))


def test_the_liquid_layer_is_drawn_as_numpy_draws_it():
    """The draws are normal(0.65, 0.27) (one-sample KS on independent values); the layer after skimage's
    Gaussian and the 0.69 threshold has the same share of liquid and the same liquid values as numpy's
    (two-sample KS over 40 layers each, one statistic per layer: pixels of a layer are not independent)."""
    from scipy import stats

    gens = [torch.Generator().manual_seed(100 + k) for k in range(40)]
    draws = spatter.liquid_draws(gens, 48, 48)
    assert stats.kstest(draws[:, ::6, ::6].flatten().numpy(), stats.norm(0.65, 0.27).cdf).pvalue > 1e-3
    ours = spatter.liquid_layer(draws).numpy()
    rs = np.random.RandomState(7)
    theirs = np.stack([numpy_layer(rs, 48) for _ in range(40)])
    for statistic in (lambda layer: (layer > 0).mean(), lambda layer: layer[layer > 0].mean() if (layer > 0).any()
                      else 0.0):
        a, b = [statistic(layer) for layer in ours], [statistic(layer) for layer in theirs]
        assert stats.ks_2samp(a, b).pvalue > 1e-3
    assert 0.005 < float((ours > 0).mean()) < 0.1


def test_a_layer_without_liquid_leaves_the_image_as_it_is():
    x = torch.from_numpy(photos(32)[0]).permute(2, 0, 1)[None].float() / 255
    frames = list(spatter.spatter_frames_from(x, torch.zeros(1, 32, 32, dtype=torch.float64)))
    assert len(frames) == spatter.FRAMES and all(torch.equal(torch.round(f * 255), torch.round(x * 255))
                                                 for f in frames)


@pytest.mark.parametrize("batch", [1, 3])
def test_spatter_frames_are_per_image_whatever_the_batch(batch):
    x = torch.from_numpy(np.stack(photos(32)[:3])).permute(0, 3, 1, 2).float() / 255
    whole = list(spatter.spatter_frames(x, [torch.Generator().manual_seed(k) for k in range(3)]))
    parts = [list(spatter.spatter_frames(x[k:k + batch], [torch.Generator().manual_seed(j)
                                                          for j in range(k, min(k + batch, 3))]))
             for k in range(0, 3, batch)]
    for i, frame in enumerate(whole):
        assert torch.equal(frame, torch.cat([part[i] for part in parts]))
