"""The eval command as users run it: exit codes, stdout purity, atomic -o, junit, help without torch."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from helpers import PLAIN_FLAGS, factory_spec, make_wnid_folders


@pytest.fixture
def data(tmp_path):
    return make_wnid_folders(tmp_path / "data", {5: 3, 400: 3}, wrong={400: 2})  # top-1 = 6/8


def eval_args(data, *extra):
    return ["eval", str(data), "--model", factory_spec("color_net_1000"), *PLAIN_FLAGS, "--workers", "0", *extra]


def test_json_stdout_is_only_the_report(data, invoke):
    proc = invoke(*eval_args(data, "--format", "json"))
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)  # nothing else on stdout
    assert body["schema_version"] == 1 and body["kind"] == "eval"
    assert (body["correct_top1"], body["correct_top5"], body["total"]) == (6, 6, 8)
    assert body["top1"] == 0.75 and body["top5"] == 0.75
    assert body["model"]["preprocessing"]["resize_size"] == 40
    assert body["data"]["layout"] == "folders:wnid"
    assert set(body["run"]["versions"]) >= {"torch", "torchvision", "nnprobe"}


def test_gate_failure_exits_1_and_junit_lists_it(data, tmp_path, invoke):
    out = tmp_path / "eval.xml"
    proc = invoke(*eval_args(data, "--min-top1", "0.8", "--min-top5", "70%", "--format", "junit", "-o", str(out)))
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    suite = ET.parse(out).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["min-top1"].find("failure") is not None and cases["min-top5"].find("failure") is None


def test_gate_pass_exits_0(data, invoke):
    assert invoke(*eval_args(data, "--min-top1", "0.75")).returncode == 0


@pytest.mark.parametrize("args, message", [
    (["--model", "no_such_model_xyz"], "is not a file, a torchvision model name"),
    (["--min-top1", "1.5"], "not a fraction"),
    (["--device", "tpu"], "--device 'tpu'"),
    (["--limit", "0"], "--limit '0' must be at least 1."),
])
def test_bad_input_is_one_sentence_and_exit_2(data, args, message, invoke):
    base = eval_args(data)
    if args[0] == "--model":
        base = ["eval", str(data), "--workers", "0"]
    proc = invoke(*base, *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_missing_data_folder_exit_2(tmp_path, invoke):
    proc = invoke("eval", str(tmp_path / "nope"), "--model", factory_spec("color_net_1000"), *PLAIN_FLAGS)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_output_file_is_complete_or_absent(data, tmp_path, invoke):
    out = tmp_path / "r.json"
    proc = invoke(*eval_args(data, "--format", "json", "-o", str(out)))
    assert proc.returncode == 0 and proc.stdout == ""
    assert json.loads(out.read_text())["total"] == 8
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    # A run that fails before writing leaves no report behind.
    out2 = tmp_path / "r2.json"
    assert invoke(*eval_args(tmp_path / "nope", "--format", "json", "-o", str(out2))).returncode == 2
    assert not out2.exists()


def test_strict_turns_a_broken_file_into_exit_2(data, invoke):
    (data / next(p.name for p in data.iterdir()) / "broken.jpg").write_bytes(b"not a jpeg")
    assert invoke(*eval_args(data)).returncode == 0
    proc = invoke(*eval_args(data, "--strict"))
    assert proc.returncode == 2 and "broken.jpg" in proc.stderr and "--strict" in proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["eval", "--help"], ["fool", "--help"], ["robust", "--help"],
                                  ["diagnose", "--help"], ["--version"]])
def test_help_does_not_import_torch(argv):
    code = ("import sys\nfrom nnprobe.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "nnprobe" in proc.stdout


def test_internal_errors_exit_3_without_traceback(monkeypatch, capsys):
    from nnprobe import cli

    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(cli.cli, "main", boom)
    with pytest.raises(SystemExit) as info:
        cli.main(["eval"])
    assert info.value.code == 3
    err = capsys.readouterr().err
    assert "Internal error: RuntimeError: kaboom" in err and "Traceback" not in err


def test_save_predictions_is_recorded_and_never_lands_on_an_input(data, tmp_path, invoke):
    from nnprobe.per_sample import file_sha256, read

    rows = tmp_path / "base.preds"
    proc = invoke(*eval_args(data, "--format", "json", "--save-predictions", str(rows)))
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["per_sample"] == {"path": str(rows), "sha256": file_sha256(str(rows)), "rows": 8}
    header, lines = read(str(rows))
    assert header["data_fingerprint"] == body["data"]["fingerprint"] and len(lines) == 8
    assert sum(line["correct"] for line in lines) == body["correct_top1"] == 6
    image = next(data.rglob("*.png"))
    before = image.read_bytes()
    refused = invoke(*eval_args(data, "--save-predictions", str(image)))
    assert refused.returncode == 2 and "--save-predictions" in refused.stderr and image.read_bytes() == before
    inside = invoke(*eval_args(data, "--save-predictions", str(data / "rows.jsonl")))
    assert inside.returncode == 2 and not (data / "rows.jsonl").exists()
