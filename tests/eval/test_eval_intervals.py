"""evaluate() carries an interval on every number: the counts' exact intervals against scipy, the suite
against the same numbers computed here from a plain loop's logits, and every renderer shows them."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import make_wnid_folders
from scipy import stats
from torchmetrics.functional.classification import binary_calibration_error

from nnprobe.data.layouts import find_images
from nnprobe.errors import UsageError
from nnprobe.evaluation import evaluate
from nnprobe.report.markdown import render_markdown
from nnprobe.results import EvalResult, from_jsonable


def _exact(k, n, level=0.95):
    ci = stats.binomtest(k, n).proportion_ci(level, method="exact")
    return ci.low, ci.high


@pytest.fixture(scope="module")
def run(tmp_path_factory, color_classifier_module):
    root = tmp_path_factory.mktemp("iv")
    make_wnid_folders(root, {5: 4, 350: 3, 998: 4}, wrong={5: 2, 998: 1})
    clf = color_classifier_module
    images = find_images(str(root), class_names=clf.class_names, wnids=clf.wnids, num_classes=clf.num_classes)
    result = evaluate(clf, images, device="cpu", workers=0, batch_size=4, confidence=0.9, bootstrap_resamples=200,
                      seed=7, setup_checks=False)
    return clf, images, result


@pytest.fixture(scope="module")
def color_classifier_module():
    from helpers import PLAIN, TESTS

    from nnprobe.models import load_classifier

    return load_classifier(f"{TESTS / 'tiny_models.py'}:color_net_1000", **PLAIN)


def test_count_intervals_are_exact_at_the_asked_level(run):
    _, _, result = run
    assert (result.correct_top1, result.total) == (11, 14)
    body = result.to_dict()
    assert body["confidence_level"] == 0.9
    lo, hi = _exact(11, 14, 0.9)
    assert body["top1_interval"]["lo"] == pytest.approx(lo, abs=1e-10)
    assert body["top1_interval"]["hi"] == pytest.approx(hi, abs=1e-10)
    assert body["top1_interval"]["value"] == body["top1"] and body["top1_interval"]["method"] == "clopper-pearson"
    for pc in body["per_class"]:
        lo, hi = _exact(pc["correct_top1"], pc["total"], 0.9) if pc["total"] else (None, None)
        assert pc["top1_interval"]["lo"] == (pytest.approx(lo, abs=1e-10) if lo is not None else None)
        assert pc["top1_interval"]["hi"] == (pytest.approx(hi, abs=1e-10) if hi is not None else None)
    json.dumps(body, allow_nan=False)


def _logits_by_loop(clf, images):
    """The model's logits image by image through torchvision's own transforms (no nnprobe loader)."""
    from PIL import Image
    from torchvision import transforms

    pre = clf.preprocessing
    tf = transforms.Compose([transforms.Resize(pre.resize_size, antialias=True), transforms.CenterCrop(pre.crop_size),
                             transforms.ToTensor()])
    rows, labels = [], []
    with torch.no_grad():
        for path, label in images.samples:
            rows.append(clf(tf(Image.open(path).convert("RGB"))[None])[0])
            labels.append(label)
    return torch.stack(rows), torch.tensor(labels)


def test_suite_equals_a_plain_loop_over_the_logits(run):
    clf, images, result = run
    logits, labels = _logits_by_loop(clf, images)
    p = logits.softmax(1)
    suite = result.calibration_suite
    classwise = np.mean([float(binary_calibration_error(p[:, k].contiguous(), (labels == k).long(), n_bins=15))
                         for k in range(p.shape[1])])
    assert suite.classwise_ece == pytest.approx(classwise, abs=1e-6)
    nll = torch.nn.functional.cross_entropy(logits, labels).item()
    assert suite.nll.value == pytest.approx(nll, abs=1e-5)
    assert suite.nll.lo <= suite.nll.value <= suite.nll.hi
    assert "200 resamples, seed 7" in suite.nll.method and suite.confidence_level == 0.9
    assert suite.temperature is not None


def test_renderers_show_the_intervals(run):
    _, _, result = run
    lo, hi = _exact(11, 14, 0.9)
    text = render_markdown(result)
    assert f"{100 * lo:.2f}% – {100 * hi:.2f}%" in text
    assert "intervals: 90%, exact Clopper-Pearson on counts; bootstrap-percentile (200 resamples, seed 7)" in text
    for name in ("ECE equal-mass", "MCE / RMSCE", "class-wise ECE", "smooth ECE", "AURC", "fitted temperature"):
        assert name in text


def test_the_suite_survives_a_json_round_trip(run):
    _, _, result = run
    back = from_jsonable(EvalResult, json.loads(json.dumps(result.to_dict())))
    assert back.calibration_suite == result.calibration_suite
    assert back.top1_interval == result.top1_interval


def test_bad_confidence_is_refused_before_any_image(tmp_path, color_classifier_module):
    clf = color_classifier_module
    make_wnid_folders(tmp_path, {5: 1})
    images = find_images(str(tmp_path), class_names=clf.class_names, wnids=clf.wnids, num_classes=clf.num_classes)
    with pytest.raises(UsageError, match="--confidence"):
        evaluate(clf, images, device="cpu", workers=0, confidence=1.0)
    with pytest.raises(UsageError, match="resamples"):
        evaluate(clf, images, device="cpu", workers=0, bootstrap_resamples=3)
