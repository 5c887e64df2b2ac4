"""`diagnose --follow`: watch a live run from outside the training process and stop at the first error.

Every file is read incrementally, never again from its start (`Follower.bytes_read` counts every byte):
- TensorBoard event files: the byte offset is kept and only the appended whole records are framed and
  decoded (tensorboard._chunk, the same vectorised decoder as a full read); a half-written last record is
  kept as a pending tail and waited for, never reported as corrupt.
- CSV (Lightning, Keras), JSON lines and MLflow metric files (`metrics/<key>`): the offset is kept and only
  complete new lines are parsed; a line without its newline yet is waited for.
- trainer_state.json (rewritten whole by HF Trainer), W&B and mlflow.db: read again whole, only when the
  file's size or mtime changed; nothing else can be done with a file that is rewritten, not appended.
After each poll that brought new points the checks run again on the accumulated series. The run ends at
a format's end marker (HF: a `train_runtime` entry in log_history; MLflow: meta.yaml status FINISHED,
FAILED or KILLED) or after `idle` seconds without new data (TensorBoard, CSV and JSON lines have none).
New files appearing under the run folder are picked up at the next poll.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nnprobe.diagnosis.readers.base import LogFile, ReadIssue, as_float, as_step
from nnprobe.diagnosis.results import Finding, reaches
from nnprobe.errors import InputError, UsageError

# Checks whose verdict later points cannot undo: only these stop a live run. The others (chance accuracy,
# constant prediction, overfitting, plateau, a run stopped early ...) judge a whole run, and an unfinished
# run at epoch 1 is "at chance"; they are counted in the result when the run ends, for `diagnose` to report.
LIVE_CHECKS = ("loss-not-finite", "loss-negative", "metric-not-finite", "divergence")
READ_BLOCK = 16 << 20
_MLFLOW_DONE = {"3", "4", "5", "FINISHED", "FAILED", "KILLED"}  # RunStatus numbers as meta.yaml stores them


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

    def to_dict(self) -> dict[str, Any]:
        from nnprobe.results import to_jsonable

        return to_jsonable(self)


class _Tail:
    """One file read from where the last poll stopped; `log` holds every point read so far."""

    def __init__(self, ref) -> None:
        self.ref = ref
        self.log = LogFile(path=ref.path, format=ref.format)
        self.offset = 0
        self.pending = b""
        self.bytes_read = 0
        self.ended = False

    def _new_bytes(self) -> bytes:
        """The bytes appended since the last poll (a file that shrank was replaced: read from 0 again)."""
        try:
            size = os.stat(self.ref.path).st_size
        except OSError:
            return b""
        if size < self.offset:  # replaced or truncated by its writer: what it holds now is the file
            self._reset()
        if size == self.offset:
            return b""
        with open(self.ref.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(min(size - self.offset, READ_BLOCK))  # a long file: 16 MiB per poll step
        self.offset += len(data)
        self.bytes_read += len(data)
        return data

    def poll(self) -> bool:
        """Read what was appended; True when new points (or issues) came."""
        raise NotImplementedError

    def _reset(self) -> None:
        self.log, self.offset, self.pending = LogFile(path=self.ref.path, format=self.ref.format), 0, b""


class _EventTail(_Tail):
    def __init__(self, ref, verify_crc: bool = True) -> None:
        super().__init__(ref)
        self.verify_crc = verify_crc
        self.broken = False

    def poll(self) -> bool:
        got = False
        while not self.broken and (new := self._new_bytes()):
            got = self._take(new) or got
        return got

    def _take(self, new: bytes) -> bool:
        from nnprobe.diagnosis.readers import tensorboard as tb

        data = self.pending + new
        base = self.offset - len(data)
        fresh, points = LogFile(path=self.ref.path, format=self.ref.format), tb._Points()
        pos, stop = tb._chunk(data, base, base + len(data), self.verify_crc, True, fresh, points)
        self.broken = stop == "broken"
        self.pending = b"" if self.broken else data[pos:]
        points.store(fresh, self.ref.prefix)
        _append(self.log, fresh)
        return bool(fresh.series or fresh.issues)


class _LineTail(_Tail):
    """Complete new lines only; `parse(lines, first_number)` is the format's."""

    def __init__(self, ref) -> None:
        super().__init__(ref)
        self.lines = 0

    def poll(self) -> bool:
        got = False
        while new := self._new_bytes():
            got = self._take(new) or got
        return got

    def _take(self, new: bytes) -> bool:
        data = self.pending + new
        cut = data.rfind(b"\n") + 1
        self.pending = data[cut:]
        if not cut:
            return False
        lines = data[:cut].decode("utf-8", errors="replace").split("\n")[:-1]
        before = (self.log.points, len(self.log.issues))
        self.parse(lines, self.lines + 1)
        self.lines += len(lines)
        return (self.log.points, len(self.log.issues)) != before

    def parse(self, lines: list[str], first: int) -> None:
        raise NotImplementedError

    def _reset(self) -> None:
        super()._reset()
        self.lines = 0
        self.header = None


class _JsonlTail(_LineTail):
    def parse(self, lines: list[str], first: int) -> None:
        from nnprobe.diagnosis.readers._table import EPOCH_COLUMNS, STEP_COLUMNS, TIME_COLUMNS

        axes = set(STEP_COLUMNS) | set(EPOCH_COLUMNS) | set(TIME_COLUMNS)
        log = self.log
        for number, line in enumerate(lines, start=first):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError) as exc:
                log.issues.append(ReadIssue("corrupt", log.path, f"line is not JSON: {str(exc)[:60]} "
                                                                 "(line skipped)", number))
                continue
            if not isinstance(entry, dict):
                log.issues.append(ReadIssue("corrupt", log.path, "line is not a JSON object (line skipped)", number))
                continue
            log.records += 1
            lowered = {str(k).lower(): v for k, v in entry.items()}
            step = next((as_float(lowered[c]) for c in STEP_COLUMNS if c in lowered), None)
            epoch = next((as_float(lowered[c]) for c in EPOCH_COLUMNS if c in lowered), None)
            wall = next((as_float(lowered[c]) for c in TIME_COLUMNS if c in lowered), None)
            step = as_step(step, as_step(epoch, log.records - 1))
            for key, value in entry.items():
                value = None if str(key).lower() in axes else as_float(value)
                if value is not None:
                    log.series_for(str(key)).add(step, value, math.nan if wall is None else wall,
                                                 math.nan if epoch is None else epoch)


class _CsvTail(_LineTail):
    """The header is the first complete line; every later chunk of rows is parsed against it."""

    def __init__(self, ref) -> None:
        super().__init__(ref)
        self.header: list[str] | None = None
        self.missing = frozenset({"NA", "N/A", "None", "null"}) if ref.format == "keras-csv" else frozenset()

    def parse(self, lines: list[str], first: int) -> None:
        from nnprobe.diagnosis.readers import _table

        if self.header is None:
            self.header = [h.strip() for h in next(csv.reader([lines[0]]), [])]
            lines = lines[1:]
        step_col, epoch_col, time_col = _table._special_columns(self.header)
        if step_col is None and epoch_col is None:
            self.log.meta["skipped"] = "not a metrics table (no epoch or step column)"
            return
        special = {step_col, epoch_col, time_col}
        metric_cols = [(i, n) for i, n in enumerate(self.header) if i not in special and n]
        rows = csv.reader(io.StringIO("\n".join(lines) + "\n", newline=""))
        table = _table._data_rows(rows, self.header, False, self.log.path, self.log)
        _table._add_rows(self.log, table, step_col, epoch_col, time_col, metric_cols, self.missing)


class _MlflowMetricTail(_LineTail):
    def parse(self, lines: list[str], first: int) -> None:
        from nnprobe.diagnosis.readers.mlflow import _parse_line

        raw = self.log.series_for(self.ref.prefix)
        for number, line in enumerate(lines, start=first):
            parsed = _parse_line(line.strip()) if line.strip() else None
            if parsed is None:
                if line.strip():
                    self.log.issues.append(ReadIssue("corrupt", self.ref.path, "line is not 'timestamp value "
                                                                               "step' (line skipped)", number))
                continue
            self.log.records += 1
            stamp, value, step = parsed
            raw.add(step, value, stamp / 1000.0)


class _MlflowTail(_Tail):
    """An MLflow file-store run: each metrics/<key> file appended line by line, meta.yaml (its status, the
    end marker) and params read again when changed."""

    def __init__(self, ref) -> None:
        super().__init__(ref)
        self.metrics: dict[str, _MlflowMetricTail] = {}
        self.stamp: tuple | None = None
        self.meta_bytes = 0

    def poll(self) -> bool:
        from nnprobe.diagnosis.readers import LogRef

        folder = os.path.join(os.path.dirname(self.ref.path), "metrics")
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                key = os.path.relpath(path, folder).replace(os.sep, "/")
                if key not in self.metrics:
                    self.metrics[key] = _MlflowMetricTail(LogRef(path, "mlflow-metric", prefix=key))
        changed = [tail.poll() for tail in self.metrics.values()]
        stamp = _stamp(self.ref.path)
        if stamp != self.stamp:  # meta.yaml is small and rewritten whole; metrics come from the tails
            self.stamp = stamp
            self.meta_bytes += stamp[1] if stamp else 0
            self._read_meta()
        self.log.series = {key: one for tail in self.metrics.values() for key, one in tail.log.series.items()}
        self.log.records = sum(tail.log.records for tail in self.metrics.values())
        self.log.issues = [i for tail in self.metrics.values() for i in tail.log.issues]
        self.bytes_read = sum(t.bytes_read for t in self.metrics.values()) + self.meta_bytes
        return any(changed)

    def _read_meta(self) -> None:
        """meta.yaml's status (the end marker) and the params that give K: small side files, read whole
        (the metric files are never read again: the mlflow reader would)."""
        import re

        from nnprobe.diagnosis.readers import mlflow

        folder = os.path.dirname(self.ref.path)
        text = mlflow._side_text(self.ref.path) or ""
        match = re.search(r"^status:\s*(.*)$", text, re.M)
        self.ended = bool(match) and match.group(1).strip().strip("'\"").upper() in _MLFLOW_DONE
        params = {}
        for root, _, names in os.walk(os.path.join(folder, "params")):
            for name in names:
                path = os.path.join(root, name)
                if (value := mlflow._side_text(path)) is not None:
                    params[os.path.relpath(path, os.path.join(folder, "params")).replace(os.sep, "/")] = value
                    self.meta_bytes += os.path.getsize(path)
        mlflow._params(self.log, params, "MLflow params")


class _WholeTail(_Tail):
    """A file rewritten whole (trainer_state.json) or not appendable (W&B, mlflow.db): read again only
    when its size or mtime changed."""

    def __init__(self, ref, verify_crc: bool = True) -> None:
        super().__init__(ref)
        self.stamp: tuple | None = None
        self.verify_crc = verify_crc

    def poll(self) -> bool:
        from nnprobe.diagnosis.readers import read_log

        stamp = _stamp(self.ref.path)
        if stamp is None or stamp == self.stamp:
            return False
        self.stamp = stamp
        self.bytes_read += stamp[1]
        fresh = read_log(self.ref, verify_crc=self.verify_crc)
        if any(issue.kind == "truncated" for issue in fresh.issues) and self.log.records:
            return False  # caught mid-rewrite: wait for the whole file
        changed = fresh.points != self.log.points or len(fresh.issues) != len(self.log.issues)
        self.log = fresh
        self.ended = bool(fresh.meta.get("finished"))
        return changed


def _stamp(path: str) -> tuple | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


_COLUMNS = (("steps", "int64"), ("values", "float64"), ("walls", "float64"), ("epochs", "float64"))


def _append(log: LogFile, fresh: LogFile) -> None:
    """Add one poll's points and issues to the file's accumulated log. Each series' columns live in numpy
    buffers that double when full and are exposed as views of their filled part: a poll costs its new
    points, not a copy of the whole run (resolve() takes the views as they are)."""
    import numpy as np

    for name, raw in fresh.series.items():
        into = log.series_for(name)
        buffers = getattr(into, "_buffers", None)
        count = len(into.values)
        need = count + len(raw.values)
        if buffers is None or need > buffers[0].size:
            size = max(1024, 2 * need)
            grown = [np.empty(size, dtype) for _, dtype in _COLUMNS]
            for column, (attr, _) in zip(grown, _COLUMNS):
                column[:count] = getattr(into, attr)
            into._buffers = buffers = grown
        for column, (attr, _) in zip(buffers, _COLUMNS):
            column[count:need] = getattr(raw, attr)
            setattr(into, attr, column[:need])
    log.issues += fresh.issues
    log.records += fresh.records


def _tail_for(ref, verify_crc: bool) -> _Tail:
    if ref.format == "tensorboard":
        return _EventTail(ref, verify_crc)
    if ref.format == "jsonl":
        return _JsonlTail(ref)
    if ref.format in ("lightning-csv", "keras-csv"):
        return _CsvTail(ref)
    if ref.format == "mlflow":
        return _MlflowTail(ref)
    return _WholeTail(ref, verify_crc)


def _renamed(ref, log: LogFile) -> LogFile:
    """The tags of a tensorboardX add_scalars folder named as run.py names them (`loss/train`)."""
    folder = getattr(ref, "scalars_of", "")
    if not folder:
        return log
    out = LogFile(path=log.path, format=log.format, issues=log.issues, meta=log.meta, records=log.records)
    for name, raw in log.series.items():
        bare = name[len(ref.prefix):] if ref.prefix and name.startswith(ref.prefix) else name
        head = bare.replace("/", "_") + "_"
        tail = folder[len(head):] if folder.startswith(head) and len(folder) > len(head) else ""
        out.series[f"{ref.prefix}{bare}/{tail}" if tail else name] = raw
    return out


def check_kill_target(pid: int) -> None:
    """Refuse a --kill-on-error PID that cannot be meant: <= 1 (init, or a process group to kill(2)), this
    process or its parent (the shell or sidecar that started it), or one that does not exist or is not ours
    to signal. Checked before following, so a typo is said at once, not hours later."""
    if pid <= 1:
        raise UsageError(f"--kill-on-error {pid}: give the training process's PID (greater than 1).")
    if pid in (os.getpid(), os.getppid()):
        raise UsageError(f"--kill-on-error {pid} is nnprobe itself or the process that started it; give the "
                         "training process's PID.")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise UsageError(f"--kill-on-error {pid}: no process with that PID exists.") from None
    except PermissionError:
        raise UsageError(f"--kill-on-error {pid}: that process belongs to another user; nnprobe may not "
                         "signal it.") from None


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
    """The files of one run read incrementally, judged after every poll that brought new points."""

    path: str
    num_classes: int | None = None
    metric_overrides: Any = None
    fail_on: str = "error"
    verify_crc: bool = True
    tails: dict[str, _Tail] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)  # latest step and metric values, for progress
    runs: list = field(default_factory=list)  # RunFiles found by the last poll

    @property
    def bytes_read(self) -> int:
        return sum(tail.bytes_read for tail in self.tails.values())

    @property
    def points(self) -> int:
        return sum(tail.log.points for tail in self.tails.values())

    def poll(self) -> tuple[bool, bool]:
        """(new data came, a format's end marker was seen): new files are picked up, every file read on."""
        from nnprobe.diagnosis.readers import discover

        try:
            self.runs = discover(self.path)
        except InputError:  # no log yet: the run has not written its first file
            self.runs = []
        for files in self.runs:
            for ref in files.logs:
                if ref.path not in self.tails:
                    self.tails[ref.path] = _tail_for(ref, self.verify_crc)
        changed = [tail.poll() for tail in self.tails.values()]
        return any(changed), any(tail.ended for tail in self.tails.values())

    def judge(self, ids: tuple[str, ...] | None = LIVE_CHECKS) -> list[tuple[Finding, Any]]:
        """Findings that reach fail_on, each with the run's series (to place its step in time)."""
        found = []
        for files in self.runs:
            logs = [_renamed(ref, self.tails[ref.path].log) for ref in files.logs if ref.path in self.tails]
            for series, roles, findings in _judge_run_files(self.path, files, logs, self.num_classes,
                                                            self.metric_overrides, ids):
                self.last = {"roles": roles, "later": sorted({f.id for f in findings if f.id not in LIVE_CHECKS
                                                              and reaches(f.severity, self.fail_on)})}
                found += [(f, series) for f in findings if f.id in LIVE_CHECKS and reaches(f.severity, self.fail_on)]
        return found


def follow(path: str, *, poll: float = 2.0, idle: float = 300.0, num_classes: int | None = None,
           metric_overrides: Any = None, fail_on: str = "error", verify_crc: bool = True,
           kill_pid: int | None = None, progress: Callable[[str], None] | None = None,
           progress_every: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> FollowResult:
    """Follow the run at `path` until a finding reaches `fail_on` (status 'error'), a format's end marker
    or `idle` seconds without new data (status 'ended'). With `kill_pid`, SIGTERM goes to exactly that
    process when an error is found. `progress` gets a line at most every `progress_every` seconds."""
    if not os.path.exists(path):
        raise InputError(f"{path} does not exist: give the run folder (or log file) to follow.")
    started_as = None
    if kill_pid is not None:
        check_kill_target(kill_pid)
        started_as = process_start(kill_pid)
    follower = Follower(path, num_classes, metric_overrides, fail_on, verify_crc)
    started = time.monotonic()
    last_data, last_shown, polls = started, -math.inf, 0
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
            reason = "the run's end marker was seen" if ended else f"no new data for {idle:g} s"
            if follower.runs:
                follower.judge(ids=None)  # the whole-run checks, once, on everything read
            later = follower.last.get("later")
            if later:
                reason += (f"; whole-run checks flag {', '.join(later)}: run `nnprobe diagnose {path}` for the "
                           "report")
            return FollowResult(path, "ended", reason, polls=polls, points=follower.points,
                                bytes_read=follower.bytes_read, seconds=round(now - started, 3))
        sleep(poll)


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
                        points=follower.points, bytes_read=follower.bytes_read, seconds=round(seconds, 3))


def _progress_line(follower: Follower) -> str:
    """`step N: train_loss=…, val_acc=…` from the latest point of each role."""
    roles = follower.last.get("roles", {})
    parts, step = [], None
    for role, series in roles.items():
        if len(series) and role in ("train_loss", "val_loss", "train_acc", "val_acc", "lr"):
            parts.append(f"{role}={float(series.values[-1]):.4g}")
            step = max(step or 0, int(series.steps[-1]))
    return f"following {follower.path}: step {step}: " + (", ".join(parts) or "no known metric yet")


def _judge_run_files(top: str, files, logs: list[LogFile], num_classes: int | None, overrides: Any,
                     ids: tuple[str, ...] | None = None):
    """(series, roles, findings) of each run in `logs`, judged as `diagnose` judges a run
    (the same grouping, class-count sources and checks), on the points read so far."""
    from nnprobe.diagnosis.checks import RunContext, run_checks
    from nnprobe.diagnosis.roles import map_roles, parse_overrides
    from nnprobe.diagnosis.run import _assemble, _class_hints, _independent, infer_num_classes

    overrides = parse_overrides(f"{k}={v}" for k, v in overrides.items()) if isinstance(overrides, dict) \
        else parse_overrides(overrides)
    hints = _class_hints(files)
    groups = _independent(logs)
    runs = [_assemble(files.root, logs, files, hints)] if len(groups) == 1 else \
        [_assemble(group[0].path, group, files, hints) for group in groups]
    out = []
    for run in runs:
        if not any(len(one) for one in run.series.values()):
            continue
        roles, _ = map_roles(run.series, overrides)
        k, source = (num_classes, "from --num-classes") if num_classes is not None else \
            run.class_hints[0] if run.class_hints else (infer_num_classes(roles.get("train_loss")), "inferred")
        ctx = RunContext(path=top, roles=roles, series=run.series, num_classes=k,
                         num_classes_source=source if k is not None else "unknown", issues=run.issues,
                         meta=run.meta, superseded=run.superseded)
        out.append((run.series, roles, [f for outcome in run_checks(ctx, ids) for f in outcome.findings]))
    return out
