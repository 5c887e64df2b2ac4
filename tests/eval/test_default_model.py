"""The embedded default (EfficientNet-Lite0, offline) on the bundled sample photos.

samples/imagenet holds four photos from scikit-image's data (CC0 / public domain), labelled with the
ImageNet class a person would pick: coffee.jpg espresso (967), rocket.jpg missile (657), camera.png tripod
(872, a grayscale photo), cat.jpg tabby (281). The model's top-1 for the cat is "tiger cat" (282), with
tabby third: 3/4 top-1 and 4/4 top-5, measured, not chosen.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nnprobe.data.layouts import find_images
from nnprobe.evaluation import evaluate
from nnprobe.models import load_classifier

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "imagenet"


def test_default_model_on_bundled_samples():
    clf = load_classifier()
    assert clf.info.source == "default" and clf.num_classes == 1000
    images = find_images(str(SAMPLES), class_names=clf.class_names, wnids=clf.wnids, num_classes=1000)
    result = evaluate(clf, images, device="cpu", workers=0)
    assert (result.correct_top1, result.correct_top5, result.total) == (3, 4, 4)
    assert result.converted == 1  # camera.png is grayscale
    assert {pc.index: pc.correct_top1 for pc in result.per_class if pc.total} == {281: 0, 657: 1, 872: 1, 967: 1}
    assert {pc.index: pc.predicted for pc in result.per_class if pc.predicted} == {282: 1, 657: 1, 872: 1, 967: 1}


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _bundled(device, precision="fp32", **kwargs):
    clf = load_classifier()
    images = find_images(str(SAMPLES), class_names=clf.class_names, wnids=clf.wnids, num_classes=1000)
    return evaluate(clf, images, device=device, workers=0, precision=precision, **kwargs)


def test_bf16_eval_really_runs_under_autocast():
    """bf16 must change the numbers a little: a bf16 run equal to fp32 would mean autocast never ran.
    Measured (torch 2.14.1, CPU): mean loss 0.78158 fp32, 0.76801 bf16 (difference 0.0136), counts equal.
    bf16 keeps 8 significant bits (about 0.4% per rounding), so a difference above 0.05 on a loss of 0.78
    would be more than rounding."""
    fp32, bf16, again = _bundled("cpu"), _bundled("cpu", "bf16"), _bundled("cpu")
    assert again.mean_loss == fp32.mean_loss  # fp32 on the CPU repeats exactly: the difference is not noise
    assert 1e-4 < abs(bf16.mean_loss - fp32.mean_loss) < 0.05, (fp32.mean_loss, bf16.mean_loss)
    assert (bf16.correct_top1, bf16.correct_top5, bf16.total) == (fp32.correct_top1, fp32.correct_top5, 4)
    assert bf16.run.precision == "bf16"


@CUDA
def test_cuda_eval_matches_cpu_counts_with_and_without_channels_last():
    """On CUDA, channels_last is the default: same counts as the CPU, loss within float rounding."""
    cpu = _bundled("cpu")
    for channels_last in (None, False):
        gpu = _bundled("cuda", channels_last=channels_last)
        assert (gpu.correct_top1, gpu.correct_top5, gpu.total) == (cpu.correct_top1, cpu.correct_top5, cpu.total)
        assert abs(gpu.mean_loss - cpu.mean_loss) < 1e-3, (channels_last, gpu.mean_loss, cpu.mean_loss)
    assert gpu.run.versions.get("gpu") and gpu.run.device.startswith("cuda")


@CUDA
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_eval_on_cuda_runs_under_autocast(precision):
    """fp16 exists only on a GPU: counts as fp32, mean loss moved by rounding only (not measured on a GPU
    yet: the bound is the CPU bf16 one, 0.05)."""
    fp32, half = _bundled("cuda"), _bundled("cuda", precision)
    assert 0 < abs(half.mean_loss - fp32.mean_loss) < 0.05, (fp32.mean_loss, half.mean_loss)
    assert (half.correct_top1, half.correct_top5, half.total) == (fp32.correct_top1, fp32.correct_top5, 4)
    assert half.run.precision == precision
