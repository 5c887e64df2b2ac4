"""NaN/Inf logits are never turned into an accuracy; impossible numbers are refused by the library itself."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "attacks"))
import tinymodels  # noqa: E402

from nnprobe.attacks.robustness import robust  # noqa: E402
from nnprobe.data.layouts import find_images  # noqa: E402
from nnprobe.errors import NnprobeError, UsageError  # noqa: E402
from nnprobe.evaluation import evaluate  # noqa: E402


def data_of(root: Path, bright: int = 0):
    """8 striped images in class{k}/ folders, plus `bright` near-white ones in class0/."""
    tinymodels.save_class_folders(root, 8, seed=3)
    for i in range(bright):
        Image.new("RGB", (16, 16), (250, 250, 250)).save(root / "class0" / f"white{i}.png")
    return find_images(str(root), class_names=[f"class{i}" for i in range(4)], wnids=None, num_classes=4)


def test_nan_logits_are_an_error_not_an_accuracy(tmp_path):
    with pytest.raises(NnprobeError, match="NaN or infinite logits for 8 of 8 images, so no accuracy"):
        evaluate(tinymodels.nan_classifier(), data_of(tmp_path), device="cpu", workers=0)


def test_inf_on_some_images_is_counted_exactly(tmp_path):
    images = data_of(tmp_path, bright=3)
    with pytest.raises(NnprobeError, match="for 3 of 11 images"):
        evaluate(tinymodels.inf_on_bright_classifier(), images, device="cpu", workers=0, batch_size=4)
    with pytest.raises(NnprobeError, match="for 3 of 11 images, so no robust accuracy"):
        robust(tinymodels.inf_on_bright_classifier(), images, eps="0,2/255", device="cpu", workers=0)


def test_finite_model_numbers_are_unchanged_by_the_check(tmp_path):
    images = data_of(tmp_path)
    result = evaluate(tinymodels.tiny_classifier(), images, device="cpu", workers=0)
    assert result.total == 8 and 0 <= result.correct_top1 <= 8


def test_autocast_overflow_is_named(tmp_path):
    images = data_of(tmp_path)
    with pytest.raises(NnprobeError, match="--precision bf16 runs under autocast, which can overflow to Inf"):
        evaluate(tinymodels.half_overflow_classifier(), images, device="cpu", workers=0, precision="bf16")
    with pytest.raises(NnprobeError, match="--precision bf16 runs under autocast"):
        robust(tinymodels.half_overflow_classifier(), images, eps="0", device="cpu", workers=0, precision="bf16")
    assert evaluate(tinymodels.half_overflow_classifier(), images, device="cpu", workers=0).total == 8


def test_nan_in_robust_on_tensors(tmp_path):
    x, y = tinymodels.make_data(6, seed=1)
    with pytest.raises(NnprobeError, match="for 6 of 6 images"):
        robust(tinymodels.nan_classifier(), [(x, y)], eps="0,1/255", device="cpu")


@pytest.mark.parametrize("option, value, message", [
    ("workers", -1, "--workers must be 0 or more"), ("workers", 1.5, "--workers"),
    ("batch_size", 0, "--batch-size must be a positive"), ("batch_size", -3, "--batch-size"),
])
def test_impossible_numbers_are_usage_errors(tmp_path, option, value, message):
    images = data_of(tmp_path)
    with pytest.raises(UsageError, match=message):
        evaluate(tinymodels.tiny_classifier(), images, device="cpu", **{"workers": 0, option: value})
    with pytest.raises(UsageError, match=message):
        robust(tinymodels.tiny_classifier(), images, device="cpu", **{"workers": 0, option: value})


@pytest.mark.parametrize("seed", [-1, 2**63, 0.5])
def test_impossible_seed(tmp_path, seed):
    with pytest.raises(UsageError, match="--seed"):
        robust(tinymodels.tiny_classifier(), data_of(tmp_path), device="cpu", workers=0, seed=seed)


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
def test_impossible_limit(tmp_path, limit):
    with pytest.raises(UsageError, match="--limit"):
        data_of(tmp_path).limited(limit)

