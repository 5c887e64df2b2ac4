"""Hostile training logs for `nnprobe diagnose`: a gate must never pass on nothing, never hang on a pipe or
a device named like a log, never silently drop a log it could not read, and never hide a NaN.

Each case asserts the exact exit code, the one `Error:` line (or the exact findings when the run is still
judged), and that no file in the run folder changed. FIFOs and /dev/zero run in a subprocess with a timeout.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostile_helpers import Inputs, expect_refusal

from diagnose_helpers import write_events

GOOD_CSV = "step,loss\n0,2.0\n1,1.5\n2,1.2\n"
NOT_UTF8 = bytes(range(128, 256)) * 2  # no valid UTF-8 sequence, no newline


def nested(depth: int) -> str:
    return "[" * depth


# name -> (files to write, a fragment of the one error line); each exits 2
REFUSED = {
    "random-event-file": ({"events.out.tfevents.1.x": os.urandom(300)},
        "events.out.tfevents.1.x has no readable record"),
    "binary-metrics-csv": ({"metrics.csv": NOT_UTF8}, "metrics.csv has no readable record"),
    "nested-trainer-state": ({"trainer_state.json": nested(100_000)},
        "trainer_state.json is not a trainer_state.json: its JSON nests too deeply"),
    "invalid-trainer-state": ({"trainer_state.json": "{not json}"},
        "trainer_state.json is not valid JSON: Expecting property name"),
    "trainer-state-without-history": ({"trainer_state.json": '{"global_step": 5}'},
        "trainer_state.json has no log_history list"),
    "cut-trainer-state": ({"trainer_state.json": '{"log_history": [{"loss": 1.'},
        "trainer_state.json is not valid JSON: it ends before the JSON does"),
    "cut-only-jsonl-line": ({"x.jsonl": '{"step": 1, "lo'}, "x.jsonl: the last line was cut while being written"),
    "jsonl-of-non-objects": ({"x.jsonl": "1\n2\n[3]\n"},
        "x.jsonl has no readable record (at line 1: line is not a JSON object"),
    "jsonl-of-garbage": ({"x.jsonl": "garbage\nmore garbage\n"},
        "x.jsonl has no readable record (at line 1: line is not JSON"),
    "csv-rows-wider-than-header": ({"metrics.csv": "step,loss\n0,1,2,3\n1,1,2,3\n"},
        "metrics.csv has no readable record (at line 2: row has 4 cells"),
    "csv-without-axis": ({"metrics.csv": "loss\n1.0\n"},
        "metrics.csv is not a metrics table (no epoch or step column)"),
    "header-only-csv": ({"metrics.csv": "step,loss\n"}, "the log files hold no scalar values"),
    "empty-event-file": ({"events.out.tfevents.1.x": b""}, "the log files hold no scalar values"),
    "trainer-state-over-cap": ({"trainer_state.json": ("sparse", (128 << 20) + 1)},
        "trainer_state.json is 134,217,729 bytes, over the 128 MiB limit"),
    "jsonl-over-cap": ({"x.jsonl": ("sparse", (256 << 20) + 1)},
        "x.jsonl is 268,435,457 bytes, over the 256 MiB limit"),
}


def write(folder: Path, files: dict) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):  # ("sparse", size): a hole, no disk used
            with open(path, "wb") as handle:
                handle.truncate(content[1])
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_run_with_nothing_readable_exits_2(invoke, tmp_path, case):
    files, fragment = REFUSED[case]
    run = tmp_path / "run"
    run.mkdir()
    write(run, files)
    inputs = Inputs(run)
    line = expect_refusal(invoke("diagnose", str(run)), 2, f"no metric could be read from {run}", fragment)
    assert line.endswith(".")
    inputs.unchanged()
    assert sorted(os.listdir(run)) == sorted(files)  # no marker, no partial file


# name -> (files beside a good metrics.csv, exit code, expected (id, severity) findings)
JUDGED = {
    "garbage-event-file-beside-good-csv": ({"events.out.tfevents.1.x": os.urandom(300)}, 1,
                                           [("log-unreadable", "error")]),
    "binary-jsonl-beside-good-csv": ({"x.jsonl": NOT_UTF8}, 1, [("log-unreadable", "error")]),
    "nested-trainer-state-beside-good-csv": ({"trainer_state.json": nested(100_000)}, 1,
                                             [("log-unreadable", "error")]),
    "cut-last-jsonl-line-is-a-live-run": ({"x.jsonl": '{"step": 0, "acc": 0.5}\n{"step": 1, "acc": 0.'}, 0,
                                          [("log-truncated", "warning")]),
    "cut-last-event-record-is-a-live-run": ({"events.out.tfevents.1.x": ("cut-events", 7)}, 0,
                                            [("log-truncated", "warning")]),
    "hparams-5000-digit-num-classes": ({"hparams.yaml": "num_classes: " + "9" * 5000 + "\n"}, 0,
                                       [("num-classes-ignored", "warning")]),
    "hparams-negative-num-classes": ({"hparams.yaml": "num_classes: -10\n"}, 0, [("num-classes-ignored", "warning")]),
    "hparams-string-num-classes": ({"hparams.yaml": "num_classes: ten\n"}, 0, [("num-classes-ignored", "warning")]),
    "config-5000-digit-num-labels": ({"config.json": '{"num_labels": ' + "9" * 5000 + "}"}, 0,
                                     [("num-classes-ignored", "warning")]),
    "config-negative-num-labels": ({"config.json": '{"num_labels": -3}'}, 0, [("num-classes-ignored", "warning")]),
    "config-string-num-labels": ({"config.json": '{"num_labels": "10"}'}, 0, [("num-classes-ignored", "warning")]),
    "nan-val-accuracy": ({"metrics.csv": "step,loss,val_acc\n0,2.0,0.3\n1,1.5,nan\n2,1.2,0.5\n"}, 1,
                         [("metric-not-finite", "error")]),
    "400-digit-integer-loss-is-inf": ({"metrics.csv": None, "x.jsonl": '{"step": 0, "loss": ' + "9" * 400 + "}\n"
                                       '{"step": 1, "loss": 1.0}\n'}, 1, [("loss-not-finite", "error")]),
}


def cut_events(path: Path, cut: int) -> bytes:
    write_events(path, [("acc", 0.5 + 0.01 * i, i, 100.0 + i) for i in range(5)])
    return path.read_bytes()[:-cut]


@pytest.mark.parametrize("case", sorted(JUDGED))
def test_an_unreadable_file_beside_readable_ones_is_judged(invoke, tmp_path, case):
    files, code, expected = JUDGED[case]
    run = tmp_path / "run"
    run.mkdir()
    files = {"metrics.csv": GOOD_CSV, **files}  # the readable log, unless the case replaces it
    if files["metrics.csv"] is None:
        del files["metrics.csv"]
    for name, content in list(files.items()):
        if isinstance(content, tuple) and content[0] == "cut-events":
            files[name] = cut_events(tmp_path / "scratch" / name, content[1])
    write(run, files)
    inputs = Inputs(run)
    proc = invoke("diagnose", str(run), "--format", "json")
    assert proc.returncode == code, proc.stderr
    assert "Error:" not in proc.stderr and "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert sorted((f["id"], f["severity"]) for f in report["findings"]) == sorted(expected)
    inputs.unchanged()


def test_two_independent_csvs_are_two_runs_and_the_first_runs_nan_is_seen(invoke, tmp_path):
    (tmp_path / "a.csv").write_text("step,loss\n0,2.0\n1,nan\n2,1.0\n")
    (tmp_path / "b.csv").write_text("step,loss\n0,2.0\n1,1.5\n2,1.0\n")
    inputs = Inputs(tmp_path)
    proc = invoke("diagnose", str(tmp_path), "--format", "json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert [r["path"] for r in report["runs"]] == ["a.csv", "b.csv"]
    assert [(f["run"], f["id"], f["evidence"]["step"]) for f in report["findings"]] == [("a.csv", "loss-not-finite", 1)]
    assert all(r["superseded_points"] == 0 for r in report["runs"])
    inputs.unchanged()


def test_trainer_state_nan_spellings_are_each_an_error(invoke, tmp_path):
    for token, shown in (("NaN", "nan"), ("Infinity", "inf"), ("-Infinity", "-inf")):
        run = tmp_path / token
        run.mkdir()
        (run / "trainer_state.json").write_text('{"log_history": [{"loss": 2.0, "step": 10}, {"loss": %s, "step": 20},'
                                                ' {"eval_accuracy": %s, "step": 20}]}' % (token, token))
        inputs = Inputs(run)
        proc = invoke("diagnose", str(run), "--format", "json")
        assert proc.returncode == 1
        findings = {(f["id"], f["severity"], f["evidence"]["step"], f["evidence"]["value"])
                    for f in json.loads(proc.stdout)["findings"]}
        assert findings == {("loss-not-finite", "error", 20, shown), ("metric-not-finite", "error", 20, shown)}
        inputs.unchanged()


def test_symlink_loop_and_linked_file_are_read_once(invoke, tmp_path):
    (tmp_path / "metrics.csv").write_text(GOOD_CSV)
    (tmp_path / "loop").symlink_to(".")
    (tmp_path / "copy.csv").symlink_to("metrics.csv")
    inputs = Inputs(tmp_path)
    proc = invoke("diagnose", str(tmp_path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    (run,) = json.loads(proc.stdout)["runs"]
    assert [(s["path"], s["points"]) for s in run["sources"]] == [(str(tmp_path / "metrics.csv"), 3)]
    assert run["ignored"] == [{"path": str(tmp_path / "copy.csv"),
                               "reason": f"the same file as {tmp_path / 'metrics.csv'} (a link): read once"}]
    inputs.unchanged()


def test_huge_num_classes_option_is_a_usage_error(invoke, tmp_path):
    (tmp_path / "metrics.csv").write_text(GOOD_CSV)
    inputs = Inputs(tmp_path)
    expect_refusal(invoke("diagnose", str(tmp_path), "--num-classes", "9" * 4000), 2,
                   "--num-classes must be an integer from 2 to 1,000,000,000, got a 4000-digit number")
    inputs.unchanged()


# ----------------------------------------------------------------- special files: in a subprocess, bounded

SPECIAL_NAMES = ("events.out.tfevents.1.x", "metrics.csv", "trainer_state.json", "x.jsonl")


def run_cli_bounded(*args: str):
    """`python -m nnprobe ...` that must end within 60 s (a FIFO read would block forever)."""
    env = dict(os.environ)
    env.pop("WORLD_SIZE", None)
    return subprocess.run([sys.executable, "-m", "nnprobe", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def make_special(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="needs FIFOs and /dev/zero")
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
@pytest.mark.parametrize("name", SPECIAL_NAMES)
def test_special_file_named_like_a_log_is_refused_without_hanging(tmp_path, kind, name):
    run = tmp_path / "run"
    run.mkdir()
    make_special(run / name, kind)
    inputs = Inputs(run)
    what = "a FIFO (named pipe)" if kind == "fifo" else "a device"
    expect_refusal(run_cli_bounded("diagnose", str(run)), 2,
                   f"no metric could be read from {run}: {run / name} is {what}, not a regular file.")
    inputs.unchanged()
    assert sorted(os.listdir(run)) == [name]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifos_beside_a_good_log_are_unreadable_findings(tmp_path):
    (tmp_path / "metrics.csv").write_text(GOOD_CSV)
    os.mkfifo(tmp_path / "x.jsonl")
    os.mkfifo(tmp_path / "hparams.yaml")
    os.mkfifo(tmp_path / "training.log")  # a .log is sniffed for a CSVLogger header: never opened blocking
    inputs = Inputs(tmp_path)
    proc = run_cli_bounded("diagnose", str(tmp_path), "--format", "json")
    assert proc.returncode == 1, proc.stderr
    findings = sorted((f["id"], f["severity"], f["message"]) for f in json.loads(proc.stdout)["findings"])
    assert findings == [
        ("log-unreadable", "error", "x.jsonl could not be read: it is a FIFO (named pipe), not a regular file."),
        ("num-classes-ignored", "warning",
         "hparams.yaml is a FIFO (named pipe), not a regular file, so it was ignored."),
    ]
    inputs.unchanged()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_given_as_the_path_is_refused(tmp_path):
    os.mkfifo(tmp_path / "x.jsonl")
    expect_refusal(run_cli_bounded("diagnose", str(tmp_path / "x.jsonl")), 2,
                   f"{tmp_path / 'x.jsonl'} is a FIFO (named pipe), not a regular file.")
