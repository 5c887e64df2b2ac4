"""Golden sample runs (samples/make_runs.py): each triggers exactly its expected findings; healthy none."""
from __future__ import annotations

import pytest

from nnprobe.diagnosis import diagnose

from diagnose_helpers import SAMPLES

EXPECTED = {
    "healthy": [],
    "chance": [("chance-accuracy", "error")],
    "constant-prediction": [("constant-prediction", "error"), ("plateau", "warning")],
    "divergence": [("divergence", "error"), ("lr-range", "warning"), ("spikes", "warning")],
    "nan-loss": [("loss-not-finite", "error"), ("loss-not-finite", "error"), ("spikes", "warning")],
    "hf-masked-nan": [("loss-not-finite", "error"), ("loss-not-finite", "error"), ("spikes", "warning")],
    "overfitting": [("overfitting", "error")],
}


@pytest.fixture(scope="module")
def everything():
    return diagnose(str(SAMPLES))


def test_every_sample_is_covered(everything):
    assert sorted(run.path for run in everything.runs) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_triggers_exactly_its_findings(everything, name):
    (run,) = [r for r in everything.runs if r.path == name]
    assert sorted((f.id, f.severity) for f in run.findings) == sorted(EXPECTED[name])
    alone = diagnose(str(SAMPLES / name))  # the same verdict when the run folder is given directly
    assert sorted((f.id, f.severity) for f in alone.findings) == sorted(EXPECTED[name])
    assert alone.failed is any(sev == "error" for _, sev in EXPECTED[name])


def test_healthy_run_is_fully_judged(everything):
    (run,) = [r for r in everything.runs if r.path == "healthy"]
    assert run.findings == ()
    skipped = sorted(o.id for o in run.outcomes if o.status == "skipped")
    assert skipped == ["grad-norm", "run-stopped-early"]  # no grad_norm logged; no planned length stated
    assert run.num_classes == 10 and "hparams.yaml" in run.num_classes_source


def test_sample_evidence_is_specific(everything):
    runs = {r.path: r for r in everything.runs}
    nan_train = [f for f in runs["nan-loss"].findings if f.id == "loss-not-finite" and f.evidence["role"] == "train_loss"]
    assert nan_train[0].evidence["step"] == 315 and nan_train[0].evidence["count"] == 8
    (masked,) = [f for f in runs["hf-masked-nan"].findings if "grad_series" in f.evidence]
    assert masked.evidence["step"] == 316 and masked.evidence["count"] == 8
    (over,) = runs["overfitting"].findings
    assert over.evidence["best_at"] == {"step": 5, "epoch": 5.0}
    assert "Stop at epoch 5" in over.hint
    (chance,) = runs["chance"].findings
    assert chance.evidence["num_classes"] == 10 and chance.evidence["best"] < 0.19
    constant = [f for f in runs["constant-prediction"].findings if f.id == "constant-prediction"][0]
    assert constant.evidence["value"] == 0.499 and constant.evidence["evaluations"] == 10
    assert runs["constant-prediction"].num_classes_source.startswith("inferred")
