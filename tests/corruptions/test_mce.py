"""ImageNet-C's official mCE and relative mCE beside mean accuracy, and `--jpeg-roundtrip`: the constants
against the published per-corruption means, the formulas against a hand computation, the JPEG step against
a plain PIL loop, and the CLI."""
from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import torch

import tinymodels
from imagenet_shaped import wide_classifier
from nnprobe.imagenet_c import IMAGENET_C, corrupt, sample_seed
from nnprobe.imagenet_c.mce import ALEXNET_CLEAN_ERROR, ALEXNET_ERRORS
from nnprobe.imagenet_c.sweep import corruption_sweep

# AlexNet's top-1 error per corruption averaged over severities 1-5: the constants every mCE script
# carries (REFERENCE.md; mmcls, timm), independent of the per-severity table in nnprobe.imagenet_c.mce
PUBLISHED_MEANS = {
    "gaussian_noise": 0.886428, "shot_noise": 0.894468, "impulse_noise": 0.922640, "defocus_blur": 0.819880,
    "glass_blur": 0.826268, "motion_blur": 0.785948, "zoom_blur": 0.798360, "snow": 0.866816, "frost": 0.826572,
    "fog": 0.819324, "brightness": 0.564592, "contrast": 0.853204, "elastic_transform": 0.646056,
    "pixelate": 0.717840, "jpeg_compression": 0.606500}


@pytest.fixture(scope="module")
def data():
    x, y = tinymodels.make_data(8, seed=5)
    return (x * 255).round().to(torch.uint8), y


def test_alexnet_table_matches_the_published_means():
    assert list(ALEXNET_ERRORS) == list(IMAGENET_C)
    for name, errors in ALEXNET_ERRORS.items():
        assert sum(errors) / 5 == pytest.approx(PUBLISHED_MEANS[name], abs=1e-6)
    assert ALEXNET_CLEAN_ERROR == pytest.approx(0.4345)


def test_mce_and_relative_mce_equal_the_hand_formula(data):
    pixels, labels = data
    result = corruption_sweep(wide_classifier(), [(pixels, labels)], seed=1, device="cpu")
    clean_error = 1 - result.clean.top1
    ce, rel = {}, {}
    for name in IMAGENET_C:
        errors = [1 - result.top1(name, s) for s in range(1, 6)]
        ce[name] = (sum(errors) / 5) / PUBLISHED_MEANS[name]
        rel[name] = sum(e - clean_error for e in errors) / sum(a - ALEXNET_CLEAN_ERROR for a in ALEXNET_ERRORS[name])
    assert result.corruption_error == pytest.approx(ce)
    assert result.mce == pytest.approx(sum(ce.values()) / 15)
    assert result.relative_mce == pytest.approx(sum(rel.values()) / 15)
    body = json.loads(json.dumps(result.to_dict()))
    assert body["mce"] == pytest.approx(result.mce) and body["relative_mce"] == pytest.approx(result.relative_mce)
    assert body["corruption_error"] == pytest.approx(ce) and body["mean_corruption_top1"] is not None
    assert body["settings"]["jpeg_roundtrip"] is None


def test_mce_needs_all_15_corruptions_and_imagenet_classes(data):
    pixels, labels = data
    partial = corruption_sweep(wide_classifier(), [(pixels, labels)], corruptions="noise", severities="1,3",
                               device="cpu")
    assert set(partial.corruption_error) == {"gaussian_noise", "shot_noise", "impulse_noise"}
    assert partial.mce is None and partial.relative_mce is None
    e = [1 - partial.top1("shot_noise", s) for s in (1, 3)]
    assert partial.corruption_error["shot_noise"] == pytest.approx(sum(e) / (0.71224 + 0.93574))
    small = corruption_sweep(tinymodels.tiny_classifier(), [(pixels, labels)], corruptions="noise", device="cpu")
    assert small.corruption_error is None and small.mce is None and small.to_dict()["mce"] is None


def plain_jpeg(x: torch.Tensor) -> torch.Tensor:
    """The generation code's step: np.uint8 of the 0-255 image, PIL JPEG quality 85 optimize, decoded."""
    from PIL import Image

    out = []
    for image in x:
        array = np.uint8(np.floor(image.permute(1, 2, 0).double().numpy() * 255 + 1e-4))
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=85, optimize=True)
        out.append(torch.from_numpy(np.array(Image.open(io.BytesIO(buffer.getvalue())))).permute(2, 0, 1))
    return torch.stack(out).float() / 255


def test_jpeg_roundtrip_equals_a_plain_pil_loop(data):
    pixels, labels = data
    model = tinymodels.tiny_classifier()
    grid = [("gaussian_noise", 3), ("contrast", 5), ("pixelate", 2)]
    names = ",".join(n for n, _ in grid)
    result = corruption_sweep(model, [(pixels, labels)], corruptions=names, severities="2,3,5", seed=2,
                              device="cpu", jpeg_roundtrip=True)
    assert result.settings.jpeg_roundtrip == 85
    moved = []
    for name in names.split(","):
        for severity in (2, 3, 5):
            x = corrupt(pixels.float() / 255, name, severity, [sample_seed(2, i, name, severity) for i in range(8)])
            decoded = plain_jpeg(x)
            moved.append(float((decoded - x).abs().mean()) * 255)
            with torch.no_grad():
                right = int((model(decoded).argmax(1) == labels).sum())
            assert next(p.correct_top1 for p in result.points if (p.corruption, p.severity) == (name, severity)) \
                == right
    # the JPEG step moves every corrupted image: a grey level or two for contrast and pixelate, far more
    # for pixel noise (JPEG smooths it away: why in-memory noise numbers differ from the published files')
    assert 0 < min(moved) and max(moved[3:]) < 5 and min(moved[:3]) > 10
    from nnprobe.errors import UsageError

    with pytest.raises(UsageError, match="quality"):
        corruption_sweep(model, [(pixels, labels)], corruptions="noise", jpeg_roundtrip=0)


def test_cli_jpeg_roundtrip_and_mce_line(tmp_path, invoke):
    folder = tmp_path / "data"
    tinymodels.save_class_folders(folder, 8, seed=3)
    tiny = f"{os.path.join(os.path.dirname(tinymodels.__file__), 'tinymodels.py')}:tiny_classifier"
    proc = invoke("robust", str(folder), "--model", tiny, "--corruptions", "noise", "--severity", "1",
                  "--jpeg-roundtrip", "--workers", "0", "--device", "cpu", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["settings"]["jpeg_roundtrip"] == 85
    table = invoke("robust", str(folder), "--model", tiny, "--corruptions", "noise", "--severity", "1",
                   "--workers", "0", "--device", "cpu")
    assert "mCE: not given" in table.stdout
    refused = invoke("robust", str(folder), "--model", tiny, "--jpeg-roundtrip")
    assert refused.returncode == 2 and "--corruptions" in refused.stderr and "Traceback" not in refused.stderr
