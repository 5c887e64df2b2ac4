"""Metric roles from the loggers' naming conventions, overrides, and percent accuracy."""
from __future__ import annotations

import pytest

from nnprobe.diagnosis import diagnose
from nnprobe.diagnosis.roles import parse_overrides, role_of
from nnprobe.errors import UsageError

from diagnose_helpers import write_jsonl


@pytest.mark.parametrize(("name", "role"), [
    ("loss", "train_loss"), ("train_loss", "train_loss"), ("train_loss_epoch", "train_loss"),
    ("train/loss", "train_loss"), ("Loss/train", "train_loss"), ("train/epoch_loss", "train_loss"),
    ("epoch_loss", "train_loss"), ("val_loss", "val_loss"), ("eval/loss", "val_loss"), ("eval_loss", "val_loss"),
    ("validation/epoch_loss", "val_loss"), ("Loss/val", "val_loss"), ("val_acc", "val_acc"),
    ("eval_accuracy", "val_acc"), ("Accuracy/val", "val_acc"), ("validation/epoch_accuracy", "val_acc"),
    ("val_top1", "val_acc"), ("top1", "train_acc"), ("accuracy", "train_acc"), ("train_acc_epoch", "train_acc"),
    ("lr", "lr"), ("learning_rate", "lr"), ("lr-SGD", "lr"), ("train/learning_rate", "lr"),
    ("grad_norm", "grad_norm"), ("train/grad_norm", "grad_norm"),
    ("epoch", None), ("step", None), ("hp_metric", None), ("test_acc", None), ("val_acc5", None),
    ("train_runtime", None), ("eval_samples_per_second", None), ("loss_scale", None),
    ("validation/evaluation_loss_vs_iterations", None),
])
def test_role_of(name, role):
    assert role_of(name) == role


def test_parse_overrides():
    assert parse_overrides(["val_acc=my/acc", "lr = opt/lr"]) == {"val_acc": "my/acc", "lr": "opt/lr"}
    for bad in (["val_acc"], ["val_acc="], ["speed=x"]):
        with pytest.raises(UsageError):
            parse_overrides(bad)


def test_percent_accuracy_is_scaled_and_said(tmp_path):
    rows = [{"step": i * 100, "loss": 2.3 - 0.2 * i, "val_acc": 10.0 + 1.0 * (i % 2)} for i in range(10)]
    write_jsonl(tmp_path / "log.jsonl", rows)
    result = diagnose(str(tmp_path), num_classes=10)
    (mapping,) = [m for m in result.runs[0].mapping if m.role == "val_acc"]
    assert mapping.scale == 0.01 and "percent" in mapping.note
    (finding,) = [f for f in result.findings if f.id == "chance-accuracy"]
    assert finding.evidence["best"] == 0.11


def test_most_points_wins_and_alternatives_are_named(tmp_path):
    rows = [{"step": i, "loss": 2.0 - 0.01 * i} for i in range(50)] + [{"step": 49, "train_loss": 1.6}]
    write_jsonl(tmp_path / "log.jsonl", rows)
    (mapping,) = [m for m in diagnose(str(tmp_path)).runs[0].mapping if m.role == "train_loss"]
    assert mapping.series == "loss" and mapping.points == 50 and mapping.note == "also fits: train_loss"
