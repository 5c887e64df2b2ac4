"""Robust top-1 carries an exact interval per budget: equal to statsmodels' Clopper-Pearson at the level
asked for, in the JSON, the markdown and the table; recomputed from the summed counts after a merge."""
from __future__ import annotations

import json

import pytest
from helpers import PLAIN_FLAGS, factory_spec, make_wnid_folders
from statsmodels.stats.proportion import proportion_confint

MODEL = factory_spec("color_net_1000")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_wnid_folders(tmp_path_factory.mktemp("robust-iv") / "data", {5: 3, 400: 2, 7: 1}, wrong={400: 2})


def _check(point, level):
    lo, hi = proportion_confint(point["correct_top1"], point["total"], alpha=1 - level, method="beta")
    got = point["top1_interval"]
    assert got["method"] == "clopper-pearson" and got["value"] == point["top1"]
    assert got["lo"] == pytest.approx(0.0 if point["correct_top1"] == 0 else lo, abs=1e-12)
    assert got["hi"] == pytest.approx(1.0 if point["correct_top1"] == point["total"] else hi, abs=1e-12)


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_each_budget_has_statsmodels_interval_at_the_level_asked(invoke, data, level):
    run = invoke("robust", str(data), "--model", MODEL, *PLAIN_FLAGS, "--eps", "0,1/255,0.5", "--steps", "1",
                 "--workers", "0", "--confidence", str(level), "--format", "json")
    assert run.returncode == 0, run.stderr
    body = json.loads(run.stdout)
    assert body["confidence_level"] == level and len(body["points"]) == 3
    assert body["points"][0]["correct_top1"] > body["points"][-1]["correct_top1"]  # the attack did something
    for point in body["points"]:
        _check(point, level)
    table = invoke("robust", str(data), "--model", MODEL, *PLAIN_FLAGS, "--eps", "0", "--steps", "1",
                   "--workers", "0", "--confidence", str(level))
    first = body["points"][0]["top1_interval"]
    assert f"intervals: {100 * level:g}%, exact Clopper-Pearson" in table.stdout.replace("\n", " ")
    assert f"{100 * first['lo']:.2f}% – {100 * first['hi']:.2f}%" in table.stdout


def test_merged_slices_get_the_interval_of_the_summed_counts(invoke, data, tmp_path):
    parts = []
    for k in (1, 2):
        out = tmp_path / f"part{k}.json"
        run = invoke("robust", str(data), "--model", MODEL, *PLAIN_FLAGS, "--eps", "0,0.5", "--steps", "1",
                     "--workers", "0", "--shard", f"{k}/2", "--confidence", "0.9", "--format", "json", "-o", str(out))
        assert run.returncode == 0, run.stderr
        parts.append(str(out))
    merged = invoke("merge", *parts, "--format", "json")
    assert merged.returncode == 0, merged.stderr
    body = json.loads(merged.stdout)
    assert body["confidence_level"] == 0.9 and body["points"][0]["total"] == 8
    for point in body["points"]:
        _check(point, 0.9)


def test_a_bad_level_is_one_sentence(invoke, data):
    run = invoke("robust", str(data), "--model", MODEL, "--confidence", "1.5")
    assert run.returncode == 2 and "--confidence must be strictly between 0 and 1" in run.stderr
    assert "Traceback" not in run.stderr
