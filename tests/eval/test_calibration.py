"""Calibration (ECE, NLL, Brier), confused pairs, worst classes, their gates and ImageNet-ReaL top-1,
checked against plain-Python loops written from the papers' definitions and against torchmetrics."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from nnprobe import calibration as cal
from nnprobe.calibration import (Calibration, ConfusedPair, calibration, confused_pairs, real_labels, real_top1,
                                 worst_classes)
from nnprobe.errors import DataError, UsageError
from nnprobe.results import Gate, PerClass, class_gate, ece_gate, to_jsonable

# ---------------------------------------------------------------- independent references


def ece_loop(conf, correct, bins):
    """Guo et al. 2017, eq. 5, literally: bin m = (m/M, (m+1)/M], a confidence of 0 in bin 0."""
    n, ece, table = len(conf), 0.0, []
    for m in range(bins):
        lower, upper = m / bins, (m + 1) / bins
        members = [i for i in range(n) if lower < conf[i] <= upper or (m == 0 and conf[i] == 0.0)]
        table.append(members)
        if members:
            accuracy = sum(1.0 for i in members if correct[i]) / len(members)
            confidence = math.fsum(conf[i] for i in members) / len(members)
            ece += len(members) / n * abs(accuracy - confidence)
    return ece, table


def softmax_rows(logits):
    """Per-row softmax in plain Python floats (no numpy), as a list of lists."""
    rows = []
    for row in logits.tolist():
        top = max(row)
        exps = [math.exp(v - top) for v in row]
        total = math.fsum(exps)
        rows.append([e / total for e in exps])
    return rows


def random_run(seed, n, k):
    """Random logits with a label-dependent bump (accuracy neither 0 nor 1) and per-image answers."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(0, 1.5, (n, k)) * rng.uniform(0.2, 4.0, (n, 1))
    logits[np.arange(n), labels] += rng.uniform(0, 3 + math.log(k), n)
    return logits, labels


def answers(probs, labels):
    conf = [max(p) for p in probs]
    pred = [max(range(len(p)), key=p.__getitem__) for p in probs]
    correct = [p == y for p, y in zip(pred, labels.tolist())]
    nll = [-math.log(p[y]) for p, y in zip(probs, labels.tolist())]
    brier = [math.fsum((p[c] - (c == y)) ** 2 for c in range(len(p))) for p, y in zip(probs, labels.tolist())]
    return conf, correct, nll, brier


# ---------------------------------------------------------------- ECE, NLL, Brier


@pytest.mark.parametrize("seed,n,k", [(0, 1000, 10), (1, 997, 10), (2, 4099, 100), (3, 61, 3), (4, 2003, 1000)])
def test_matches_the_plain_loop_on_random_logits(seed, n, k):
    logits, labels = random_run(seed, n, k)
    conf, correct, nll, brier = answers(softmax_rows(logits), labels)
    result = calibration(np.array(conf), np.array(correct), np.array(nll), np.array(brier))
    expected, members = ece_loop(conf, correct, 15)
    assert result.ece == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert result.nll == pytest.approx(math.fsum(nll) / n, rel=1e-12)
    assert result.brier == pytest.approx(math.fsum(brier) / n, rel=1e-12)
    assert 0.0 <= result.brier <= 2.0 and 0.0 <= result.ece <= 1.0
    assert len(result.bins) == 15 and sum(b.count for b in result.bins) == n
    for m, (b, idx) in enumerate(zip(result.bins, members)):
        assert (b.lower, b.upper, b.count) == (m / 15, (m + 1) / 15, len(idx))
        if idx:
            assert b.accuracy == pytest.approx(sum(correct[i] for i in idx) / len(idx), rel=1e-12)
            assert b.confidence == pytest.approx(math.fsum(conf[i] for i in idx) / len(idx), rel=1e-12)
        else:
            assert math.isnan(b.accuracy) and math.isnan(b.confidence)


@pytest.mark.parametrize("bins", [15, 8])
def test_ties_at_bin_edges_go_to_the_lower_bin(bins):
    """Confidences exactly on edges (m/M) and exactly 0 and 1: (lower, upper] as in Guo et al. 2017."""
    rng = np.random.default_rng(bins)
    edges = [m / bins for m in range(bins + 1)]
    conf = [edges[i] for i in rng.integers(0, bins + 1, 300)] + rng.uniform(0, 1, 77).tolist()
    correct = rng.random(len(conf)) < 0.6
    result = calibration(conf, correct, np.zeros(len(conf)), np.zeros(len(conf)), bins=bins)
    expected, members = ece_loop(conf, correct.tolist(), bins)
    assert result.ece == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert [b.count for b in result.bins] == [len(idx) for idx in members]
    assert result.bins[0].count == sum(1 for c in conf if c <= edges[1])
    assert result.bins[-1].count == sum(1 for c in conf if c > edges[-2])


def test_a_saturated_confidence_of_one_is_in_the_last_bin():
    """float32 softmax gives exactly 1.0 often: it belongs to (14/15, 1], not to a bin of its own
    (torchmetrics <= 1.9 does the latter, Lightning-AI/torchmetrics#3510). By hand: one bin with
    accuracy 1/2 and mean confidence 0.975, so ECE = 0.475."""
    result = calibration([1.0, 0.95], [False, True], [0.0, 0.0], [0.0, 0.0])
    assert result.ece == pytest.approx(0.475, abs=1e-15)
    assert result.bins[-1].count == 2 and sum(b.count for b in result.bins) == 2


def test_nll_and_brier_extremes_by_hand():
    """Brier 1950 summed over classes: 0 for a sure right answer, 2 for a sure wrong one."""
    result = calibration([1.0, 1.0], [True, False], [0.0, math.inf], [0.0, 2.0])
    assert result.brier == 1.0 and result.nll == math.inf and result.ece == pytest.approx(0.5)
    assert to_jsonable(result)["nll"] is None  # strict JSON: non-finite -> null


def test_json_shape_and_empty_input():
    result = calibration([], [], [], [])
    assert math.isnan(result.ece) and math.isnan(result.nll) and math.isnan(result.brier)
    body = json.loads(json.dumps(to_jsonable(result), allow_nan=False))
    assert set(body) == {"ece", "nll", "brier", "bins"} and body["ece"] is None
    assert len(body["bins"]) == 15
    assert body["bins"][3] == {"lower": 3 / 15, "upper": 4 / 15, "count": 0, "accuracy": None, "confidence": None}
    filled = to_jsonable(calibration([0.5], [True], [0.7], [0.5]))
    assert filled["bins"][7] == {"lower": 7 / 15, "upper": 8 / 15, "count": 1, "accuracy": 1.0, "confidence": 0.5}
    assert isinstance(result, Calibration)


@pytest.mark.parametrize("args,match", [
    (([0.5, 0.5], [True], [0.1, 0.1], [0.1, 0.1]), "one value per image"),
    (([1.5], [True], [0.1], [0.1]), r"probabilities in \[0, 1\]"),
    (([math.nan], [True], [0.1], [0.1]), r"probabilities in \[0, 1\]"),
    (([[0.5]], [[True]], [[0.1]], [[0.1]]), "one value per image"),
])
def test_bad_arrays_are_refused(args, match):
    with pytest.raises(UsageError, match=match):
        calibration(*args)
    with pytest.raises(UsageError, match="positive integer"):
        calibration([0.5], [True], [0.1], [0.1], bins=0)


def test_the_module_imports_neither_torch_nor_the_report_layer():
    code = ("import sys, nnprobe.calibration, nnprobe.results; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'rich', 'matplotlib') "
            "or m.startswith('nnprobe.report')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- torchmetrics as a second reference


def torchmetrics_ece(probs32, labels, bins):
    import torch
    from torchmetrics import classification  # a test dependency (pyproject's test extra)

    metric = classification.MulticlassCalibrationError(num_classes=probs32.shape[1], n_bins=bins, norm="l1")
    for part in np.array_split(np.arange(len(labels)), 3):  # streamed in batches, as eval does
        metric.update(torch.from_numpy(probs32[part]), torch.from_numpy(labels[part]))
    return float(metric.compute())


@pytest.mark.parametrize("seed,n,k", [(10, 1000, 10), (11, 1999, 10), (12, 4097, 100), (13, 733, 1000)])
def test_matches_torchmetrics_on_random_logits(seed, n, k):
    """Same float32 probabilities for both; away from exact edges the two binnings are the same."""
    import torch

    logits, labels = random_run(seed, n, k)
    probs32 = torch.softmax(torch.from_numpy(logits.astype(np.float32)), dim=1).numpy()
    conf = probs32.max(axis=1).astype(np.float64)
    correct = probs32.argmax(axis=1) == labels
    assert 0.2 < correct.mean() < 0.95 and conf.max() < 1.0  # 1.0: see the saturation test
    ours = calibration(conf, correct, np.zeros(n), np.zeros(n)).ece
    assert ours == pytest.approx(torchmetrics_ece(probs32, labels, 15), abs=2e-6)


def test_torchmetrics_agrees_at_edges_once_told_which_side():
    """With dyadic edges (exact in float32), each edge value handed to torchmetrics one float32 step lower
    (its bins are [lower, upper), ours (lower, upper]) gives our ECE: the edge side is the only difference."""
    rng, k, bins = np.random.default_rng(7), 10, 8
    conf = np.concatenate([rng.integers(1, bins + 1, 400) / bins, rng.uniform(0.15, 1, 123)])
    labels = rng.integers(0, k, len(conf))
    pred = np.where(rng.random(len(conf)) < 0.7, labels, (labels + 1) % k)
    on_edge = np.isin(conf, np.arange(1, bins + 1) / bins)
    told = np.where(on_edge, np.nextafter(conf.astype(np.float32), np.float32(0)), conf.astype(np.float32))
    probs = np.repeat(((1 - told) / (k - 1))[:, None], k, axis=1).astype(np.float32)
    probs[np.arange(len(conf)), pred] = told
    ours = calibration(conf.astype(np.float32).astype(np.float64), pred == labels, np.zeros(len(conf)),
                       np.zeros(len(conf)), bins=bins).ece
    assert on_edge.sum() == 400 and ours > 0.01
    assert ours == pytest.approx(torchmetrics_ece(probs, labels, bins), abs=1e-6)


# ---------------------------------------------------------------- confused pairs and worst classes


def test_confused_pairs_match_a_counter():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 6, 3001)
    predicted = np.where(rng.random(3001) < 0.5, labels, rng.integers(0, 6, 3001))
    got = confused_pairs(labels, predicted, lambda i: f"c{i}", k=10)
    counts = Counter((int(t), int(p)) for t, p in zip(labels, predicted) if t != p)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:10]
    assert [(g.true_index, g.predicted_index, g.count) for g in got] == [(t, p, c) for (t, p), c in ranked]
    assert all(g.true_name == f"c{g.true_index}" and g.predicted_name == f"c{g.predicted_index}" for g in got)


def test_confused_pair_ties_are_broken_by_indices():
    labels = [3, 3, 1, 1, 0, 0, 2, 2, 2, 5]
    predicted = [1, 1, 3, 3, 2, 2, 0, 0, 2, 4]
    names = ["zero", "one", "two", "three", "four", "five"]
    assert confused_pairs(labels, predicted, names, k=3) == (
        ConfusedPair(0, "zero", 2, "two", 2), ConfusedPair(1, "one", 3, "three", 2),
        ConfusedPair(2, "two", 0, "zero", 2))
    assert len(confused_pairs(labels, predicted, names, k=50)) == 5
    assert confused_pairs([1, 2], [1, 2], names) == () and confused_pairs([], [], names) == ()
    with pytest.raises(UsageError, match="differ in length"):
        confused_pairs([1, 2], [1], names)


def test_worst_classes_ascending_ties_by_index_and_empty_classes_left_out():
    classes = [PerClass(0, "a", 2, 6), PerClass(1, "b", 0, 0, predicted=4), PerClass(2, "c", 1, 3),
               PerClass(3, "d", 5, 5), PerClass(4, "e", 0, 2), PerClass(5, "f", 3, 4)]
    assert [pc.index for pc in worst_classes(classes, k=5)] == [4, 0, 2, 5, 3]
    assert [pc.index for pc in worst_classes(classes, k=2)] == [4, 0]
    assert worst_classes([PerClass(0, "a", 0, 0)]) == ()


# ---------------------------------------------------------------- gates


def test_ece_gate():
    good = calibration([0.8] * 5, [True] * 4 + [False], [0.0] * 5, [0.0] * 5)  # ECE exactly 0 up to rounding
    gate = ece_gate(0.05, good)
    assert isinstance(gate, Gate) and gate.name == "max-ece" and gate.passed and gate.threshold == 0.05
    assert gate.message == f"ece {good.ece:.4f} is within the allowed 0.0500"
    bad = calibration([0.9, 0.9], [False, True], [0.0, 0.0], [0.0, 0.0])  # |0.5 - 0.9| = 0.4
    gate = ece_gate(0.05, bad)
    assert not gate.passed and gate.measured == pytest.approx(0.4) and gate.message == \
        "ece 0.4000 exceeds the allowed 0.0500"
    assert ece_gate(bad.ece, bad).passed  # equal to the threshold passes
    assert not ece_gate(0.5, calibration([], [], [], [])).passed
    with pytest.raises(UsageError, match="--max-ece must be a fraction"):
        ece_gate(1.5, good)


def test_class_gate_names_the_worst_class():
    classes = [PerClass(0, "tench", 4, 5), PerClass(7, "cock", 1, 4), PerClass(9, "hen", 0, 0, 3)]
    gate = class_gate(0.5, classes)
    assert (gate.name, gate.threshold, gate.measured, gate.passed) == ("min-class-top1", 0.5, 0.25, False)
    assert gate.message == "worst class cock (index 7) top-1 0.2500 (1/4) is below the required 0.5000"
    assert class_gate(0.25, classes).passed
    assert "meets the required 0.2500" in class_gate(0.25, classes).message
    assert not class_gate(0.0, [PerClass(0, "a", 0, 0)]).passed
    with pytest.raises(UsageError, match="--min-class-top1"):
        class_gate(-0.1, classes)


# ---------------------------------------------------------------- ImageNet-ReaL


REAL = [[1], [], [2, 3], [0], [5, 7], [], [999]]


@pytest.fixture
def real_file(tmp_path):
    path = tmp_path / "real.json"
    path.write_text(json.dumps(REAL))
    return path


def test_real_labels_read_and_top1(real_file):
    real = real_labels(real_file)
    assert real == REAL
    paths = ["n01/ILSVRC2012_val_00000003.JPEG", "ILSVRC2012_val_00000001.JPEG", "x/ILSVRC2012_val_00000002.JPEG",
             "n02/ILSVRC2012_val_00000005.JPEG", "ILSVRC2012_val_00000004.JPEG", "ILSVRC2012_val_00000007.png",
             "ILSVRC2012_val_00000006.JPEG", "y/ILSVRC2012_val_00000003.JPEG"]
    predicted = np.array([3, 0, 4, 7, 0, 998, 1, 1])
    correct = counted = 0
    for path, answer in zip(paths, predicted.tolist()):
        labels = REAL[int(path[-13:-5] if path.endswith("JPEG") else path[-12:-4]) - 1]
        counted += bool(labels)
        correct += bool(labels) and answer in labels
    assert (correct, counted) == (3, 6)
    assert real_top1(real, paths, predicted) == (correct, counted)


def test_real_top1_refuses_images_that_are_not_val_images(real_file):
    real = real_labels(real_file)
    for bad in ["n01/cat.jpg", "ILSVRC2012_val_00000008.JPEG", "ILSVRC2012_val_00000000.JPEG",
                "ILSVRC2012_val_000000011.JPEG", "ILSVRC2012_val_00000001.JPEG/deeper.jpg"]:
        with pytest.raises(DataError, match=f"{bad.replace('.', '[.]')} is not an ImageNet validation image"):
            real_top1(real, ["ILSVRC2012_val_00000001.JPEG", bad], [1, 1])


@pytest.mark.parametrize("text", ["{not json", json.dumps({"a": [1]}), "[]", json.dumps([[1], [1000]]),
                                  json.dumps([[1], [-1]]), json.dumps([[1], [1.0]]), json.dumps([[True]]),
                                  json.dumps([[1], "2"]), json.dumps([[1], [[2]]]), "\xff\xfe"])
def test_bad_real_files_are_refused_naming_the_file(tmp_path, text):
    path = tmp_path / "bad real.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match="bad real.json") as info:
        real_labels(path)
    assert str(info.value).endswith(".") and "\n" not in str(info.value)


def test_missing_and_oversized_real_files(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="Cannot read the ReaL labels file .*missing.json"):
        real_labels(tmp_path / "missing.json")
    path = tmp_path / "big.json"
    path.write_text(json.dumps([[1]] * 100))
    monkeypatch.setattr(cal, "REAL_MAX_BYTES", 100)
    with pytest.raises(DataError, match="big.json is larger than"):
        real_labels(path)
