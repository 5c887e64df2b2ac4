"""`nnprobe compare` through the real entry point: exit codes 0/1/2, the report formats, -o never onto an
input, and no torch import."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from compare_helpers import diagnose_dict, eval_result, random_eval_pair


@pytest.fixture
def results(tmp_path):
    base_rows, cand_rows = random_eval_pair(seed=3, n=400, num_classes=7, worse=0.08)
    return eval_result(tmp_path, "base", base_rows, 7), eval_result(tmp_path, "cand", cand_rows, 7)


def test_exit_0_when_gates_pass_and_json_is_the_comparison(results, invoke):
    base, cand = results
    run = invoke("compare", str(base), str(cand), "--max-drop-top1", "5pt", "--format", "json")
    assert run.returncode == 0, run.stderr
    body = json.loads(run.stdout)
    assert (body["kind"], body["compared"], body["passed"], body["paired"]) == ("compare", "eval", True, True)
    assert body["gates"][0]["name"] == "max-drop-top1" and body["gates"][0]["threshold"] == pytest.approx(0.05)


def test_exit_1_when_a_gate_fails_with_the_reason_on_stderr(results, invoke):
    base, cand = results
    run = invoke("compare", str(base), str(cand), "--max-drop-top1", "0.3pt", "--alpha", "0.05")
    assert run.returncode == 1
    assert "FAIL max-drop-top1" in run.stdout and "failed: max-drop-top1" in run.stderr
    assert "right→wrong" in run.stdout


@pytest.mark.parametrize("fmt, marker", [("junit", "<testcase"), ("markdown", "compare"), ("github", "::error")])
def test_other_formats(results, invoke, fmt, marker):
    base, cand = results
    run = invoke("compare", str(base), str(cand), "--max-drop-top1", "0.3pt", "--format", fmt)
    assert run.returncode == 1 and marker in run.stdout


def test_output_file_and_never_onto_an_input(results, invoke, tmp_path):
    base, cand = results
    report = tmp_path / "report.json"
    run = invoke("compare", str(base), str(cand), "--format", "json", "-o", str(report))
    assert run.returncode == 0 and run.stdout == "" and json.loads(report.read_text())["kind"] == "compare"
    for target in (base, cand, tmp_path / "base.preds", tmp_path / "cand.preds"):
        before = target.read_bytes()
        run = invoke("compare", str(base), str(cand), "--format", "json", "-o", str(target))
        assert run.returncode == 2 and "refusing to overwrite" in run.stderr
        assert target.read_bytes() == before


def test_exit_2_for_bad_input(results, invoke, tmp_path):
    base, cand = results
    run = invoke("compare", str(base), str(cand), "--max-drop-top1", "lots")
    assert run.returncode == 2 and "is not a number" in run.stderr
    assert invoke("compare", str(base), str(cand), "--alpha", "2").returncode == 2
    other_rows, _ = random_eval_pair(seed=4, n=400, num_classes=7, worse=0.0)
    other = eval_result(tmp_path, "other", other_rows, 7)
    run = invoke("compare", str(base), str(other))
    assert run.returncode == 2 and "Refusing to compare" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert invoke("compare", str(base), str(other), "--allow-different-data").returncode == 0
    run = invoke("compare", str(base), str(other), "--allow-different-data", "--alpha", "0.05")
    assert run.returncode == 2 and "alpha needs paired images" in run.stderr
    (tmp_path / "cand.preds").write_bytes((tmp_path / "cand.preds").read_bytes() + b"\n")
    run = invoke("compare", str(base), str(cand))
    assert run.returncode == 2 and "sha256" in run.stderr
    diag = tmp_path / "d.json"
    diag.write_text(json.dumps(diagnose_dict([], ["a"])))
    run = invoke("compare", str(base), str(diag))
    assert run.returncode == 2 and "cannot compare a eval result" in run.stderr
    assert invoke("compare", str(base), str(tmp_path)).returncode == 2  # a folder and a file


def test_diagnose_json_new_error_exits_1(invoke, tmp_path):
    base, cand = tmp_path / "b.json", tmp_path / "c.json"
    base.write_text(json.dumps(diagnose_dict([("spikes", "warning", "s.", "a")], ["a"])))
    cand.write_text(json.dumps(diagnose_dict([("loss-not-finite", "error", "NaN.", "a")], ["a"])))
    run = invoke("compare", str(base), str(cand))
    assert run.returncode == 1 and "no-new-errors" in run.stderr
    assert invoke("compare", str(cand), str(base)).returncode == 0


def test_compare_imports_no_torch(results):
    base, cand = results
    code = ("import sys\nfrom nnprobe.cli import main\ntry:\n    main(['compare', %r, %r, '--format', 'json'])\n"
            "except SystemExit as exc:\n    assert exc.code == 0, exc.code\nassert 'torch' not in sys.modules\n"
            % (str(base), str(cand)))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
