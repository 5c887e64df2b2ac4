"""Every path parameter of every command, enumerated from the option dataclasses (nnprobe.options.verbs), so a
new one is covered the day it is declared: each input fed a FIFO, /dev/zero, a folder and a symlink loop
(exit 2, one sentence, well under the timeout, nothing read or changed); each output pointed at each input of
the command, and at a FIFO (exit 2, no input's bytes changed); $GITHUB_STEP_SUMMARY pointed at each input (one
warning, the input unchanged, the report still written to -o)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostile_helpers import Inputs, expect_refusal
from nnprobe.options.base import PathKind
from nnprobe.options.verbs import VERBS, fields

HOSTILE = ("fifo", "dev-zero", "folder", "loop")
TIMEOUT = 20  # seconds; a refusal takes well under one, a hang would take forever


def _paths(kind: str) -> list[tuple[str, str, str, object]]:
    """(verb, group, field, spec) of every CLI path field of the given kinds."""
    return [(verb, key, name, spec) for verb, groups in VERBS.items() for key, name, spec in fields(groups)
            if spec.cli and spec.path in kind]


INPUTS = _paths((PathKind.INPUT, PathKind.INPUT_FOLDER))
OUTPUTS = _paths((PathKind.OUTPUT, PathKind.OUTPUT_FOLDER))


def test_the_enumeration_sees_every_known_path():
    """The walk can fail: it finds the paths a user can name on each command today."""
    names = {(verb, spec.flag) for verb, _, _, spec in INPUTS + OUTPUTS}
    assert {("eval", "--labels"), ("eval", "--real-labels"), ("eval", "--baseline"), ("eval", "--model"),
            ("merge", "PART..."), ("compare", "BASELINE"), ("compare", "CANDIDATE"), ("diagnose", "--baseline"),
            ("fool", "IMAGE..."), ("eval", "-o"), ("merge", "--save-predictions"), ("fool", "--out"),
            ("robust", "--plot"), ("diagnose", "--plot")} <= names


@pytest.fixture
def world(tmp_path):
    """A minimal valid command line per verb (the guards run before any work, so the files need only exist),
    and the hostile paths."""
    data = tmp_path / "data" / "n01440764"
    data.mkdir(parents=True)
    (data / "fish.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("step,train_loss\n0,2.3\n1,2.1\n")
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"schema_version": 1, "kind": "eval"}))
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    os.mkfifo(hostile / "fifo")
    (hostile / "folder").mkdir()
    os.symlink(hostile / "loop", hostile / "loop")
    paths = {"fifo": str(hostile / "fifo"), "dev-zero": "/dev/zero", "folder": str(hostile / "folder"),
             "loop": str(hostile / "loop")}
    base = {"eval": ["eval", str(tmp_path / "data")], "robust": ["robust", str(tmp_path / "data")],
            "corruptions": ["corruptions", str(tmp_path / "data")], "follow": ["follow", str(run), "--idle", "0"],
            "fool": ["fool", str(data / "fish.jpg")], "diagnose": ["diagnose", str(run)],
            "compare": ["compare", str(result), str(result)], "merge": ["merge", str(result)],
            "models": ["models", str(data / "*")]}  # lists local files by name, reads none
    return tmp_path, base, paths


@pytest.fixture
def in_time():
    """Fail (instead of hanging the suite) when a command blocks."""

    def expired(signum, frame):
        raise TimeoutError(f"no answer within {TIMEOUT} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _with(base: list[str], spec, value: str) -> list[str]:
    """The command line with this path parameter set to `value` (an argument replaces the positional one)."""
    args = list(base)
    if spec.argument:
        positions = {"BASELINE": 1, "CANDIDATE": 2}
        args[positions.get(spec.flag, 1)] = value
        return args
    extra = [spec.flag, value]
    if spec.flag in ("--model", "--data") and args[0] == "diagnose":  # the probe takes both
        extra += ["--data", str(Path(base[1]).parent)] if spec.flag == "--model" else ["--model", "resnet18"]
    return args + extra


# A folder is what a folder parameter names, and a run folder is a valid input where `run_ok` (compare two
# runs, diagnose --baseline RUN): those get the FIFO, the device and the loop only.
CASES = [(*item, hostile) for item in INPUTS for hostile in HOSTILE
         if not (hostile == "folder" and (item[3].path == PathKind.INPUT_FOLDER or item[3].run_ok))]


@pytest.mark.parametrize("verb, key, name, spec, hostile", CASES,
                         ids=[f"{v}-{s.flag}-{h}" for v, _, _, s, h in CASES])
def test_every_input_refuses_what_is_not_a_file(verb, key, name, spec, hostile, world, invoke, in_time):
    tmp_path, base, paths = world
    inputs = Inputs(tmp_path / "data", tmp_path / "run", tmp_path / "result.json")
    started = time.monotonic()
    proc = invoke(*_with(base[verb], spec, paths[hostile]))
    elapsed = time.monotonic() - started
    expect_refusal(proc, 2)
    assert elapsed < TIMEOUT
    inputs.unchanged()


def _inputs_of(verb: str, tmp_path: Path) -> list[str]:
    """Files each base command reads (an output may be none of them)."""
    return {"eval": [str(tmp_path / "data" / "n01440764" / "fish.jpg")],
            "corruptions": [str(tmp_path / "data" / "n01440764" / "fish.jpg")],
            "follow": [str(tmp_path / "run" / "metrics.csv")],
            "robust": [str(tmp_path / "data" / "n01440764" / "fish.jpg")],
            "fool": [str(tmp_path / "data" / "n01440764" / "fish.jpg")],
            "diagnose": [str(tmp_path / "run" / "metrics.csv")],
            "compare": [str(tmp_path / "result.json")], "merge": [str(tmp_path / "result.json")],
            "models": []}[verb]


@pytest.mark.parametrize("verb, key, name, spec", OUTPUTS, ids=[f"{v}-{s.flag}" for v, _, _, s in OUTPUTS])
def test_every_output_refuses_an_input_and_a_fifo(verb, key, name, spec, world, invoke, in_time):
    tmp_path, base, paths = world
    inputs = Inputs(tmp_path / "data", tmp_path / "run", tmp_path / "result.json")
    targets = _inputs_of(verb, tmp_path)
    if spec.path == PathKind.OUTPUT:
        targets = targets + [paths["fifo"]]
    else:  # an output folder: the folder an input sits in
        targets = [os.path.dirname(t) for t in targets]
    for target in targets:
        proc = invoke(*base[verb], spec.flag, target)
        expect_refusal(proc, 2)
    inputs.unchanged()


FOLDERS = [item for item in OUTPUTS if item[3].path == PathKind.OUTPUT_FOLDER]
CHECK = "import sys\nfrom nnprobe.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n" \
        "    print(e.code, 'torch' in sys.modules)"


@pytest.mark.parametrize("verb, key, name, spec", FOLDERS, ids=[f"{v}-{s.flag}" for v, _, _, s in FOLDERS])
def test_an_output_folder_among_the_inputs_is_refused_before_any_work(verb, key, name, spec, world):
    """By the preflight, in a fresh process that never imports torch: fool --out was refused only after
    torch, timm and the default model had loaded (7.6 s at load 8; once over the 20 s alarm above)."""
    tmp_path, base, _ = world
    inputs = Inputs(tmp_path / "data", tmp_path / "run", tmp_path / "result.json")
    folder = os.path.dirname(_inputs_of(verb, tmp_path)[0])
    for target, words in ((folder, "is the folder of the input"), (os.path.dirname(folder), "lies inside the data set")):
        proc = subprocess.run([sys.executable, "-c", CHECK, *base[verb], spec.flag, target], capture_output=True,
                              text=True, timeout=120)
        assert proc.stdout.split() == ["2", "False"], proc.stderr  # exit 2, torch never imported
        assert len(proc.stderr.splitlines()) == 1 and words in proc.stderr, proc.stderr
    inputs.unchanged()


@pytest.mark.parametrize("target", ["result", "per-sample", "fifo"])
def test_the_step_summary_never_lands_on_an_input(target, tmp_path, invoke, monkeypatch, in_time):
    """compare (no torch: cheap) with $GITHUB_STEP_SUMMARY naming its own input: one warning, the input
    unchanged, the report still written to -o."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compare"))
    from compare_helpers import eval_result, random_eval_pair

    base_rows, cand_rows = random_eval_pair(seed=3, n=40, num_classes=3, worse=0.1)
    base, cand = eval_result(tmp_path, "base", base_rows, 3), eval_result(tmp_path, "cand", cand_rows, 3)
    hostile = {"result": base, "per-sample": tmp_path / "base.preds", "fifo": tmp_path / "fifo"}[target]
    if target == "fifo":
        os.mkfifo(hostile)
    inputs = Inputs(base, cand, tmp_path / "base.preds")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(hostile))
    proc = invoke("compare", str(base), str(cand), "-o", str(tmp_path / "report.txt"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sum(line.startswith("warning: not appending the summary") for line in proc.stderr.splitlines()) == 1
    assert (tmp_path / "report.txt").stat().st_size > 0
    inputs.unchanged()
