"""The diagnose command: exit codes 0/1/2, stdout purity, JUnit validity, no torch import."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nnprobe.cli import main
from nnprobe.diagnosis.checks import CHECKS

from diagnose_helpers import SAMPLES

ROOT = Path(__file__).resolve().parents[2]


def invoke(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["diagnose", *map(str, args)])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_healthy_exits_0_with_table(capsys):
    code, out, err = invoke(capsys, SAMPLES / "healthy")
    assert code == 0
    assert "no findings" in out and "0 error(s), 0 warning(s)" in out
    assert "train_loss" in out and "▁" in out  # the sparkline


def test_pathology_exits_1_and_table_names_the_check(capsys):
    code, out, _ = invoke(capsys, SAMPLES / "nan-loss")
    assert code == 1
    assert "loss-not-finite" in out and "FAILED" in out


@pytest.mark.parametrize(("fail_on", "expected"), [("error", 0), ("warning", 1), ("never", 0)])
def test_fail_on_levels(capsys, fail_on, expected):
    # With K = 2 the healthy run's first loss 2.4 is far above ln 2: one init-loss warning, no error.
    code, out, _ = invoke(capsys, SAMPLES / "healthy", "--fail-on", fail_on, "--num-classes", "2", "--format", "json")
    assert [(f["id"], f["severity"]) for f in json.loads(out)["findings"]] == [("init-loss", "warning")]
    assert code == expected


def test_fail_on_never_passes_even_with_errors(capsys):
    assert invoke(capsys, SAMPLES / "overfitting", "--fail-on", "never")[0] == 0


def test_json_stdout_is_pure_and_carries_the_schema(capsys):
    code, out, err = invoke(capsys, SAMPLES / "hf-masked-nan", "--format", "json")
    assert code == 1
    body = json.loads(out)  # nothing but the report on stdout
    assert body["schema_version"] == 1 and body["kind"] == "diagnose"
    assert {f["id"] for f in body["findings"]} == {"loss-not-finite"}
    for finding in body["findings"]:
        assert set(finding) == {"id", "severity", "message", "evidence", "hint", "run"}
        assert finding["severity"] in ("error", "warning", "info")
    mapping = {m["role"]: m["series"] for m in body["runs"][0]["mapping"]}
    assert mapping["train_loss"] == "loss" and mapping["grad_norm"] == "grad_norm"
    assert {s["id"] for s in body["skipped"]} == {"val-above-train", "run-stalled", "frozen-layer", "dead-relu",
                                                 "vanishing-gradients", "gpu-utilization", "memory-growth",
                                                 "exploding-gradients", "saturated-activations",
                                                 "poor-initialization"}  # no histograms, no system metrics logged
    assert "0 warning(s)" in err


ORIGINAL_SAMPLES = ("healthy", "nan-loss", "chance", "constant-prediction", "divergence", "overfitting",
                    "hf-masked-nan")  # one healthy run and the six pathologies of samples/make_runs.py


def test_junit_one_case_per_check_per_run(capsys, tmp_path):
    import shutil

    for name in ORIGINAL_SAMPLES:
        shutil.copytree(SAMPLES / name, tmp_path / "runs" / name)
    target = tmp_path / "out" / "diagnose.xml"
    target.parent.mkdir()  # -o into a folder that does not exist is refused (cli/preflight.py)
    code, out, err = invoke(capsys, tmp_path / "runs", "--format", "junit", "-o", target)
    assert code == 1 and out == ""
    suite = ET.parse(target).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 7 * len(CHECKS) == int(suite.get("tests"))
    failed = {(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None}
    assert ("nnprobe.diagnose.overfitting", "overfitting") in failed
    assert not any(cls.endswith(".healthy") for cls, _ in failed)
    assert int(suite.get("failures")) == len(failed) == 6  # the error-level checks of the six pathologies
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert int(suite.get("skipped")) == len(skipped) > 0
    assert all(c.find("skipped").get("message") for c in skipped)


def test_unreadable_input_exits_2_with_one_sentence(capsys, tmp_path):
    code, out, err = invoke(capsys, tmp_path / "missing")
    assert code == 2 and out == ""
    assert err.startswith("Error: ") and err.count("\n") == 1 and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    assert invoke(capsys, tmp_path / "empty")[0] == 2


def test_bad_metric_override_exits_2(capsys):
    code, _, err = invoke(capsys, SAMPLES / "healthy", "--metric", "val_acc")
    assert code == 2 and "ROLE=NAME" in err
    code, _, err = invoke(capsys, SAMPLES / "healthy", "--metric", "accuracy=val_acc")
    assert code == 2 and "not one of" in err
    code, _, err = invoke(capsys, SAMPLES / "healthy", "--metric", "val_acc=nope")
    assert code == 2 and "nope" in err


def test_metric_override_is_used_and_reported(capsys):
    code, out, _ = invoke(capsys, SAMPLES / "healthy", "--metric", "train_loss=train_loss_epoch", "--format", "json")
    (mapping,) = [m for m in json.loads(out)["runs"][0]["mapping"] if m["role"] == "train_loss"]
    assert mapping["series"] == "train_loss_epoch" and mapping["note"] == "--metric override"


SNIPPET = """
import sys
from nnprobe.cli import main
try:
    main({args!r})
except SystemExit as exc:
    code = exc.code
print("TORCH" if "torch" in sys.modules else "NO-TORCH", code, file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["diagnose", "--help"], ["diagnose", str(SAMPLES / "nan-loss"), "--format", "json"]])
def test_diagnose_imports_no_torch(args):
    proc = subprocess.run([sys.executable, "-c", SNIPPET.format(args=args)], cwd=ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("NO-TORCH"), proc.stderr
    assert last.split()[1] == ("0" if "--help" in args else "1")


def test_extra_findings_from_other_probes_reach_every_format():
    from nnprobe.diagnosis import Finding, diagnose
    from nnprobe.report import render

    base = diagnose(str(SAMPLES / "healthy"))
    assert not base.failed
    probe = Finding("prediction-collapse", "error", "the model predicts class 3 for 98% of images.",
                    "Check the head.", {"share": 0.98})
    result = base.with_findings([probe])
    assert result.failed and result.findings[-1] is probe and base.extra_findings == ()
    assert "prediction-collapse" in render(result, "table")
    assert json.loads(render(result, "json"))["findings"][-1]["id"] == "prediction-collapse"
    suite = ET.fromstring(render(result, "junit").split("\n", 1)[1]).find("testsuite")
    assert suite.get("failures") == "1" and int(suite.get("tests")) == len(CHECKS) + 1
