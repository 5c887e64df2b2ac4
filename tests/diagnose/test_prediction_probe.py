"""diagnose --model --data: a constant predictor is measured directly on images (error); a working
model gives an info finding with the measurement and no error."""
from __future__ import annotations

import json
from pathlib import Path

from helpers import PLAIN, factory_spec, make_wnid_folders, solid_image
from tiny_models import class_color

from nnprobe.data.layouts import find_images
from nnprobe.diagnosis.prediction_probe import prediction_findings
from nnprobe.evaluation import evaluate
from nnprobe.models import load_classifier
from nnprobe.models.imagenet import imagenet_wnids

HEALTHY_RUN = Path(__file__).resolve().parents[2] / "samples" / "runs" / "healthy"


def _result(root):
    clf = load_classifier(factory_spec("color_net_1000"), **PLAIN)
    images = find_images(str(root), class_names=clf.class_names, wnids=clf.wnids, num_classes=1000)
    return evaluate(clf, images, device="cpu", workers=0)


def test_constant_predictor_is_an_error(tmp_path):
    wn = imagenet_wnids()
    for k in (10, 20, 30, 40):
        for i in range(3):
            solid_image(tmp_path / wn[k] / f"{i}.png", class_color(777))  # the model answers 777 for all
    [finding] = prediction_findings(_result(tmp_path), run="probe")
    assert (finding.id, finding.severity) == ("prediction-spread", "error")
    assert finding.evidence["most_predicted"] == 777 and finding.evidence["most_predicted_share"] == 1.0
    assert finding.evidence["distinct_predicted"] == 1 and finding.evidence["label_majority_share"] == 0.25


def test_concentrated_predictions_warn(tmp_path):
    wn = imagenet_wnids()
    for k in (10, 20, 30, 40, 50, 60):
        solid_image(tmp_path / wn[k] / "a.png", class_color(k))
        solid_image(tmp_path / wn[k] / "b.png", class_color(777))  # half of all answers are 777
    [finding] = prediction_findings(_result(tmp_path), run="probe")
    assert finding.severity == "warning" and finding.evidence["most_predicted_share"] == 0.5


def test_working_model_gives_info(tmp_path):
    make_wnid_folders(tmp_path, {10: 2, 20: 2, 30: 2})
    [finding] = prediction_findings(_result(tmp_path), run="probe")
    assert finding.severity == "info" and finding.evidence["distinct_predicted"] == 3


def test_cli_model_probe_on_a_healthy_run(tmp_path, invoke):
    data = make_wnid_folders(tmp_path / "data", {10: 2, 20: 2})
    proc = invoke("diagnose", str(HEALTHY_RUN), "--model", factory_spec("color_classifier_1000"), "--data", str(data),
                  "--format", "json")
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    probe = [f for f in body["findings"] if f["id"] == "prediction-spread"]
    assert len(probe) == 1 and probe[0]["severity"] == "info"
    assert probe[0]["evidence"]["distinct_predicted"] == 2


def test_cli_model_probe_constant_exits_1(tmp_path, invoke):
    wn = imagenet_wnids()
    for k in (10, 20):
        solid_image(tmp_path / "data" / wn[k] / "a.png", class_color(5))
    proc = invoke("diagnose", str(HEALTHY_RUN), "--model", factory_spec("color_classifier_1000"), "--data",
                  str(tmp_path / "data"), "--format", "json")
    assert proc.returncode == 1
    assert [f["severity"] for f in json.loads(proc.stdout)["findings"] if f["id"] == "prediction-spread"] == ["error"]


def test_cli_model_without_data_is_usage_error(invoke):
    proc = invoke("diagnose", str(HEALTHY_RUN), "--model", "resnet18")
    assert proc.returncode == 2 and "--model and --data go together" in proc.stderr
