"""ImageNet-C-bar: each op against a plain-loop numpy port of the reference (cbar_reference.py) given the same
random parameters, at every published level, even and odd sizes; the samplers' draws in distribution against
numpy's (the spectral noise fields by their histograms, the rest by how far they move the pixels); the
`c-bar` set in the sweep, its JSON and its table."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from rich.console import Console

import cbar_reference as port
import tinymodels
from nnprobe.errors import UsageError
from nnprobe.imagenet_c import C_BAR, CORRUPTIONS, corrupt, function, sample_seed
from nnprobe.imagenet_c.cbar import LEVELS
from nnprobe.imagenet_c.sweep import corruption_sweep

PUBLISHED = {  # imagenet_c_bar.csv of facebookresearch/augmentation-corruption, typed in from the page
    "caustic_refraction": (2.35, 3.2, 4.9, 6.6, 9.15), "inverse_sparkles": (1.0, 2.0, 4.0, 9.0, 10.0),
    "sparkles": (1.0, 2.0, 3.0, 5.0, 6.0), "perlin_noise": (4.6, 5.2, 5.8, 7.6, 8.8),
    "blue_noise_sample": (0.8, 1.6, 2.4, 4.0, 5.6), "plasma_noise": (4.75, 7.0, 8.5, 9.25, 10.0),
    "checkerboard_cutout": (2.0, 3.0, 4.0, 5.0, 6.0), "cocentric_sine_waves": (3.0, 5.0, 8.0, 9.0, 10.0),
    "single_frequency_greyscale": (1.0, 1.5, 2.0, 4.5, 5.0), "brownish_noise": (1.0, 2.0, 3.0, 4.0, 5.0),
}


def image(n: int, seed: int = 5) -> np.ndarray:
    return (np.random.RandomState(seed).rand(n, n, 3) * 255).astype(np.uint8)


def as_batch(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255


def as_uint8(x: torch.Tensor) -> np.ndarray:
    return torch.round(x[0].permute(1, 2, 0) * 255).to(torch.int64).numpy()


def torch_args(name: str, params) -> list:
    """numpy's draws as the `*_from` ops take them (a batch of one)."""
    if name == "checkerboard_cutout":
        angle, scale, grid = params
        return [torch.tensor([angle], dtype=torch.float64), torch.tensor([scale], dtype=torch.float64),
                [torch.from_numpy(grid)]]
    out = []
    for value in params:
        if value is None:
            out.append(None)
        elif isinstance(value, (int, np.integer)):
            out.append(torch.tensor([int(value)]))
        elif isinstance(value, float):
            out.append(torch.tensor([value], dtype=torch.float64))
        else:
            out.append(torch.from_numpy(np.array(value))[None])
    return out


def from_op(name: str):
    return function(name).__globals__[f"{name}_from"]


def test_the_registry_is_the_published_table():
    assert set(C_BAR) == set(PUBLISHED) == set(LEVELS)
    assert all(LEVELS[name] == PUBLISHED[name] for name in C_BAR)
    for name in C_BAR:
        assert CORRUPTIONS[name].family == "c-bar" and CORRUPTIONS[name].benchmark == "ImageNet-C-bar"
        assert callable(function(name)) and callable(from_op(name))


@pytest.mark.parametrize("name", C_BAR)
def test_each_op_equals_the_plain_loop_port_at_every_level(name):
    sizes = (20, 15) if name in ("blue_noise_sample", "brownish_noise", "checkerboard_cutout") else (20,)
    for n in sizes:
        pixels = image(n)
        for severity, level in enumerate(LEVELS[name], start=1):
            params = port.draw(name, level, n, np.random.RandomState(100 * severity + n))
            expected = getattr(port, name)(pixels, level, *params).astype(np.int64)
            ours = as_uint8(from_op(name)(as_batch(pixels), level, *torch_args(name, params)))
            diff = np.abs(ours - expected)
            assert diff.max() <= 1 and diff.mean() <= 0.01, (name, n, severity, diff.max(), diff.mean())
            assert (expected != pixels).any(), (name, severity)  # the corruption does change the image


def test_spectral_noise_fields_have_numpys_distribution():
    """The blue and brownish noise fields from torch's phase draws against numpy's, 200 fields of 32 x 32 each:
    per field its mean, largest value and kurtosis (independent samples, two-sample KS), each field unit-std;
    and the share of pixels blue noise keeps at each level, through the op, against the numpy port's."""
    from scipy.stats import kurtosis, ks_2samp

    from nnprobe.imagenet_c.cbar import _distance, _phases, _spectral_noise

    n, count = 32, 200
    gens = [torch.Generator().manual_seed(k) for k in range(count)]
    rng = np.random.RandomState(0)
    for power in (_distance(n, "cpu"), 1 / (_distance(n, "cpu") ** 2 + 1)):
        ours = _spectral_noise(power, *_phases(gens, n)).numpy().reshape(count, -1)
        theirs = np.stack([port._spectral(n, *port._phases(rng, n), power.numpy()).ravel() for _ in range(count)])
        assert np.allclose(ours.std(axis=1), 1) and np.allclose(theirs.std(axis=1), 1)
        for stat in (lambda f: f.mean(axis=1), lambda f: f.max(axis=1), lambda f: kurtosis(f, axis=1)):
            assert ks_2samp(stat(ours), stat(theirs)).pvalue > 0.001
    grey = np.full((n, n, 3), 128, np.uint8)
    for severity, level in enumerate(LEVELS["blue_noise_sample"], start=1):
        kept = corrupt(torch.full((8, 3, n, n), 1.0), "blue_noise_sample", severity, list(range(8))) > 0
        expected = np.mean([port.blue_noise_sample(grey, level, *port.draw("blue_noise_sample", level, n, rng)) > 0
                            for _ in range(8)])
        assert abs(float(kept.float().mean()) - expected) < 0.02, (severity, float(kept.float().mean()), expected)


@pytest.mark.parametrize("name", sorted(set(C_BAR) - {"brownish_noise", "blue_noise_sample"}))
def test_sampled_parameters_move_pixels_as_numpys_draws_do(name):
    """The samplers draw from the reference's ranges: the mean change they cause over 24 draws at severity 3,
    from torch's generators and from numpy's, agree within a fifth (a wrong range or scale is off by far more)."""
    n, count, level = 16, 24, LEVELS[name][2]
    pixels = image(n, seed=9)
    x = as_batch(pixels).expand(count, -1, -1, -1).contiguous()
    ours = float((torch.round(corrupt(x, name, 3, [sample_seed(2, p, name, 3) for p in range(count)]) * 255)
                  - torch.round(x * 255)).abs().mean())
    rng = np.random.RandomState(3)
    theirs = np.mean([np.abs(getattr(port, name)(pixels, level, *port.draw(name, level, n, rng)).astype(int)
                             - pixels.astype(int)).mean() for _ in range(count)])
    assert 0.8 < ours / theirs < 1.25, (ours, theirs)


def test_non_square_images_are_refused_in_one_sentence():
    with pytest.raises(UsageError, match="square"):
        corrupt(torch.zeros(1, 3, 16, 20), "sparkles", 1, [0])


def test_the_c_bar_set_sweeps_names_its_benchmark_and_equals_the_plain_loop(six_images):
    from test_sweep import plain_counts

    pixels, labels = six_images
    model = tinymodels.tiny_classifier()
    grid = [(n, s) for n in C_BAR for s in (2, 5)]
    result = corruption_sweep(model, [(pixels[:4], labels[:4]), (pixels[4:], labels[4:])], corruptions="c-bar",
                              severities="2,5", seed=3, device="cpu")
    got = [(result.clean.correct_top1, result.clean.correct_top5, result.clean.total)]
    got += [(p.correct_top1, p.correct_top5, p.total) for p in result.points]
    assert got == plain_counts(model, pixels, labels, seed=3, grid=grid)
    assert result.settings.benchmarks == ("ImageNet-C-bar",) and "Mintun" in result.settings.reference
    body = result.to_dict()
    assert body["settings"]["benchmarks"] == ["ImageNet-C-bar"] and body["mce"] is None
    assert {p["family"] for p in body["points"]} == {"c-bar"}
    console = Console(file=io.StringIO(), width=200)
    from nnprobe.report.corruption_table import render

    render(result, console)
    text = console.file.getvalue()
    assert "ImageNet-C-bar corruptions computed on the device" in text and "caustic_refraction" in text
    assert "no AlexNet errors are published for ImageNet-C-bar" in text
    both = corruption_sweep(model, [(pixels, labels)], corruptions="fog,sparkles", severities=1, device="cpu")
    assert both.settings.benchmarks == ("ImageNet-C", "ImageNet-C-bar")
    assert [p.family for p in both.points] == ["weather", "c-bar"]
