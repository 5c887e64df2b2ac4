"""The embedded default (EfficientNet-Lite0, offline) on the bundled sample photos.

samples/imagenet holds four photos from scikit-image's data (CC0 / public domain), labelled with the
ImageNet class a person would pick: coffee.jpg espresso (967), rocket.jpg missile (657), camera.png tripod
(872, a grayscale photo), cat.jpg tabby (281). The model's top-1 for the cat is "tiger cat" (282), with
tabby third: 3/4 top-1 and 4/4 top-5, measured, not chosen.
"""
from __future__ import annotations

from pathlib import Path

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
