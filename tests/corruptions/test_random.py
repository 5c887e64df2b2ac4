"""The random corruptions in distribution against the reference, and the per-sample randomness: a batch
corrupts exactly as its images one by one, whatever the batch; the same seed gives the same pixels."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from corruption_reference import photos, reference, to_tensor
from nnprobe.imagenet_c import (C_BAR, CORRUPTIONS, IMAGENET_C, corrupt, ops, parse_corruptions, parse_severities,
                                sample_seed)
from nnprobe.errors import UsageError

ic = reference()


@pytest.fixture(scope="module")
def x():
    return to_tensor(photos())


def test_gaussian_noise_has_the_reference_std_on_a_grey_image():
    grey = torch.full((2, 3, 224, 224), 0.5)
    for severity, c in enumerate([.08, .12, 0.18, 0.26, 0.38], start=1):
        ours = corrupt(grey, "gaussian_noise", severity, [1, 2], quantized=False) - 0.5
        np.random.seed(severity)
        ref = ic.gaussian_noise(np.full((224, 224, 3), 127.5), severity) / 255 - 0.5
        # clipping at 0 and 1 shrinks the std below c alike on both sides; 300k draws: std to ~0.2%
        assert abs(float(ours.std()) - ref.std()) < 0.01 * ref.std(), severity
        assert abs(float(ours.mean())) < 0.002
        if severity == 1:  # no clipping within 6 sigma: the std is c itself
            assert abs(float(ours.std()) - c) < 0.01 * c


def test_shot_noise_variance_is_the_mean_over_the_scale(x):
    for severity, c in enumerate([60, 25, 12, 5, 3], start=1):
        level = torch.full((1, 3, 128, 128), 0.25)
        ours = corrupt(level, "shot_noise", severity, [severity], quantized=False)
        # min(Poisson(0.25 c) / c, 1): its exact mean and variance from scipy (variance ~ mean / c)
        from scipy.stats import poisson

        k = np.arange(0, 200)
        values, p = np.minimum(k / c, 1.0), poisson.pmf(k, 0.25 * c)
        mean = float((values * p).sum())
        var = float(((values - mean) ** 2 * p).sum())
        assert abs(float(ours.mean()) - mean) < 5 * (var / ours.numel()) ** 0.5
        assert abs(float(ours.var()) - var) < 0.03 * var
        np.random.seed(severity)
        ref = ic.shot_noise(np.asarray(x[0].permute(1, 2, 0).numpy() * 255), severity) / 255
        mine = corrupt(x[:1], "shot_noise", severity, [7], quantized=False)[0].permute(1, 2, 0).numpy()
        clean = x[0].permute(1, 2, 0).numpy()
        assert abs(np.abs(mine - clean).mean() - np.abs(ref - clean).mean()) < 0.02 * np.abs(ref - clean).mean()


def test_impulse_noise_flips_the_reference_rate_half_to_each_extreme():
    grey = torch.full((1, 3, 224, 224), 128 / 255)
    for severity, c in enumerate([.03, .06, .09, 0.17, 0.27], start=1):
        ours = corrupt(grey, "impulse_noise", severity, [severity])
        n = ours.numel()
        salt, pepper = int((ours == 1).sum()), int((ours == 0).sum())
        assert int((ours == grey).sum()) + salt + pepper == n  # every value is kept or flipped
        assert abs((salt + pepper) / n - c) < 5 * (c * (1 - c) / n) ** 0.5
        assert abs(salt - pepper) < 5 * (n * c) ** 0.5
        np.random.seed(severity)
        ref = ic.impulse_noise(np.full((224, 224, 3), 127.5), severity) / 255
        assert abs(np.isin(ref, (0.0, 1.0)).mean() - (salt + pepper) / n) < 0.01


def reference_loop(image: np.ndarray, delta: int, offsets: np.ndarray) -> np.ndarray:
    """The reference's loop verbatim (tuple "swap" of numpy views), offsets (2, H, W) as (dx, dy)."""
    x = image.copy()
    for h in range(x.shape[0] - delta, delta, -1):
        for w in range(x.shape[1] - delta, delta, -1):
            dx, dy = offsets[:, h, w]
            h_prime, w_prime = h + dy, w + dx
            x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return x


def test_local_shuffle_equals_the_reference_loop():
    gen = torch.Generator().manual_seed(0)
    for delta in (1, 2, 4):
        x = torch.randint(0, 256, (2, 3, 30, 27), generator=gen).float()
        offsets = torch.randint(-delta, delta, (2, 2, 30, 27), generator=gen)
        ours = ops.local_shuffle(x, delta, offsets)
        for k in range(2):
            ref = reference_loop(x[k].permute(1, 2, 0).numpy(), delta, offsets[k].numpy())
            assert np.array_equal(ours[k].permute(1, 2, 0).numpy(), ref), delta
    assert torch.equal(ops.local_shuffle(x, 4, torch.zeros_like(offsets)), x)


def test_glass_blur_matches_the_reference_given_its_draws(x):
    """64 x 64 crops (the reference's loop is slow); its randint draws, in its loop order, fed to ours."""
    crop = x[:2, :, 80:144, 80:144]
    for severity in (1, 3, 5):
        sigma, delta, iterations = [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)][severity - 1]
        refs, ours = [], []
        for k in range(2):
            np.random.seed(10 * severity + k)
            offsets = torch.zeros(iterations, 2, 64, 64, dtype=torch.long)
            for i in range(iterations):
                for h in range(64 - delta, delta, -1):
                    for w in range(64 - delta, delta, -1):
                        offsets[i, :, h, w] = torch.from_numpy(np.random.randint(-delta, delta, size=(2,)))
            np.random.seed(10 * severity + k)
            image = np.round(crop[k].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            refs.append(np.uint8(ic.glass_blur(image, severity)))
            y = torch.floor(ops.gaussian_filter(crop[k:k + 1], sigma) * 255) / 255
            for i in range(iterations):
                y = ops.local_shuffle(y, delta, offsets[i:i + 1])
            ours.append(np.round(ops.quantize(ops.gaussian_filter(y, sigma))[0].permute(1, 2, 0).numpy() * 255))
        diff = np.abs(np.stack(refs).astype(np.int64) - np.stack(ours).astype(np.int64))
        assert diff.mean() <= 0.06 and diff.max() <= 1, (severity, diff.mean(), diff.max())


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_batch_corrupts_as_its_images_one_by_one(x, name):
    seeds = [sample_seed(5, p, name, 3) for p in range(4)]
    batch = corrupt(x, name, 3, seeds)
    alone = torch.cat([corrupt(x[i:i + 1], name, 3, seeds[i:i + 1]) for i in range(4)])
    assert torch.equal(batch, alone)
    assert torch.equal(corrupt(x, name, 3, seeds), batch)  # the same seeds, the same pixels
    if CORRUPTIONS[name].random:
        other = corrupt(x, name, 3, [s + 1 for s in seeds])
        assert not torch.equal(other, batch)
    assert batch.shape == x.shape and float(batch.min()) >= 0 and float(batch.max()) <= 1


def test_seeds_depend_on_position_corruption_and_severity_only():
    seeds = {sample_seed(0, p, n, s) for p in range(50) for n in CORRUPTIONS for s in range(1, 6)}
    assert len(seeds) == 50 * 25 * 5  # ImageNet-C's 15 and ImageNet-C-bar's 10


def test_names_families_and_severities_parse():
    assert parse_corruptions("all") == IMAGENET_C and len(IMAGENET_C) == 15
    assert parse_corruptions("c-bar") == C_BAR and len(C_BAR) == 10
    assert parse_corruptions("all,c-bar") == tuple(CORRUPTIONS) == IMAGENET_C + C_BAR
    assert parse_corruptions("weather") == ("snow", "frost", "fog", "brightness")
    assert parse_corruptions("jpeg,noise") == ("gaussian_noise", "shot_noise", "impulse_noise", "jpeg_compression")
    assert parse_severities("1-5") == (1, 2, 3, 4, 5) and parse_severities("5,1") == (1, 5)
    for bad in ("rain", ""):
        with pytest.raises(UsageError):
            parse_corruptions(bad)
    for bad in ("0-3", "6", "a-b"):
        with pytest.raises(UsageError):
            parse_severities(bad)
