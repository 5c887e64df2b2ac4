"""Merged `--shard` slices carry the calibration suite (issue 19): with the slices' per-sample rows merged
(`--save-predictions`) every field equals one process's, intervals included; without them the numbers sums
give (equal-width ECE, MCE, RMSCE, NLL, Brier, class-wise ECE, temperature) still equal one process's and
the rest are null with one line naming them and why. The field lists are walked from CalibrationSuite, so a
field added to the suite must be placed in one of them."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
from helpers import PLAIN, factory_spec, make_wnid_folders

from nnprobe import api
from nnprobe.calibration_merge import NEEDS_ROWS, merged_suite
from nnprobe.calibration_suite import CalibrationSuite
from nnprobe.errors import DataError
from nnprobe.per_sample import read
from nnprobe.report import render

MODEL = factory_spec("color_net_1000")
FROM_SUMS = {"ece.value", "nll.value", "brier.value", "mce", "rmsce", "classwise_ece", "temperature", "bins",
             "confidence_level", "resamples", "seed"}  # exact from the slices' sums (up to float rounding)
FROM_ROWS = {"ece.lo", "ece.hi", "nll.lo", "nll.hi", "brier.lo", "brier.hi", "smooth_ece", "aurc",
             "equal_mass_ece", "smooth_ece_bandwidth"}  # need every image: null without the rows
OWN = {"missing", "ece.method", "nll.method", "brier.method"}  # says what this merge could not give


def _flat(body: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in body.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key in ("ece", "nll", "brier"):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def _close(a, b, where: str) -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            _close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=1e-6, abs=1e-9), where
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_wnid_folders(tmp_path_factory.mktemp("calmerge") / "data", {5: 5, 350: 4, 998: 4},
                             wrong={5: 2, 998: 1})


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """One process, and 3 slices written as JSON beside their per-sample files."""
    folder = tmp_path_factory.mktemp("parts")
    options = dict(workers=0, confidence=0.9, bootstrap_resamples=200, seed=3, **PLAIN)
    one = api.evaluate(MODEL, data, save_predictions=str(folder / "one.jsonl"), **options)
    parts = []
    for k in (1, 2, 3):
        part = api.evaluate(MODEL, data, shard=f"{k}/3", save_predictions=str(folder / f"{k}.jsonl"), **options)
        assert part.calibration_sums is not None
        parts.append(folder / f"{k}.json")
        parts[-1].write_text(json.dumps(part.to_dict()))
    return one, [str(p) for p in parts], folder


def test_the_field_lists_cover_the_suite():
    names = {f.name for f in dataclasses.fields(CalibrationSuite)}
    listed = {n.split(".")[0] for n in FROM_SUMS | FROM_ROWS | OWN}
    assert names == listed, names ^ listed


def test_merged_with_rows_equals_one_process_in_every_calibration_field(runs):
    one, parts, folder = runs
    merged = api.merge(parts, save_predictions=str(folder / "all.jsonl"))
    a, b = one.to_dict()["calibration_suite"], merged.to_dict()["calibration_suite"]
    assert b["missing"] is None and a["classwise_ece"] is not None and a["temperature"] is not None
    _close(a, b, "calibration_suite")
    assert a["ece"]["lo"] < a["ece"]["hi"] and a["aurc"]["lo"] < a["aurc"]["hi"]  # intervals, not empty bounds
    assert merged.calibration_sums is None and one.calibration_sums is None  # only a slice carries them


def test_merged_without_rows_keeps_what_sums_give_and_names_the_rest(runs):
    one, parts, _ = runs
    merged = api.merge(parts)
    a, b = _flat(one.to_dict()["calibration_suite"]), _flat(merged.to_dict()["calibration_suite"])
    for key in FROM_SUMS:
        _close(a[key], b[key], key)
    for key in FROM_ROWS:
        assert a[key] is not None and (b[key] is None or all(v is None for k, v in b[key].items()
                                                           if k in ("value", "lo", "hi"))), key
    assert b["missing"].startswith("not after this merge: " + NEEDS_ROWS) and "--save-predictions" in b["missing"]
    for fmt in ("table", "markdown", "html"):
        text = render(merged, fmt)
        assert "not after this merge" in text and "class-wise ECE" in text, fmt


def test_slices_without_tallies_say_so(runs, tmp_path):
    one, parts, folder = runs
    bodies = [json.loads(open(p).read()) for p in parts]
    for body in bodies:
        body.pop("calibration_sums")  # as an nnprobe before the tallies wrote them
    merged = api.merge(bodies)
    suite = merged.calibration_suite
    assert suite.classwise_ece is None and suite.temperature is None
    assert "class-wise ECE and the fitted temperature need the slices' tallies" in suite.missing
    assert suite.ece.value == pytest.approx(one.calibration_suite.ece.value, rel=1e-6)
    assert math.isnan(suite.aurc.value)


def test_rows_without_brier_or_damaged_say_so(runs):
    one, parts, folder = runs
    bodies = [json.loads(open(p).read()) for p in parts]
    rows = sorted((r for k in (1, 2, 3) for r in read(str(folder / f"{k}.jsonl"))[1]), key=lambda r: r["i"])
    whole = merged_suite(bodies, one.calibration, rows, 0.9)
    assert whole.missing is None and whole.aurc == one.calibration_suite.aurc
    rows[0] = dict(rows[0], confidence=1.5)
    with pytest.raises(DataError, match="not a number in its range"):
        merged_suite(bodies, one.calibration, rows, 0.9)
    for row in rows:
        row.pop("brier")  # per-sample files an nnprobe before the Brier column wrote
    suite = merged_suite(bodies, one.calibration, rows, 0.9)
    assert "Brier score" in suite.missing and math.isnan(suite.aurc.value)
    assert suite.classwise_ece == pytest.approx(one.calibration_suite.classwise_ece, rel=1e-6)
