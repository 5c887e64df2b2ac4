"""Sample runs written by real frameworks (samples/make_framework_runs.py: HF Trainer, Keras 3 CSVLogger and
TensorBoard callback, tensorboardX).

Each run's EXPECTED.json was written by the generator from what it injected, never from nnprobe's output:
`errors` must be reported as errors (and, with `exact_errors`, no other error), `must_not` must not appear at
any severity, the folder is `runs` run(s), and a K nnprobe states must be the generator's `num_classes`.
The raw logs are also checked, without nnprobe, to hold what was injected.
"""
from __future__ import annotations

import csv
import json
import math

import pytest

from nnprobe.diagnosis import diagnose

from diagnose_helpers import SAMPLES

FRAMEWORK_RUNS = sorted(p.parent.name for p in SAMPLES.glob("*/EXPECTED.json"))


def expected(name: str) -> dict:
    return json.loads((SAMPLES / name / "EXPECTED.json").read_text())


def test_every_framework_is_sampled():
    frameworks = sorted({expected(name)["framework"] for name in FRAMEWORK_RUNS})
    assert frameworks == ["hf-trainer", "keras", "keras-tensorboard", "tensorboardX"]
    assert len(FRAMEWORK_RUNS) == 18


@pytest.mark.parametrize("name", FRAMEWORK_RUNS)
def test_run_reports_what_was_injected(name):
    want = expected(name)
    result = diagnose(str(SAMPLES / name))
    assert len(result.runs) == want["runs"]
    errors = {f.id for f in result.findings if f.severity == "error"}
    assert set(want["errors"]) <= errors
    if want["exact_errors"]:
        assert errors == set(want["errors"])
    assert not {f.id for f in result.findings} & set(want["must_not"])
    assert result.failed is bool(want["errors"])
    for run in result.runs:
        assert run.num_classes in (None, want["num_classes"])


def _csv(name):
    with open(SAMPLES / name / "training.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def _history(name):
    return json.loads((SAMPLES / name / "trainer_state.json").read_text())["log_history"]


def _tensorboard(name, sub, tag):
    """A Keras TensorBoard-callback tag's values, read with tensorboard's own reader (tensor summaries)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    reader = EventAccumulator(str(SAMPLES / name / sub), size_guidance={"tensors": 0})
    reader.Reload()
    return [float(make_ndarray(e.tensor_proto)) for e in reader.Tensors(tag)]


def test_keras_tensorboard_logs_hold_the_injection():
    assert all(math.isnan(v) for v in _tensorboard("keras-tb-nan", "train", "epoch_loss"))
    assert max(_tensorboard("keras-tb-chance", "validation", "epoch_accuracy")) < 0.2
    val = _tensorboard("keras-tb-overfit", "validation", "epoch_loss")
    assert val[-1] > 1.2 * min(val)
    assert _tensorboard("keras-tb-healthy", "validation", "epoch_accuracy")[-1] > 0.6
    assert len(_tensorboard("keras-tb-healthy", "train", "batch_loss")) > 15  # update_freq=8: batch points too


def test_tensorboardx_logs_hold_the_injection():
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def scalars(name, tag):
        reader = EventAccumulator(str(SAMPLES / name))
        reader.Reload()
        return [e.value for e in reader.Scalars(tag)]

    assert any(not math.isfinite(v) for v in scalars("tbx-nan", "train/loss"))
    val = scalars("tbx-divergence", "val/loss")
    assert all(math.isfinite(v) for v in val) and val[-1] > 100 * val[0]
    assert scalars("tbx-healthy", "val/acc")[-1] > 0.6


def test_raw_logs_hold_the_injection():
    """Read with csv/json only: NaN runs have non-finite losses, chance runs sit near 1/K, overfit runs'
    validation loss ends above its minimum while training loss falls, healthy runs learn."""
    assert all(math.isnan(row["loss"]) for row in _csv("keras-nan"))
    assert any(not math.isfinite(h["eval_loss"]) for h in _history("hf-nan") if "eval_loss" in h)
    assert max(row["val_accuracy"] for row in _csv("keras-chance")) < 0.2
    assert max(h["eval_accuracy"] for h in _history("hf-chance") if "eval_accuracy" in h) < 0.2
    assert len({row["val_accuracy"] for row in _csv("keras-constant")}) == 1
    for rows in (_csv("keras-overfit"),):
        assert rows[-1]["val_loss"] > 1.2 * min(r["val_loss"] for r in rows)
        assert rows[-1]["loss"] < 0.1 * rows[0]["loss"]
    evals = [h["eval_loss"] for h in _history("hf-overfit") if "eval_loss" in h]
    assert evals[-1] > 1.2 * min(evals)
    assert len({h["eval_accuracy"] for h in _history("hf-constant") if "eval_accuracy" in h}) == 1
    assert _csv("keras-healthy")[-1]["val_accuracy"] > 0.6
    assert [h["eval_accuracy"] for h in _history("hf-healthy") if "eval_accuracy" in h][-1] > 0.6
