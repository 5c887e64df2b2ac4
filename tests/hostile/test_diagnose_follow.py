"""Issue 17 parts 3-5 (diagnose's share): follow never misses a rotated or rewritten log and never passes
on nothing, --kill-on-error refuses every process that started nnprobe, remote reads give up in bounded
time, and an out-of-range field is its record's problem. Each case under a timeout, inputs hashed."""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hostile_helpers import Inputs, expect_refusal
from nnprobe.diagnosis import diagnose
from nnprobe.diagnosis.follow import follow
from nnprobe.errors import InputError

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
ENV.pop("WORLD_SIZE", None)


def cli(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "nnprobe", *args], capture_output=True, text=True,
                          env=env or ENV, timeout=timeout)


def lines(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


HEALTHY = [{"step": s, "loss": 2.3 - 0.01 * s} for s in range(30)]


class Script:
    """A `sleep` for follow(): runs the i-th action at the i-th poll (the writer, simulated step by step)."""

    def __init__(self, *actions):
        self.actions, self.calls = list(actions), 0

    def __call__(self, _seconds):
        if self.calls < len(self.actions) and self.actions[self.calls] is not None:
            self.actions[self.calls]()
        self.calls += 1


def test_follow_started_before_the_run_folder_exists_catches_its_nan(tmp_path):
    run = tmp_path / "later" / "run"

    def create():
        run.mkdir(parents=True)
        (run / "log.jsonl").write_text(lines(HEALTHY))

    def nan():
        with open(run / "log.jsonl", "a") as handle:
            handle.write('{"step": 30, "loss": NaN}\n')

    result = follow(str(run), poll=0, idle=60, wait=60, sleep=Script(None, None, create, nan))
    assert result.status == "error" and result.finding.id == "loss-not-finite" and result.step == 30


def test_follow_of_a_path_that_never_appears_exits_2_after_wait(tmp_path):
    started = time.monotonic()
    proc = cli("diagnose", "--follow", str(tmp_path / "never"), "--wait", "1", "--poll", "0.2")
    expect_refusal(proc, 2, "does not exist after waiting 1 s (--wait)")
    assert time.monotonic() - started < 30
    proc = cli("diagnose", "--follow", str(tmp_path), "--wait", "0.5", "--poll", "0.1")
    expect_refusal(proc, 2, f"{tmp_path} holds no training log after waiting 0.5 s")


@pytest.mark.parametrize("case", ["random-bytes-event-file", "empty-jsonl", "fifo"])
def test_a_follow_that_reads_nothing_never_passes(tmp_path, case):
    if case == "fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("needs FIFOs")
    if case == "random-bytes-event-file":
        (tmp_path / "events.out.tfevents.1.h").write_bytes(os.urandom(4096))
    elif case == "empty-jsonl":
        (tmp_path / "log.jsonl").write_text("")
    else:
        os.mkfifo(tmp_path / "log.jsonl")
    inputs = Inputs(tmp_path)
    proc = cli("diagnose", "--follow", str(tmp_path), "--poll", "0.1", "--idle", "0.5", "--wait", "0")
    expect_refusal(proc, 2, f"no metric could be read from {tmp_path}")
    inputs.unchanged()


def test_a_rotated_log_is_read_from_its_start(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(lines(HEALTHY))

    def rotate():  # logrotate-style: the old file renamed away, a new one under the name, with a NaN
        os.rename(log, tmp_path / "old.jsonl.1")
        log.write_text(lines([{"step": 30 + s, "loss": 2.0 if s != 3 else math.nan} for s in range(40)]))

    result = follow(str(tmp_path), poll=0, idle=60, sleep=Script(rotate))
    assert result.status == "error" and result.finding.id == "loss-not-finite" and result.step == 33
    assert result.restarts == 1


def test_a_log_rewritten_in_place_longer_is_read_again(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(lines(HEALTHY))

    def rewrite():  # same inode, new content longer than before: its first bytes differ
        with open(log, "r+") as handle:
            handle.write(lines([{"step": s, "loss": 2.0 if s != 5 else math.nan, "acc": 0.5} for s in range(60)]))

    result = follow(str(tmp_path), poll=0, idle=60, sleep=Script(rewrite))
    assert os.stat(log).st_ino == os.stat(log).st_ino and result.restarts == 1
    assert result.status == "error" and result.finding.id == "loss-not-finite" and result.step == 5


def test_corrupt_logs_give_the_finding_one_shot_diagnose_gives(tmp_path):
    (tmp_path / "log.jsonl").write_text(lines(HEALTHY[:15]) + "{not json\n" + lines(HEALTHY[15:]))
    (tmp_path / "x.jsonl").write_bytes(b"\xff\xfe garbage that is no JSON at all\n")
    one_shot = diagnose(tmp_path, fail_on="warning")
    expected = sorted((f.id, f.severity, f.message) for f in one_shot.findings
                      if f.severity in ("error", "warning"))
    assert {"log-corrupt", "log-unreadable"} <= {e[0] for e in expected}
    result = follow(str(tmp_path), poll=0, idle=0, fail_on="warning", sleep=lambda _: None)
    assert result.status == "error"
    assert sorted((f.id, f.severity, f.message) for f in result.findings) == expected


def _wrapper_pid_cli(tmp_path, wrapper):
    """nnprobe started by `wrapper`, asked to kill the wrapper's own shell (an ancestor of nnprobe)."""
    (tmp_path / "log.jsonl").write_text(lines(HEALTHY))
    command = f'exec {wrapper} {sys.executable} -m nnprobe diagnose --follow {tmp_path} --kill-on-error "$$"'
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=ENV, timeout=60)


@pytest.mark.parametrize("wrapper", ["", "nice -n 1", "timeout 50"])
def test_kill_on_error_refuses_every_ancestor(tmp_path, wrapper):
    proc = _wrapper_pid_cli(tmp_path, wrapper)
    expect_refusal(proc, 2, "is nnprobe itself or a process that started it")


def test_kill_on_error_refuses_the_grandparent_behind_a_script(tmp_path):
    (tmp_path / "log.jsonl").write_text(lines(HEALTHY))
    script = tmp_path / "wrap.sh"
    script.write_text(f'#!/bin/sh\n{sys.executable} -m nnprobe diagnose --follow {tmp_path} --kill-on-error "$1"\n')
    script.chmod(0o755)
    proc = subprocess.run(["sh", "-c", f'{script} "$$"'], capture_output=True, text=True, env=ENV, timeout=60)
    expect_refusal(proc, 2, "is nnprobe itself or a process that started it")


@pytest.mark.parametrize("pid", ["99999999999999999999999999999999", str(2**63), "9" * 4000])
def test_a_pid_beyond_any_pid_is_one_sentence(tmp_path, pid):
    (tmp_path / "log.jsonl").write_text(lines(HEALTHY))
    expect_refusal(cli("diagnose", "--follow", str(tmp_path), "--kill-on-error", pid), 2,
                   "no process can have that PID")


class Silent:
    """A TCP server that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return


def _s3_env(port):
    url = f"http://127.0.0.1:{port}"
    return {**ENV, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": url, "FSSPEC_S3_ENDPOINT_URL": url}


def test_a_dead_s3_endpoint_gives_up_in_bounded_time():
    """A refused endpoint fails at once, a silent one after its --timeout 1 requests (one attempt each, not
    s3fs' and botocore's retries). The silent one is bounded beyond the refused one's time, which is the same
    process (interpreter, imports) minus the waits: a fixed bound on the total raced with load."""
    pytest.importorskip("s3fs")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    refused = probe.getsockname()[1]
    probe.close()  # nothing listens there now: connections are refused
    took = {}
    for server, port in (("refused", refused), ("silent", Silent().port)):
        started = time.monotonic()
        proc = cli("diagnose", "s3://bucket/run", "--timeout", "1", env=_s3_env(port), timeout=120)
        took[server] = time.monotonic() - started
        expect_refusal(proc, 2, "s3://bucket/run")
    assert took["refused"] < 10, took  # interpreter start-up included
    assert took["silent"] - took["refused"] < 10, took  # ~5 s of 1 s timeouts at load 10 (retries: minutes)


def test_an_out_of_range_mlflow_step_or_timestamp_is_that_lines_problem(tmp_path):
    run = tmp_path / "mlruns" / "1" / "abc"
    (run / "metrics").mkdir(parents=True)
    (run / "meta.yaml").write_text("run_id: abc\nrun_name: r\nstatus: 3\n")
    rows = [f"{1700000000000 + s} {2.3 - 0.01 * s} {s}" for s in range(20)]
    rows[7] = f"1700000000007 1.0 {'9' * 31}"  # a 31-digit step
    rows[9] = f"{30000 * 365 * 86400 * 1000} {2.3 - 0.09} 9"  # a timestamp in the year ~30000
    (run / "metrics" / "loss").write_text("\n".join(rows) + "\n")
    inputs = Inputs(tmp_path)
    result = diagnose(tmp_path)
    (report,) = result.runs
    series = report.series["train_loss"]
    assert series.steps.tolist() == [s for s in range(20) if s != 7]
    assert math.isnan(series.walls[series.steps.tolist().index(9)])
    corrupt = [f for f in result.findings if f.id == "log-corrupt"]
    assert corrupt and "int64" in corrupt[0].message
    inputs.unchanged()


def test_follow_with_a_far_future_wall_time_names_the_step(tmp_path):
    run = tmp_path / "mlruns" / "1" / "abc"
    (run / "metrics").mkdir(parents=True)
    (run / "meta.yaml").write_text("run_id: abc\nrun_name: r\nstatus: 1\n")
    far = 30000 * 365 * 86400 * 1000
    (run / "metrics" / "loss").write_text("".join(f"{far} {v} {s}\n" for s, v in enumerate([2.3, 2.2, math.nan])))
    result = follow(str(run), poll=0, idle=60, sleep=lambda _: None)
    assert result.status == "error" and result.step == 2 and result.wall is None


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_out_of_range_step_in_a_text_log_skips_that_record_only(tmp_path, fmt):
    big = "9" * 31
    steps = [str(s) if s != 5 else big for s in range(20)]
    if fmt == "jsonl":
        (tmp_path / "log.jsonl").write_text("".join(f'{{"step": {s}, "loss": {2.0 - 0.01 * i}}}\n'
                                                    for i, s in enumerate(steps)))
    else:
        (tmp_path / "metrics.csv").write_text("step,epoch,loss\n" + "".join(f"{s},0,{2.0 - 0.01 * i}\n"
                                                                             for i, s in enumerate(steps)))
    inputs = Inputs(tmp_path)
    result = diagnose(tmp_path)
    (report,) = result.runs
    assert report.series["train_loss"].steps.tolist() == [s for s in range(20) if s != 5]
    assert report.superseded == 0
    (corrupt,) = [f for f in result.findings if f.id == "log-corrupt"]
    assert "int64" in corrupt.message
    inputs.unchanged()
