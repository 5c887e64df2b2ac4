"""stdout is the report, even when a model factory prints from Python and from C: for every command,
and under torchrun. The chatter is not lost: it goes to stderr."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import PLAIN_FLAGS, TESTS, make_wnid_folders, solid_image

CHATTY = ["--model", f"{TESTS / 'cli' / 'chatty_models.py'}:chatty_color_net"]
RUNS = TESTS.parent / "samples" / "runs"


def _run(argv, torchrun=False):
    env = dict(os.environ)
    env.pop("WORLD_SIZE", None)
    head = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] if torchrun \
        else [sys.executable]
    return subprocess.run([*head, "-m", "nnprobe", *argv], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_wnid_folders(tmp_path_factory.mktemp("purity") / "data", {5: 2, 400: 1})


@pytest.mark.parametrize("command", ["eval", "robust", "fool", "diagnose", "eval-torchrun"])
def test_json_stdout_stays_json_when_the_factory_prints(command, data, tmp_path):
    torchrun = command.endswith("-torchrun")
    if command.startswith("eval"):
        argv = ["eval", str(data), *CHATTY, *PLAIN_FLAGS, "--workers", "0", "--device", "cpu"]
    elif command == "robust":
        argv = ["robust", str(data), *CHATTY, *PLAIN_FLAGS, "--workers", "0", "--eps", "0,1/255", "--steps", "1"]
    elif command == "fool":
        argv = ["fool", str(solid_image(tmp_path / "p.png", (0.3, 0.2, 0.7))), *CHATTY, *PLAIN_FLAGS,
                "--out", str(tmp_path / "out")]
    else:  # the prediction probe loads the model too
        argv = ["diagnose", str(RUNS / "healthy"), *CHATTY, "--data", str(data)]
    proc = _run([*argv, "--format", "json"], torchrun=torchrun)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    body = json.loads(proc.stdout)  # nothing but the report
    assert body["kind"] == command.split("-")[0]
    ranks = 2 if torchrun else 1
    # Python-level writes of ranks other than 0 are silenced (only rank 0 speaks); C-level ones reach fd 2
    assert proc.stderr.count("Loaded pretrained weights for chatty_color_net") == 1, proc.stderr[-3000:]
    assert proc.stderr.count("C-level chatter on fd 1") == ranks, proc.stderr[-3000:]


def test_help_still_goes_to_stdout():
    proc = _run(["eval", "--help"])
    assert proc.returncode == 0 and proc.stdout.startswith("Usage: nnprobe eval")


@pytest.mark.parametrize("argv", [["diagnose", str(RUNS / "healthy")], ["diagnose", str(RUNS / "nan-loss")]])
def test_closed_stderr_still_gives_the_report_and_the_exit_code(argv):
    """`2>&-` in a CI step: notes and errors have nowhere to go, the report and the exit code still do."""
    env = dict(os.environ)
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run([sys.executable, "-m", "nnprobe", *argv, "--format", "json"], stdout=subprocess.PIPE,
                          env=env, timeout=120, preexec_fn=lambda: os.close(2), text=True)
    assert json.loads(proc.stdout)["kind"] == "diagnose"
    assert proc.returncode == (1 if argv[1].endswith("nan-loss") else 0)
