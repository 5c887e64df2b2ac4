"""Hostile results read back by `compare`, `--baseline` and `merge` (issue 17 part 2): every file goes
through one reader (regular files only, size, depth and decompressed-size caps, strict JSON) and its kind's
schema (finite numbers, counts <= totals, per-class sums = totals, per-sample rows = counts), and slices of
other installs are refused by name. Each case is exit 2 with one sentence, under a timeout, inputs unchanged.
"""
from __future__ import annotations

import copy
import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TESTS
from hostile_helpers import Inputs, expect_refusal

GOLDEN = TESTS / "report" / "golden"
TIMEOUT = 60  # seconds: a hang (FIFO, /dev/zero) fails the test instead of the suite


def cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a subprocess, so a read that blocks is a failed test, not a hung suite."""
    env = dict(os.environ)
    env.pop("WORLD_SIZE", None)
    return subprocess.run([sys.executable, "-m", "nnprobe", *args], capture_output=True, text=True, env=env,
                          timeout=TIMEOUT)


def eval_body() -> dict:
    return json.loads((GOLDEN / "eval.json").read_text())


def eval_slice(index: int, count: int, correct: int, total: int, torch: str = "2.11.0") -> dict:
    """A valid `--shard index/count` eval slice: one class, `correct` of `total` right."""
    body = eval_body()
    body.update(correct_top1=correct, correct_top5=total, total=total, top1=correct / total, top5=1.0,
                per_class=[{"index": 0, "name": "cat", "correct_top1": correct, "total": total, "predicted": total,
                            "top1": correct / total}], skipped=[], calibration=None)
    body["data"] = dict(body["data"], shard={"index": index, "count": count}, fingerprint="f" * 64)
    body["run"] = dict(body["run"], versions={"nnprobe": "0", "torch": torch})
    return body


def write(path: Path, body) -> Path:
    path.write_text(json.dumps(body) if not isinstance(body, str) else body)
    return path


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "result.json"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", ["compare", "merge"])
@pytest.mark.parametrize("what", ["fifo", "/dev/zero", "folder"])
def test_special_files_are_refused_without_reading(tmp_path, fifo, command, what):
    good = write(tmp_path / "good.json", eval_body())
    path = {"fifo": str(fifo), "/dev/zero": "/dev/zero", "folder": str(tmp_path)}[what]
    inputs = Inputs(good)
    args = ["compare", str(good), path] if command == "compare" else ["merge", path]
    line = expect_refusal(cli(*args), 2)
    assert path in line and ("regular file" in line or "folder" in line), line
    inputs.unchanged()


@pytest.mark.parametrize("command", ["compare", "merge"])
def test_json_nested_200k_deep_is_one_sentence(tmp_path, command):
    deep = write(tmp_path / "deep.json", "[" * 200_000 + "]" * 200_000)
    good = write(tmp_path / "good.json", eval_body())
    args = ["compare", str(good), str(deep)] if command == "compare" else ["merge", str(deep)]
    line = expect_refusal(cli(*args), 2, "nested deeper")
    assert "RecursionError" not in line


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_non_finite_top1_never_passes_a_drop_gate(tmp_path, invoke, value):
    base = write(tmp_path / "base.json", eval_body())
    text = json.dumps(eval_body()).replace('"top1": 0.5714285714285714', f'"top1": {value}', 1)
    cand = write(tmp_path / "cand.json", text)
    inputs = Inputs(base, cand)
    run = invoke("compare", str(base), str(cand), "--max-drop-top1", "1pt")
    assert run.returncode == 2 and "Traceback" not in run.stderr, (run.returncode, run.stderr)
    assert str(cand) in run.stderr and run.stdout == ""
    inputs.unchanged()


@pytest.mark.parametrize("edit, fragment", [
    (lambda b: b.update(top1=0.99), "but the counts give 4/7"),
    (lambda b: b.update(correct_top1=100, top1=100 / 7), "correct_top1 exceeds correct_top5"),
    (lambda b: b.update(correct_top5=9, top5=9 / 7), "correct_top5 exceeds total"),
    (lambda b: b["per_class"][0].update(total=5, top1=3 / 5), "per-class total add up to 8"),
    (lambda b: b["per_class"][0].update(predicted=1), "per-class predicted add up to 3"),
    (lambda b: b.update(total="7"), "not a count"),
    (lambda b: b.update(total=-7), "not a count"),
    (lambda b: b.update(schema_version=99), "schema_version"),
])
def test_impossible_eval_numbers_are_refused(tmp_path, invoke, edit, fragment):
    body = eval_body()
    edit(body)
    base, cand = write(tmp_path / "base.json", eval_body()), write(tmp_path / "cand.json", body)
    run = invoke("compare", str(base), str(cand))
    assert run.returncode == 2 and fragment in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_a_slice_claiming_100_correct_of_2_images_is_refused(tmp_path, invoke):
    one = eval_slice(1, 2, 1, 2)
    two = eval_slice(2, 2, 1, 2)
    two.update(correct_top1=100, correct_top5=100, top1=50.0, top5=50.0)
    two["per_class"][0].update(correct_top1=100, top1=50.0)
    parts = [write(tmp_path / "p1.json", one), write(tmp_path / "p2.json", two)]
    inputs = Inputs(*parts)
    run = invoke("merge", *map(str, parts), "--min-top1", "0.9")
    assert run.returncode == 2 and "exceeds" in run.stderr and "p2.json" in run.stderr, run.stderr
    inputs.unchanged()
    honest = write(tmp_path / "p2.json", eval_slice(2, 2, 1, 2))
    run = invoke("merge", str(parts[0]), str(honest), "--min-top1", "0.9", "--format", "json")
    assert run.returncode == 1 and json.loads(run.stdout)["correct_top1"] == 2  # 2 of 4: the gate fails


def test_slices_of_other_torch_versions_are_named_and_merge_only_when_allowed(tmp_path, invoke):
    parts = [write(tmp_path / "p1.json", eval_slice(1, 2, 1, 2, torch="2.11.0")),
             write(tmp_path / "p2.json", eval_slice(2, 2, 2, 2, torch="2.14.1"))]
    run = invoke("merge", *map(str, parts))
    assert run.returncode == 2 and "torch 2.11.0 and 2.14.1" in run.stderr, run.stderr
    run = invoke("merge", *map(str, parts), "--allow-version-mismatch", "--format", "json")
    assert run.returncode == 0 and json.loads(run.stdout)["correct_top1"] == 3, run.stderr


def test_compare_names_a_version_difference_in_a_note(tmp_path):
    import nnprobe

    base, cand = eval_body(), eval_body()
    cand["run"]["versions"] = {"nnprobe": "0", "torch": "9.9"}
    base["run"]["versions"] = {"nnprobe": "0", "torch": "2.11.0"}
    notes = nnprobe.compare(base, cand).notes
    assert any("torch 2.11.0 and 9.9" in n for n in notes), notes


def test_a_diagnose_result_with_no_runs_does_not_pass_no_new_errors(tmp_path, invoke):
    body = json.loads((GOLDEN / "diagnose.json").read_text())
    empty = dict(body, runs=[], findings=[], skipped=[], counts={"error": 0, "warning": 0, "info": 0}, failed=False)
    base, cand = write(tmp_path / "base.json", body), write(tmp_path / "cand.json", empty)
    run = invoke("compare", str(base), str(cand))
    assert run.returncode == 2 and "diagnosed no run" in run.stderr, run.stderr


def test_diagnose_counts_must_match_its_findings(tmp_path, invoke):
    body = json.loads((GOLDEN / "diagnose.json").read_text())
    lying = copy.deepcopy(body)
    lying["counts"]["error"] = 0
    base, cand = write(tmp_path / "base.json", body), write(tmp_path / "cand.json", lying)
    run = invoke("compare", str(base), str(cand))
    assert run.returncode == 2 and "counts says" in run.stderr, run.stderr


def _with_per_sample(tmp_path: Path, name: str, lines: bytes, rows: int) -> Path:
    body = eval_body()
    file = tmp_path / f"{name}.preds.gz"
    file.write_bytes(gzip.compress(lines, mtime=0))
    body["per_sample"] = {"path": file.name, "sha256": hashlib.sha256(file.read_bytes()).hexdigest(), "rows": rows}
    return write(tmp_path / f"{name}.json", body)


def _rows(labels_tops):
    header = {"format": "nnprobe-per-sample", "version": 1, "kind": "eval", "rows": 7, "num_classes": 4}
    rows = [{"i": i, "path": f"p{i}", "label": label, "top5": top, "correct": top[0] == label}
            for i, (label, top) in enumerate(labels_tops)]
    return "".join(json.dumps(x) + "\n" for x in [header, *rows]).encode()


def test_a_gzip_bomb_of_rows_stops_at_the_counted_rows(tmp_path, invoke):
    """A few KB of gzip that expands to millions of rows: read up to the 7 rows the result counts, no more."""
    bomb = _rows([(0, [0, 1])] * 4 + [(1, [1, 0])] + [(1, [0, 1])] * 2) + b"{}\n" * 3_000_000
    cand = _with_per_sample(tmp_path, "cand", bomb, 7)
    assert os.path.getsize(tmp_path / "cand.preds.gz") < 100_000
    base = write(tmp_path / "base.json", eval_body())
    inputs = Inputs(tmp_path)
    run = invoke("compare", str(base), str(cand))
    assert run.returncode == 2 and "more rows than the 7 the result counts" in run.stderr, run.stderr
    inputs.unchanged()


def test_per_sample_rows_must_add_up_to_the_counts(tmp_path, invoke):
    # the result says 4 of 7 right at top-1; these rows say 7 of 7
    cand = _with_per_sample(tmp_path, "cand", _rows([(0, [0, 1])] * 7), 7)
    base = write(tmp_path / "base.json", eval_body())
    run = invoke("compare", str(base), str(cand))
    assert run.returncode == 2 and "rows count 7 right answers" in run.stderr and "correct_top1 is 4" in run.stderr, \
        run.stderr


def test_a_per_sample_file_that_is_a_fifo_is_refused(tmp_path):
    body = eval_body()
    os.mkfifo(tmp_path / "cand.preds")
    body["per_sample"] = {"path": "cand.preds", "sha256": "0" * 64, "rows": 7}
    cand = write(tmp_path / "cand.json", body)
    base = write(tmp_path / "base.json", eval_body())
    expect_refusal(cli("compare", str(base), str(cand)), 2, "cand.preds")


@pytest.mark.parametrize("edit, fragment", [
    (lambda s: s["model"].update(grad_checked=-1), "not a count"),
    (lambda s: s.update(budget=[[0] * 7]), "1 rows for 3 budgets"),
    (lambda s: s["budget"][0].__setitem__(0, "x"), "not counts"),
    (lambda s: s.update(largest_difference=None), "largest_difference"),
])
def test_tampered_sanity_counts_of_a_robust_slice_are_refused(tmp_path, invoke, edit, fragment):
    """A robust result's sanity counts are summed by merge into the findings of the whole: checked too."""
    body = json.loads((GOLDEN / "robust.json").read_text())
    body["sanity"] = {"model": {"grad_checked": 7, "grad_zero": 0}, "budget": [[0] * 7 for _ in range(3)],
                      "examples": {}, "largest_difference": 0.0, "follow_ups": [], "follow_up_ids": []}
    body["data"]["shard"] = {"index": 1, "count": 1}
    write(tmp_path / "good.json", body)
    run = invoke("merge", str(tmp_path / "good.json"), "--format", "json")
    assert run.returncode == 0, run.stderr
    edit(body["sanity"])
    run = invoke("merge", str(write(tmp_path / "part.json", body)))
    assert run.returncode == 2 and fragment in run.stderr and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize("verb", ["eval", "robust", "diagnose"])
@pytest.mark.parametrize("what", ["fifo", "/dev/zero"])
def test_a_baseline_that_is_not_a_file_is_refused_before_any_work(tmp_path, fifo, verb, what):
    """`--baseline FIFO` hung eval, robust and diagnose before reading a single image or log."""
    from helpers import PLAIN_FLAGS, factory_spec, make_wnid_folders

    path = str(fifo) if what == "fifo" else what
    data = make_wnid_folders(tmp_path / "data", {5: 1})
    if verb == "diagnose":
        args = ["diagnose", str(TESTS.parent / "samples" / "runs" / "healthy"), "--baseline", path]
    else:
        args = [verb, str(data), "--model", factory_spec("color_net_1000"), *PLAIN_FLAGS, "--workers", "0",
                "--baseline", path]
    inputs = Inputs(data)
    expect_refusal(cli(*args), 2, path, "not a regular file")
    inputs.unchanged()


def test_a_per_sample_file_too_large_for_its_rows_is_refused_unread(tmp_path, invoke):
    """A (sparse) 8 GB file recorded as the per-sample file of 7 rows: refused by size, never hashed."""
    body = eval_body()
    big = tmp_path / "cand.preds"
    with open(big, "wb") as handle:
        handle.truncate(8 << 30)
    body["per_sample"] = {"path": big.name, "sha256": "0" * 64, "rows": 7}
    cand = write(tmp_path / "cand.json", body)
    base = write(tmp_path / "base.json", eval_body())
    run = invoke("compare", str(base), str(cand))
    assert run.returncode == 2 and "larger than a per-sample file of 7 rows" in run.stderr, run.stderr


@pytest.mark.parametrize("edit, fragment", [
    (lambda c: c.update(ece=1.5), "calibration.ece is 1.5, outside"),
    (lambda c: c.update(brier=-0.1), "calibration.brier is -0.1, outside"),
    (lambda c: c["bins"][0].update(count=99), "the calibration bins count 99 images, the result 7"),
])
def test_impossible_calibration_is_refused(tmp_path, invoke, edit, fragment):
    """--max-ece and the ECE delta read these: an ECE of 1.5 or bins over other images never pass or fail one."""
    body = eval_body()
    body["calibration"] = {"ece": 0.1, "nll": 0.8, "brier": 0.4,
                           "bins": [{"lower": 0.0, "upper": 0.5, "count": 7, "accuracy": 0.5, "confidence": 0.4}]}
    base = write(tmp_path / "base.json", body)
    assert invoke("compare", str(base), str(base)).returncode == 0
    edit(body["calibration"])
    cand = write(tmp_path / "cand.json", body)
    run = invoke("compare", str(base), str(cand))
    assert run.returncode == 2 and fragment in run.stderr, run.stderr
