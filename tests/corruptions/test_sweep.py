"""The corruption sweep: its counts equal a plain loop that corrupts and classifies image by image, at
any batch size and from a folder as from tensors; the result's JSON, gate, table, JUnit and plot; the CLI's
exit codes."""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

import pytest
import torch

import tinymodels
from nnprobe.imagenet_c import IMAGENET_C, corrupt, sample_seed
from nnprobe.imagenet_c.sweep import corruption_sweep
from nnprobe.data.layouts import find_images
from nnprobe.errors import UsageError

TINY = f"{os.path.join(os.path.dirname(tinymodels.__file__), 'tinymodels.py')}:tiny_classifier"
GRID = [(n, s) for n in IMAGENET_C for s in (1, 3, 5)]


@pytest.fixture(scope="module")
def data():
    x, y = tinymodels.make_data(20, seed=5)
    return (x * 255).round().to(torch.uint8), y


def plain_counts(model, pixels, labels, seed: int, grid=GRID) -> list[tuple[int, int, int]]:
    """Each image alone: corrupted with its own seed, classified, counted (top-1, top-5, total)."""
    rows = []
    for name, severity in [(None, 0), *grid]:
        right1 = right5 = 0
        for i in range(len(labels)):
            x = pixels[i:i + 1].float() / 255
            if name is not None:
                x = corrupt(x, name, severity, [sample_seed(seed, i, name, severity)])
            with torch.no_grad():
                top = model(x).topk(min(5, model.num_classes), dim=1).indices[0].tolist()
            right1 += top[0] == int(labels[i])
            right5 += int(labels[i]) in top
        rows.append((right1, right5, len(labels)))
    return rows


def test_sweep_counts_equal_a_plain_loop_at_any_batch_size(data):
    pixels, labels = data
    model = tinymodels.tiny_classifier()
    expected = plain_counts(model, pixels, labels, seed=3)
    severities = (1, 3, 5)
    for size in (20, 7):
        batches = [(pixels[i:i + size], labels[i:i + size]) for i in range(0, 20, size)]
        result = corruption_sweep(model, batches, severities=severities, seed=3, device="cpu")
        got = [(result.clean.correct_top1, result.clean.correct_top5, result.clean.total)]
        got += [(p.correct_top1, p.correct_top5, p.total) for p in result.points]
        assert got == expected, size
    assert [(p.corruption, p.severity) for p in result.points] == GRID
    assert expected[0][0] == 20 and min(r[0] for r in expected) < 20  # corruptions do cost accuracy here
    means = {n: sum(expected[1 + 3 * k + j][0] for j in range(3)) / 60 for k, n in enumerate(IMAGENET_C)}
    assert result.per_corruption == pytest.approx(means)
    assert result.mean_corruption_top1 == pytest.approx(sum(means.values()) / 15)
    assert result.relative_drop == pytest.approx(1 - result.mean_corruption_top1)


def test_folder_data_equals_the_same_tensors_and_gates(tmp_path):
    model = tinymodels.tiny_classifier()
    pixels, labels = tinymodels.save_class_folders(tmp_path / "data", 12, seed=4)
    images = find_images(str(tmp_path / "data"), class_names=model.class_names, wnids=None,
                         num_classes=model.num_classes)
    options = dict(corruptions="noise,fog,jpeg", severities="2-3", seed=1, device="cpu")
    from_folder = corruption_sweep(model, images, batch_size=5, workers=0, min_corruption_top1=0.0, **options)
    from_tensors = corruption_sweep(model, [(pixels, labels)], **options)
    assert from_folder.points == from_tensors.points and from_folder.clean == from_tensors.clean
    assert from_folder.data["images_found"] == 12 and from_folder.passed
    failing = corruption_sweep(model, [(pixels, labels)], min_corruption_top1=1.0, **options)
    assert not failing.passed and failing.gates[0].measured == failing.mean_corruption_top1
    body = failing.to_dict()
    assert body["kind"] == "corruption" and body["schema_version"] == 1 and body["passed"] is False
    assert [(p["corruption"], p["severity"]) for p in body["points"]] == [
        (n, s) for n in ("gaussian_noise", "shot_noise", "impulse_noise", "fog", "jpeg_compression") for s in (2, 3)]
    assert body["points"][0]["top1"] == body["points"][0]["correct_top1"] / 12
    assert body["mean_corruption_top1"] == failing.mean_corruption_top1
    json.dumps(body, allow_nan=False)


def test_bad_spellings_are_usage_errors(data):
    model = tinymodels.tiny_classifier()
    for options in (dict(corruptions="rain"), dict(severities="0-9")):
        with pytest.raises(UsageError):
            corruption_sweep(model, [data], device="cpu", **options)


@pytest.fixture
def folder(tmp_path):
    tinymodels.save_class_folders(tmp_path / "data", 8, seed=3)
    return tmp_path / "data"


def args(folder, *extra):
    return ["robust", str(folder), "--model", TINY, "--workers", "0", "--device", "cpu",
            "--corruptions", "contrast,pixelate", "--severity", "1,5", *extra]


def test_cli_json_plot_and_gate_exit_codes(folder, tmp_path, invoke):
    plot = tmp_path / "grid.png"
    ok = invoke(*args(folder, "--format", "json", "--plot", str(plot), "--min-corruption-top1", "0"))
    assert ok.returncode == 0, ok.stderr
    body = json.loads(ok.stdout)
    assert body["kind"] == "corruption" and len(body["points"]) == 4 and body["clean"]["total"] == 8
    assert body["gates"][0]["name"] == "min-corruption-top1" and body["plot"] == str(plot)
    assert open(plot, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    failing = invoke(*args(folder, "--min-corruption-top1", "1.01"))
    assert failing.returncode == 2  # not a fraction
    failing = invoke(*args(folder, "--min-corruption-top1", "1.0"))
    assert failing.returncode == 1 and "FAIL min-corruption-top1" in failing.stdout
    assert "contrast" in failing.stdout and "mean corruption top-1" in failing.stdout
    junit = invoke(*args(folder, "--format", "junit", "--min-corruption-top1", "1.0"))
    assert junit.returncode == 1
    case = ET.fromstring(junit.stdout).find(".//testcase")
    assert case.get("name") == "min-corruption-top1" and case.find("failure") is not None


@pytest.mark.parametrize("extra", [["--eps", "0,1/255"], ["--attack", "fgsm"], ["--corruptions", "rain"],
                                   ["--severity", "7"]])
def test_cli_refuses_mixing_with_an_attack_and_bad_names(folder, invoke, extra):
    proc = invoke(*args(folder, *extra))
    assert proc.returncode == 2 and proc.stderr.strip(), proc.stderr


def test_cli_gate_without_corruptions_is_refused(folder, invoke):
    proc = invoke("robust", str(folder), "--model", TINY, "--workers", "0", "--min-corruption-top1", "0.5")
    assert proc.returncode == 2 and "--corruptions" in proc.stderr
