"""`diagnose --follow`: watch a live run from outside the training process and stop at the first error.

Files are read through the readers' incremental interface only (`readers.tail`): appended formats
(TensorBoard event files, CSV, JSON lines, MLflow metric files) from where the last poll stopped, a
half-written record waited for, a rotated or rewritten file read again from its start (tracked by device,
inode and a digest of its first bytes); formats rewritten whole (trainer_state.json, W&B, mlflow.db) again
when they changed. After each poll that brought new points the run is judged by `diagnose`'s own
`judge_run` (the same grouping, K inference and checks) on everything read so far; only the checks whose
verdict later points cannot undo (LIVE_CHECKS) stop a live run. Following waits up to `wait` seconds for
PATH and its first log to appear; it ends at a format's end marker (HF: `train_runtime` in log_history;
MLflow: status FINISHED, FAILED or KILLED) or after `idle` seconds without new data, and then judges the
whole run as `diagnose` would: a finding that reaches fail_on fails it. A follow that read not one point
never passes: it ends with `InputError` (exit 2), saying why, as `diagnose` does.
"""
from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nnprobe.diagnosis.results import Finding, reaches
from nnprobe.errors import InputError, UsageError

# Checks whose verdict later points cannot undo: only these stop a live run. The others (chance accuracy,
# constant prediction, overfitting, plateau ...) judge a whole run (an unfinished run at epoch 1 is "at
# chance"); they are judged once, when the run ends.
LIVE_CHECKS = ("loss-not-finite", "loss-negative", "metric-not-finite", "divergence")


@dataclass(frozen=True)
class FollowResult:
    """How following ended: status 'error' (a finding reached fail_on: exit 1) or 'ended' (exit 0)."""

    path: str
    status: str
    reason: str
    finding: Finding | None = None
    step: int | None = None
    wall: float | None = None
    polls: int = 0
    points: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    findings: tuple[Finding, ...] = ()  # every finding of the whole-run judgement that reached fail_on
    restarts: int = 0  # files read again from their start (rotated or rewritten while followed)

    def to_dict(self) -> dict[str, Any]:
        from nnprobe.results import to_jsonable

        return to_jsonable(self)


def check_kill_target(pid: int) -> None:
    """Refuse a --kill-on-error PID that cannot be meant or cannot be signalled safely: <= 1 (init, or a
    process group to kill(2)), beyond any PID this system hands out, nnprobe itself or any of its ancestors
    (the shell, `timeout`, `nice` or a wrapper script that started it), a kernel thread, or one that does not
    exist or is not ours to signal. Checked before following, so a typo is said at once, not hours later."""
    if pid <= 1:
        raise UsageError(f"--kill-on-error {_shown(pid)}: give the training process's PID (greater than 1).")
    if pid > _pid_max():
        raise UsageError(f"--kill-on-error {_shown(pid)}: no process can have that PID (the largest PID here is "
                         f"{_pid_max():,}).")
    if pid == os.getpid() or pid in ancestors():
        raise UsageError(f"--kill-on-error {pid} is nnprobe itself or a process that started it (its shell, "
                         "a wrapper, timeout or nice); give the training process's PID.")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise UsageError(f"--kill-on-error {pid}: no process with that PID exists.") from None
    except PermissionError:
        raise UsageError(f"--kill-on-error {pid}: that process belongs to another user; nnprobe may not "
                         "signal it.") from None
    if _kernel_thread(pid):
        raise UsageError(f"--kill-on-error {pid} is a kernel thread, not a training process.")


def _shown(pid: int) -> str:
    """A PID for a message: as written, or its number of digits when it is absurdly long."""
    return str(pid) if abs(pid) < 10**30 else f"a {len(str(abs(pid))) if abs(pid).bit_length() < 14000 else 'many'}" \
        f"-digit number"


def _pid_max() -> int:
    """The largest PID the kernel hands out (/proc/sys/kernel/pid_max; 2^22, Linux's ceiling, elsewhere)."""
    try:
        with open("/proc/sys/kernel/pid_max", "rb") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return 1 << 22


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/PID/stat's fields after the command name (field 3 on), or None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def ancestors() -> set[int]:
    """This process's parent, its parent's parent ... up to init (from /proc; the parent alone elsewhere)."""
    found, pid = set(), os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        fields = _stat_fields(pid)
        if fields is None:
            break
        pid = int(fields[1])
    return found


def _kernel_thread(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and (int(fields[1]) == 2 or bool(int(fields[6]) & 0x00200000))  # PF_KTHREAD


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc/PID/stat field 22), which tells a
    PID reused by a new process from the one that was checked; None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def kill_target(pid: int, started: str | None = None) -> str:
    """SIGTERM to exactly `pid` (never its group or children), and only while it is the process that was
    checked when following began (`started`, from `process_start`): a training job that exited hours ago may
    have handed its PID to something else. A sentence saying what happened."""
    if started is not None and process_start(pid) != started:
        return f"process {pid} is no longer the process checked at the start (it exited); nothing was signalled."
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return f"process {pid} had already exited; nothing was signalled."
    except PermissionError:
        return f"process {pid} may not be signalled by this user; it was left running."
    return f"sent SIGTERM to process {pid}."


@dataclass
class Follower:
    """The files of one run read through `readers.tail`, judged by `diagnose`'s `judge_run`."""

    path: str
    num_classes: int | None = None
    metric_overrides: Any = None
    fail_on: str = "error"
    verify_crc: bool = True
    tails: dict[str, Any] = field(default_factory=dict)  # path -> readers' TailState
    last: dict[str, Any] = field(default_factory=dict)  # latest step and metric values, for progress
    runs: list = field(default_factory=list)  # RunFiles found by the last poll

    def __post_init__(self) -> None:
        from nnprobe.diagnosis import parsed_overrides

        self.overrides = parsed_overrides(self.metric_overrides)

    @property
    def bytes_read(self) -> int:
        return sum(state.bytes_read for state in self.tails.values())

    @property
    def points(self) -> int:
        return sum(state.log.points for state in self.tails.values())

    @property
    def restarts(self) -> int:
        return sum(state.restarts for state in self.tails.values())

    def poll(self) -> tuple[bool, bool]:
        """(new data came, a format's end marker was seen): new files are picked up, every file read on."""
        from nnprobe.diagnosis.readers import tail

        self.find()
        for files in self.runs:
            for ref in files.logs:
                self.tails[ref.path] = tail(ref, self.tails.get(ref.path), verify_crc=self.verify_crc)
        return any(state.changed for state in self.tails.values()), any(state.ended for state in self.tails.values())

    def find(self) -> list:
        """The runs and their files as they are now ([] while the run has written no log yet)."""
        from nnprobe.diagnosis.readers import discover

        try:
            self.runs = discover(self.path)
        except InputError:
            self.runs = []
        return self.runs

    def loaded(self) -> list:
        """The runs as `diagnose` would load them from the points read so far."""
        from nnprobe.diagnosis.readers import settled
        from nnprobe.diagnosis.run import load_runs

        return [run for files in self.runs for run in load_runs(
            files, logs=[(ref, settled(ref, self.tails[ref.path].log)) for ref in files.logs
                         if ref.path in self.tails])]

    def judge(self, ids: tuple[str, ...] | None = LIVE_CHECKS) -> list[tuple[Finding, Any]]:
        """Findings that reach fail_on (of the checks `ids`, all when None), each with its run's series."""
        from nnprobe.diagnosis import judge_run

        found = []
        for run in self.loaded():
            if not any(len(one) for one in run.series.values()):
                continue
            shown = os.path.relpath(run.path, self.path) if os.path.isdir(self.path) else run.path
            report = judge_run(run, self.path if shown == "." else shown, self.num_classes, self.overrides, ids)
            self.last = {"roles": report.series}
            found += [(f, run.series) for f in report.findings if reaches(f.severity, self.fail_on)]
        return found


def follow(path: str, *, poll: float = 2.0, idle: float = 300.0, wait: float = 0.0, num_classes: int | None = None,
           metric_overrides: Any = None, fail_on: str = "error", verify_crc: bool = True,
           kill_pid: int | None = None, progress: Callable[[str], None] | None = None,
           progress_every: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> FollowResult:
    """Follow the run at `path` until a finding reaches `fail_on` (status 'error'), a format's end marker
    or `idle` seconds without new data (then the whole run is judged: 'error' or 'ended'). Waits up to
    `wait` seconds for `path` and its first log to appear (InputError after). With `kill_pid`, SIGTERM goes
    to exactly that process when a live check finds an error. `progress` gets a line at most every
    `progress_every` seconds. Not one point read: InputError, never a pass."""
    started_as = None
    if kill_pid is not None:
        check_kill_target(kill_pid)
        started_as = process_start(kill_pid)
    follower = Follower(path, num_classes, metric_overrides, fail_on, verify_crc)
    started = time.monotonic()
    polls = _wait_for_logs(follower, wait, poll, sleep)
    last_data, last_shown = time.monotonic(), -math.inf
    while True:
        new, ended = follower.poll()
        polls += 1
        now = time.monotonic()
        if new:
            last_data = now
            found = follower.judge()
            if found:
                return _stopped(follower, found[0], (kill_pid, started_as), polls, now - started)
        if progress is not None and now - last_shown >= progress_every and follower.last:
            progress(_progress_line(follower))
            last_shown = now
        if ended or now - last_data >= idle:
            return _ended(follower, ended, idle, polls, now - started)
        sleep(poll)


def _wait_for_logs(follower: Follower, wait: float, poll: float, sleep: Callable[[float], None]) -> int:
    """Look until the run's first log file exists (the looks that found nothing); InputError after `wait`
    seconds. Nothing is read here: the first poll reads what is there."""
    from nnprobe.diagnosis.readers import looked_for

    started, polls = time.monotonic(), 0
    while True:
        if follower.find():
            return polls
        polls += 1
        if time.monotonic() - started >= wait:
            where = follower.path
            what = "does not exist" if not os.path.lexists(where) else "holds no training log"
            after = f" after waiting {wait:g} s (--wait)" if wait > 0 else ""
            raise InputError(f"{where} {what}{after}: give the run folder (or log file) to follow; it may "
                             f"appear later with --wait SECONDS (looked for {looked_for()}).")
        sleep(poll)


def _ended(follower: Follower, ended: bool, idle: float, polls: int, seconds: float) -> FollowResult:
    """The whole run judged once at its end, as `diagnose` judges it; nothing read is an InputError."""
    from nnprobe.diagnosis import nothing_read

    reason = "the run's end marker was seen" if ended else f"no new data for {idle:g} s"
    loaded = follower.loaded()
    if not any(len(one) for run in loaded for one in run.series.values()):
        raise InputError(nothing_read(follower.path, loaded))
    failing = [finding for finding, _ in follower.judge(ids=None)]
    common = dict(polls=polls, points=follower.points, bytes_read=follower.bytes_read, seconds=round(seconds, 3),
                  findings=tuple(failing), restarts=follower.restarts)
    if failing:
        ids = ", ".join(dict.fromkeys(f.id for f in failing))
        return FollowResult(follower.path, "error", f"{reason}; the whole run fails --fail-on {follower.fail_on}: "
                                                    f"{ids} (first: {failing[0].message})", finding=failing[0],
                            **common)
    return FollowResult(follower.path, "ended", reason, **common)


def _stopped(follower: Follower, found: tuple[Finding, Any], kill: tuple[int | None, str | None], polls: int,
             seconds: float) -> FollowResult:
    """The result for the first finding that reached fail_on: its step, the wall time of that step."""
    import numpy as np

    finding, series = found
    step = finding.evidence.get("step")
    wall = None
    one = series.get(finding.evidence.get("series", ""))
    if one is not None and step is not None:
        at = np.flatnonzero(one.steps == step)
        if at.size and np.isfinite(one.walls[at[0]]):
            wall = float(one.walls[at[0]])
    when = f"step {step}" if step is not None else "an unknown step"
    if wall is not None:
        when += f" (logged at {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(wall))} UTC)"
    reason = f"{finding.id} at {when}: {finding.message}"
    if kill[0] is not None:
        reason += " " + kill_target(*kill)
    return FollowResult(follower.path, "error", reason, finding=finding, step=step, wall=wall, polls=polls,
                        points=follower.points, bytes_read=follower.bytes_read, seconds=round(seconds, 3),
                        findings=(finding,), restarts=follower.restarts)


def _progress_line(follower: Follower) -> str:
    """`step N: train_loss=…, val_acc=…` from the latest point of each role."""
    roles = follower.last.get("roles", {})
    parts, step = [], None
    for role, series in roles.items():
        if len(series) and role in ("train_loss", "val_loss", "train_acc", "val_acc", "lr"):
            parts.append(f"{role}={float(series.values[-1]):.4g}")
            step = max(step or 0, int(series.steps[-1]))
    return f"following {follower.path}: step {step}: " + (", ".join(parts) or "no known metric yet")
