"""Issue 21: a loss or accuracy logged under a misspelt name (`val_los`) plays no role, so checks are skipped;
diagnose names the series, the spelling it was likely meant to have, and the checks skipped because of it.
The reference for "skipped because of it": the same log written with the right name, diagnosed."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nnprobe import api
from nnprobe.diagnosis.readers import discover
from nnprobe.diagnosis.roles import map_roles, meant, unplaced
from nnprobe.diagnosis.run import load_runs

REPO = Path(__file__).resolve().parents[2]


def write_csv(folder: Path, names: dict[str, str]) -> str:
    """A Lightning metrics.csv of 40 epochs, overfitting from epoch 15, its columns named by `names`."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [",".join(["epoch", "step", names["train_loss"], names["val_loss"], names["val_acc"]])]
    for e in range(40):
        val = 2.0 * math.exp(-0.3 * e) + 0.4 + (0.05 * (e - 15) if e > 15 else 0.0)
        rows.append(f"{e},{(e + 1) * 10},{2.3 * math.exp(-0.3 * e) + 0.05},{val},{0.9 - 0.7 * math.exp(-0.3 * e)}")
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    return str(folder)


RIGHT = {"train_loss": "train_loss", "val_loss": "val_loss", "val_acc": "val_acc"}


@pytest.mark.parametrize("role,wrong,spelling", [("val_loss", "val_los", "val_loss"),
                                                  ("val_loss", "vall_loss", "val_loss"),
                                                  ("val_acc", "val_acuracy", "val_accuracy")])
def test_the_misspelt_column_is_named_with_the_checks_it_cost(tmp_path, role, wrong, spelling):
    bad = api.diagnose(write_csv(tmp_path / "bad", {**RIGHT, role: wrong}))
    good = api.diagnose(write_csv(tmp_path / "good", {**RIGHT, role: spelling}))
    (finding,) = [f for f in bad.findings if f.id == "metric-unrecognised"]
    expected = sorted({o.id for o in bad.runs[0].outcomes if o.status == "skipped"} -
                      {o.id for o in good.runs[0].outcomes if o.status == "skipped"})
    assert expected and sorted(finding.evidence["skipped_checks"]) == expected
    assert finding.severity == "warning"
    assert f"column '{wrong}' was not recognised; did you mean '{spelling}'?" in finding.message
    assert f"{len(expected)} check(s) were skipped because of it: " in finding.message
    assert f"--metric {role}={wrong}" in finding.hint
    assert not [f for f in good.findings if f.id == "metric-unrecognised"]
    if role == "val_loss" and wrong == "val_los":  # the error the right name shows is the one it hid
        assert "overfitting" in {f.id for f in good.findings if f.severity == "error"}
        assert "overfitting" in finding.evidence["skipped_checks"]


def test_a_skip_reason_names_the_misspelt_series(tmp_path):
    result = api.diagnose(write_csv(tmp_path / "r", {**RIGHT, "train_loss": "trian_los"}))
    reasons = {o.id: o.reason for o in result.runs[0].outcomes if o.status == "skipped"}
    assert "'trian_los' was not recognised (did you mean 'train_loss'?)" in reasons["spikes"]


def test_mapped_with_metric_it_is_no_finding(tmp_path, invoke):
    path = write_csv(tmp_path / "r", {**RIGHT, "val_loss": "val_los"})
    assert not [f for f in api.diagnose(path, metric=["val_loss=val_los"]).findings if f.id == "metric-unrecognised"]
    run = invoke("diagnose", path, "--format", "json", "--fail-on", "warning")
    body = json.loads(run.stdout)
    assert run.returncode == 1 and [f["id"] for f in body["findings"]] == ["metric-unrecognised"]
    assert invoke("diagnose", path, "--format", "json").returncode == 0  # a warning, not an error


def test_a_misspelling_that_costs_no_check_is_an_info(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "log.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0 / (s + 1), "train_acuracy": 0.5})
                                              + "\n" for s in range(5)))
    (finding,) = [f for f in api.diagnose(str(folder)).findings if f.id == "metric-unrecognised"]
    assert finding.severity == "info" and "no check was skipped" in finding.message


@pytest.mark.parametrize("name,spelling", [("val_los", "val_loss"), ("Loss/vaild", "Loss/valid"),
                                           ("train_accuarcy", "train_accuracy"), ("learning_rte", "learning_rate"),
                                           ("grad_nrom", "grad_norm"), ("evl_loss", "eval_loss")])
def test_misspellings_are_read_as_meant(name, spelling):
    assert meant(name)[0] == spelling


@pytest.mark.parametrize("name", ["epoch", "step", "val_mse", "eval_runtime", "train_samples_per_second",
                                  "system/gpu.0.gpu", "_timestamp", "val_top5", "lr-SGD", "val_acc", "loss",
                                  "epoch_loss", "evaluation_loss_vs_iterations", "hp_metric", "total_flos"])
def test_names_loggers_write_are_no_misspelling(name):
    assert meant(name) is None


def test_no_run_of_the_corpus_or_the_samples_has_an_unplaced_name():
    """The check must stay silent on real logs of every logger (healthy or not)."""
    paths = sorted((REPO / "samples" / "corpus").glob("*/")) + sorted((REPO / "samples" / "runs").glob("*/"))
    count = 0
    for path in paths:
        for files in discover(str(path)):
            for run in load_runs(files):
                roles, _ = map_roles(run.series, {})
                assert unplaced(run.series, roles) == {}, path
                count += 1
    assert count > 150
