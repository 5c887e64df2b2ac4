"""`diagnose --follow`: a live run is read incrementally (every byte once), judged after each poll, and
left at the first error (naming its step), at its end marker or after --idle seconds without data."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from diagnose_helpers import frame, wire_scalar_event
from helpers import wait_in_main
from nnprobe.diagnosis.follow import Follower, check_kill_target, follow
from nnprobe.errors import InputError, UsageError

HELPERS = str(Path(__file__).resolve().parent)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _version() -> bytes:
    from tensorboard.compat.proto.event_pb2 import Event

    return frame(Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString())


WRITER = """
import sys, time
sys.path.insert(0, {helpers!r})
from diagnose_helpers import frame, wire_scalar_event
from tensorboard.compat.proto.event_pb2 import Event
out, nan_step, rate, stop = {path!r}, {nan_step}, {rate}, {stop}
with open(out, "wb", buffering=0) as f:
    f.write(frame(Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString()))
    t0 = time.time()
    for step in range(stop):
        value = float("nan") if step == nan_step else 2.3 - 0.0005 * step
        f.write(frame(wire_scalar_event("train_loss", value, step, 1.7e9 + step)))
        if step == nan_step:
            open(out + ".nan_at", "w").write(repr(time.time()))
        time.sleep(max(0.0, t0 + (step + 1) / rate - time.time()))
"""


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nnprobe", "diagnose", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, **kw)


def test_live_writer_nan_stops_within_one_poll(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    events = run / "events.out.tfevents.1.host"
    diag = _cli("--follow", str(run), "--poll", "0.2", "--idle", "30")
    wait_in_main(diag)  # a fixed 1.5 s raced with start-up under load: diagnose could start after the NaN
    time.sleep(0.5)  # and following the empty folder: the files appear while it follows
    writer = subprocess.Popen([sys.executable, "-c", WRITER.format(helpers=HELPERS, path=str(events), nan_step=300,
                                                                   rate=100, stop=1500)], env=ENV)
    lines: list = []  # (stderr line, when it came): the finding's line is the stop, before the teardown
    reader = threading.Thread(target=lambda: lines.extend((line, time.time()) for line in diag.stderr), daemon=True)
    reader.start()
    try:
        diag.wait(timeout=60)
        reader.join(timeout=60)
    finally:
        writer.kill()
        writer.wait()
    err = "".join(line for line, _ in lines)
    assert diag.returncode == 1, err
    nan_at = float(Path(str(events) + ".nan_at").read_text())
    said = next(when for line, when in lines if "loss-not-finite" in line)
    latency = said - nan_at
    print(f"NaN written -> diagnose said it: {latency:.3f} s")
    assert 0 < latency < 1.2, latency  # one 0.2 s poll plus reading and the finding's line, on 2 shared cores
    assert "loss-not-finite at step 300" in err
    assert "2023-11-14 22:18:20 UTC" in err  # wall 1.7e9 + 300 written by the writer


def test_kill_on_error_sends_sigterm_to_exactly_that_pid(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    points = [frame(wire_scalar_event("train_loss", v, s, 100.0 + s)) for s, v in
              enumerate([2.3, 2.2, 2.1, math.nan, 2.0])]
    (run / "events.out.tfevents.1.h").write_bytes(_version() + b"".join(points))
    victim = subprocess.Popen(["sleep", "60"])
    try:
        diag = _cli("--follow", str(run), "--poll", "0.2", "--kill-on-error", str(victim.pid))
        _, err = diag.communicate(timeout=60)
        assert diag.returncode == 1, err
        assert victim.wait(timeout=10) == -signal.SIGTERM
        assert f"sent SIGTERM to process {victim.pid}" in err and "at step 3" in err
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()


def test_kill_target_refusals(tmp_path):
    for pid in (0, 1, -5, os.getpid(), os.getppid()):
        with pytest.raises(UsageError):
            check_kill_target(pid)
    gone = subprocess.Popen(["true"])
    gone.wait()
    with pytest.raises(UsageError, match="no process"):
        check_kill_target(gone.pid)
    diag = _cli("--follow", str(tmp_path), "--kill-on-error", str(gone.pid))
    _, err = diag.communicate(timeout=60)
    assert diag.returncode == 2 and "no process with that PID" in err
    diag = _cli("--kill-on-error", str(os.getpid()), str(tmp_path))
    assert diag.wait(timeout=60) == 2
    with pytest.raises(InputError):
        follow(str(tmp_path / "missing"), idle=0)


def test_healthy_finished_run_idles_out_with_exit_0(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "events.out.tfevents.1.h").write_bytes(
        _version() + b"".join(frame(wire_scalar_event("train_loss", 2.3 * 0.99 ** s, s, 100.0 + s))
                              for s in range(200)))
    started = time.time()
    diag = _cli("--follow", str(run), "--poll", "0.1", "--idle", "0.5", "--format", "json")
    out, err = diag.communicate(timeout=60)
    assert diag.returncode == 0, err
    assert out.strip(), err
    result = json.loads(out)
    assert result["status"] == "ended" and result["points"] == 200 and "no new data for 0.5 s" in err
    assert result["bytes_read"] == (run / "events.out.tfevents.1.h").stat().st_size
    assert time.time() - started < 30


def test_half_written_record_waited_for_and_every_byte_read_once(tmp_path):
    path = tmp_path / "events.out.tfevents.1.h"
    records = [frame(wire_scalar_event("loss", 1.0 / (s + 1), s, 10.0 + s)) for s in range(40)]
    blob = _version() + b"".join(records)
    follower = Follower(str(tmp_path))
    written = 0
    for cut in (len(blob) // 3 + 5, len(blob) // 3 + 9, 2 * len(blob) // 3 + 1, len(blob)):  # inside records
        with open(path, "ab") as handle:
            handle.write(blob[written:cut])
        written = cut
        follower.poll()
        tail = follower.tails[str(path)]
        assert tail.log.issues == []  # a record not yet whole is pending, never "truncated" or "corrupt"
        whole = sum(1 for r in range(40) if len(_version()) + sum(map(len, records[:r + 1])) <= cut)
        assert tail.log.points == whole
        assert follower.bytes_read == cut  # each byte read exactly once, never from the start again
    raw = follower.tails[str(path)].log.series["loss"]
    assert raw.steps.tolist() == list(range(40))
    assert raw.values.tolist() == pytest.approx([1.0 / (s + 1) for s in range(40)], rel=1e-6)
    assert raw.walls.tolist() == [10.0 + s for s in range(40)]


def test_jsonl_and_csv_appends_parse_complete_lines_only(tmp_path):
    jsonl, csv_path = tmp_path / "log.jsonl", tmp_path / "metrics.csv"
    rows = [{"step": s, "loss": 2.0 - 0.1 * s, "val_acc": 0.1 + 0.05 * s} for s in range(12)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    table = "step,epoch,loss\n" + "".join(f"{s},{s // 4},{2.0 - 0.1 * s}\n" for s in range(12))
    follower = Follower(str(tmp_path))
    for frac in (0.3, 0.55, 0.8, 1.0):
        with open(jsonl, "a") as handle:
            handle.write(text[len(jsonl.read_text()) if jsonl.exists() else 0:int(len(text) * frac)])
        with open(csv_path, "a") as handle:
            handle.write(table[len(csv_path.read_text()) if csv_path.exists() else 0:int(len(table) * frac)])
        follower.poll()
        done_json = text[:int(len(text) * frac)].count("\n")
        done_csv = max(table[:int(len(table) * frac)].count("\n") - 1, 0)
        logs = {os.path.basename(p): t.log for p, t in follower.tails.items()}
        assert list(logs["log.jsonl"].series["loss"].steps) == list(range(done_json))
        assert list(logs["metrics.csv"].series["loss"].steps) == list(range(done_csv))
        assert all(not log.issues for log in logs.values())
    assert follower.bytes_read == len(text) + len(table)
    assert list(logs["metrics.csv"].series["loss"].values) == pytest.approx([2.0 - 0.1 * s for s in range(12)])
    assert list(logs["metrics.csv"].series["loss"].epochs) == [float(s // 4) for s in range(12)]
    assert list(logs["log.jsonl"].series["val_acc"].values) == pytest.approx([0.1 + 0.05 * s for s in range(12)])


def test_jsonl_nan_appended_later_is_found_and_new_file_picked_up(tmp_path):
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"step": s, "loss": 2.0 - 0.01 * s}) + "\n"
                                              for s in range(20)))
    ticks = []

    def sleep(_):
        ticks.append(1)
        if len(ticks) == 2:  # a second logger's file appears while the run is followed
            with open(tmp_path / "b.jsonl", "w") as handle:
                handle.write(json.dumps({"step": 0, "val_loss": 2.0}) + "\n")
        if len(ticks) == 3:
            with open(tmp_path / "a.jsonl", "a") as handle:
                handle.write('{"step": 20, "loss": NaN}\n')

    result = follow(str(tmp_path), poll=0, idle=60, sleep=sleep)
    assert result.status == "error" and result.step == 20 and result.finding.id == "loss-not-finite"
    assert result.polls == 4 and result.points == 22


def test_trainer_state_end_marker_ends_the_follow(tmp_path):
    state = {"max_steps": 30, "log_history": [{"step": s, "epoch": s / 10, "loss": 2.3 - 0.02 * s}
                                             for s in range(1, 31)]}
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(state))
    ticks = []

    def sleep(_):
        ticks.append(1)
        state["log_history"].append({"step": 30, "epoch": 3.0, "train_runtime": 12.5, "train_loss": 1.9})
        path.write_text(json.dumps(state) + " ")  # rewritten whole, larger: size changes

    result = follow(str(tmp_path), poll=0, idle=60, sleep=sleep)
    assert result.status == "ended" and "end marker" in result.reason and len(ticks) == 1


def test_mlflow_metric_appends_and_finished_status(tmp_path):
    run = tmp_path / "abc123"
    run.mkdir()
    meta = run / "meta.yaml"
    meta.write_text("run_id: abc123\nrun_name: live\nstatus: 1\n")  # RUNNING
    (run / "metrics").mkdir()
    loss = run / "metrics" / "train_loss"
    loss.write_text("".join(f"{1000 + s} {2.3 - 0.01 * s} {s}\n" for s in range(10)))
    follower = Follower(str(run))
    assert follower.poll() == (True, False)
    with open(loss, "a") as handle:
        handle.write("".join(f"{1000 + s} {2.3 - 0.01 * s} {s}\n" for s in range(10, 15)) + "1015 2.1")  # cut line
    assert follower.poll() == (True, False)
    raw = follower.tails[str(meta)].log.series["train_loss"]
    assert list(raw.steps) == list(range(15)) and raw.walls[-1] == pytest.approx(1.014)
    size = meta.stat().st_size
    meta.write_text("run_id: abc123\nrun_name: live\nstatus: 3\n")  # FINISHED
    os.utime(meta, ns=(meta.stat().st_mtime_ns + 10**9,) * 2)
    assert follower.poll() == (False, True)
    assert follower.bytes_read == loss.stat().st_size + size + meta.stat().st_size  # the cut line read once, kept


def test_ctrl_c_while_following_exits_130(tmp_path):
    diag = _cli("--follow", str(tmp_path), "--poll", "0.1", "--idle", "60")
    wait_in_main(diag)  # a fixed 2.5 s raced with start-up under load (SIGINT there is the interpreter's)
    time.sleep(1.0)  # and polling the empty folder
    diag.send_signal(signal.SIGINT)
    diag.communicate(timeout=30)
    assert diag.returncode == 130


def test_a_reused_pid_is_not_signalled():
    """The PID named at the start exited and the number now names another process: it is left alone."""
    import subprocess

    from nnprobe.diagnosis.follow import kill_target, process_start

    other = subprocess.Popen(["sleep", "30"])
    try:
        message = kill_target(other.pid, started="1")  # a start time the living process does not have
        assert "nothing was signalled" in message and other.poll() is None
        assert "sent SIGTERM" in kill_target(other.pid, process_start(other.pid))
        assert other.wait(timeout=10) == -15
    finally:
        other.kill()
