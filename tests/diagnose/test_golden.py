"""Golden sample runs (samples/make_runs.py): each triggers exactly its expected findings; healthy none.

Two kinds of expected value here. Injected: what the generator put into a run (samples/runs/<name>/
INJECTED.json, written by the generator; its NaN steps are checked against the raw logs, read without
nnprobe). PIN: what nnprobe itself reported on these logs when they were made, with no reference outside
nnprobe; kept so a changed check shows up here. A failing PIN means a check's behaviour changed: review
the change against the fact named beside the pin, do not just copy the new number in.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import math

import pytest

from nnprobe.diagnosis import diagnose

from diagnose_helpers import SAMPLES

# The findings each run was built to trigger (its INJECTED.json says how).
INJECTED_FINDINGS = {
    "healthy": [],
    "chance": [("chance-accuracy", "error")],
    "constant-prediction": [("constant-prediction", "error")],
    "divergence": [("divergence", "error")],
    "nan-loss": [("loss-not-finite", "error"), ("loss-not-finite", "error")],  # train and validation loss
    "hf-masked-nan": [("loss-not-finite", "error"), ("loss-not-finite", "error")],
    "overfitting": [("overfitting", "error")],
    "hf-tensorboard-healthy": [],  # one run: trainer_state.json and the Trainer's own runs/<date>_<host>/
    "add-scalars-overfitting": [("overfitting", "error")],  # one run: the add_scalars sub-folders fold in
}
# PINS: further findings nnprobe reported on these logs, each resting on the fact beside it.
PINNED_FINDINGS = {
    "constant-prediction": [("plateau", "warning")],  # zeroed inputs: Accuracy/val is one value, 10 times
    "divergence": [("lr-range", "warning"),  # the generator's lr_at reaches 0.05 * 1.5**11 = 4.3
                   ("spikes", "warning")],  # the loss jumps while the learning rate keeps rising
    # nan-loss, hf-masked-nan: no spikes warning. The warmup to lr 0.6 makes the loss climb (its last finite
    # points 2.6-4.4, under 5x their window median: no spike episode, SPIKE_PEAK) before it turns NaN at the
    # step INJECTED.json names (with torch 2.14; torch 2.x's older run went one log further, to 6.5, and warned)
}
EXPECTED = {name: INJECTED_FINDINGS[name] + PINNED_FINDINGS.get(name, []) for name in INJECTED_FINDINGS}


def injected(name: str) -> dict:
    return json.loads((SAMPLES / name / "INJECTED.json").read_text())


@pytest.fixture(scope="module")
def everything():
    return diagnose(str(SAMPLES))


def test_every_sample_is_covered(everything):
    """Each sample run is pinned here, or by the test of the generator that made it: runs written by real
    frameworks carry an EXPECTED.json (test_framework_runs.py), MLflow and W&B runs their own tests."""
    folders = {p.name for p in SAMPLES.iterdir() if p.is_dir()}
    elsewhere = {n for n in folders if (SAMPLES / n / "EXPECTED.json").exists() or n.startswith(("mlflow-", "wandb-"))}
    assert folders - elsewhere == set(EXPECTED)
    assert {run.path.split("/")[0].split("#")[0] for run in everything.runs} == folders  # every folder read


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
    # no grad_norm, no histograms, no system metrics logged; no planned length stated
    assert skipped == ["dead-relu", "exploding-gradients", "frozen-layer", "gpu-utilization", "grad-norm",
                       "memory-growth", "poor-initialization", "run-stopped-early", "saturated-activations",
                       "vanishing-gradients"]
    assert run.num_classes == 10 and "hparams.yaml" in run.num_classes_source


def test_sample_evidence_is_specific(everything):
    runs = {r.path: r for r in everything.runs}
    nan = injected("nan-loss")
    (nan_train,) = [f for f in runs["nan-loss"].findings if f.evidence.get("role") == "train_loss"]
    assert (nan_train.evidence["step"], nan_train.evidence["count"]) == (nan["first_nonfinite_train_step"],
                                                                       nan["nonfinite_train_points"])
    (nan_val,) = [f for f in runs["nan-loss"].findings if f.evidence.get("role") == "val_loss"]
    assert (nan_val.evidence["step"], nan_val.evidence["count"]) == (nan["first_nonfinite_val_step"],
                                                                   nan["nonfinite_val_points"])
    hf = injected("hf-masked-nan")
    (masked,) = [f for f in runs["hf-masked-nan"].findings if "grad_series" in f.evidence]
    assert (masked.evidence["step"], masked.evidence["count"]) == (hf["first_nonfinite_train_step"],
                                                                 hf["nonfinite_train_points"])
    (over,) = runs["overfitting"].findings
    best_epoch = _lowest_val_loss_epoch(SAMPLES / "overfitting" / "training.log")  # read with csv, not nnprobe
    assert over.evidence["best_at"] == {"step": best_epoch, "epoch": float(best_epoch)}
    assert f"Stop at epoch {best_epoch}" in over.hint
    (chance,) = runs["chance"].findings
    assert chance.evidence["num_classes"] == injected("chance")["num_classes"]
    assert chance.evidence["best"] < 0.19  # PIN: the threshold nnprobe derives from 10 classes
    constant = [f for f in runs["constant-prediction"].findings if f.id == "constant-prediction"][0]
    # PIN: 0.499 is the share of class 0 that make_data drew for validation (the generator asks for 0.5);
    # 10 evaluations = the generator's 10 epochs.
    assert constant.evidence["value"] == 0.499 and constant.evidence["evaluations"] == 10
    assert runs["constant-prediction"].num_classes_source.startswith("inferred")


def _lowest_val_loss_epoch(path) -> int:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return int(min(rows, key=lambda row: float(row["val_loss"]))["epoch"])


def _generator():
    spec = importlib.util.spec_from_file_location("make_runs", SAMPLES.parent / "make_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_injected_record_is_the_generators(name):
    """INJECTED.json carries the generator's own description of the run (regenerating the logs on another
    machine changes their floats, so the stored records were written from the stored logs with the
    generator's `injected_record`)."""
    generator = _generator()
    record = injected(name)
    assert {k: v for k, v in record.items() if "nonfinite" not in k} == {"run": name, **generator.INJECTED[name]}
    assert sorted(generator.INJECTED) == sorted(EXPECTED)


@pytest.mark.parametrize("name", ["nan-loss", "hf-masked-nan"])
def test_injected_nan_steps_match_the_raw_logs(name):
    """The NaN steps in INJECTED.json, recomputed from the raw files with tensorboard's reader and json."""
    record = injected(name)
    if name == "nan-loss":
        train, val = _tensorboard_nonfinite(SAMPLES / name, "Loss/train"), _tensorboard_nonfinite(SAMPLES / name,
                                                                                                   "Loss/val")
    else:
        history = json.loads((SAMPLES / name / "trainer_state.json").read_text())["log_history"]
        train = [h["step"] for h in history if "grad_norm" in h and not math.isfinite(h["grad_norm"])]
        val = [h["step"] for h in history if "eval_loss" in h and not math.isfinite(h["eval_loss"])]
    assert (record["first_nonfinite_train_step"], record["nonfinite_train_points"]) == (train[0], len(train))
    assert (record["first_nonfinite_val_step"], record["nonfinite_val_points"]) == (val[0], len(val))


def _tensorboard_nonfinite(folder, tag) -> list[int]:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util.tensor_util import make_ndarray

    (path,) = folder.glob("events.out.tfevents.*")
    return [event.step for event in EventFileLoader(str(path)).Load() for value in event.summary.value
            if value.tag == tag and not math.isfinite(float(make_ndarray(value.tensor)))]
