"""MLflow runs: the local file store (`mlruns/<exp>/<run>/`) and the SQLite store (`mlflow.db`).

Read directly, not through mlflow-skinny: the file store's format is a few text lines per metric and the
SQLite schema one table, both stable for years; mlflow-skinny pulls in ~40 packages (databricks-sdk,
opentelemetry, fastapi ...) and its SQL store needs SQLAlchemy and alembic besides, and `get_metric_history`
loads every point into objects, while `diagnose` must stay light and read every point exactly.

File store (mlflow/store/tracking/file_store.py): `metrics/<key>` (a key with `/` is a sub-folder) holds
one line per point, `"<timestamp ms> <value> <step>\\n"` (older runs: 2 fields, step 0; with a dataset:
5 fields), the value written by Python's str(float): `nan`, `inf`, `-inf`. `params/<key>` holds the
value as text; `meta.yaml` the run's name and status. A run folder is found by its `meta.yaml` beside a
`metrics/` folder. SQLite store (sqlalchemy_store.py): table `metrics(key, value, timestamp, step, is_nan,
run_uuid)`; MLflow stores NaN as value 0 with is_nan = 1 and clamps ±inf to ±1.7976931348623157e308, so
those two values are read back as ±inf. The database is opened read-only through the stdlib (`mode=ro`,
`immutable=1`: no lock, no journal written, works on read-only media; a live WAL's unmerged tail is not
seen), and each run in it is a run of its own (`mlflow.db#<experiment id>/<run name>`, the run id where
the name is not unique).
"""
from __future__ import annotations

import math
import os
import re
import sys

from nnprobe.diagnosis.readers.base import (MIB, STEP_LIMIT, LogFile, ReadIssue, Unreadable, head_of,
                                          open_regular, read_capped)
from nnprobe.diagnosis.readers.registry import Sniffer, register_reader

FILE_FORMAT = "mlflow"
DB_FORMAT = "mlflow-db"
METRIC_CAP = 256 * MIB  # one metric of a 1M-step run is ~40 MiB of lines
SIDE_CAP = 1 * MIB  # meta.yaml, one param or tag
_K_PARAMS = ("num_classes", "n_classes", "num_labels", "nb_classes", "classes")
_CLAMP = sys.float_info.max  # MLflow's SQL store writes ±inf as ±this
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _remote():
    from nnprobe import remote

    return remote


def is_run_meta(path: str) -> bool:
    """A `meta.yaml` is an MLflow run's when a `metrics/` folder is beside it (an experiment's has none)."""
    folder = path.rsplit("/", 1)[0] if _remote().is_remote(path) else os.path.dirname(path)
    return _remote().isdir(f"{folder}/metrics")


def _parse_line(line: str) -> tuple[int, float, int] | None:
    """(timestamp ms, value, step) of one metric line, None when it is not one (a step that does not fit
    int64 makes the line unusable: that line's problem, not the run's)."""
    parts = line.split(" ")
    if len(parts) not in (2, 3, 4, 5):
        return None
    try:
        stamp, value, step = int(parts[0]), float(parts[1]), int(parts[2]) if len(parts) >= 3 else 0
    except ValueError:
        return None
    if abs(step) >= STEP_LIMIT:
        return None
    return stamp, value, step


def _add_lines(raw, lines: list[str], first: int) -> tuple[int, int | None, int]:
    """Add metric lines to `raw`: (points added, the first bad line's number, bad lines)."""
    added, bad, first_bad = 0, 0, None
    for number, line in enumerate(lines, start=first):
        if not line.strip():
            continue
        parsed = _parse_line(line.strip())
        if parsed is None:
            bad, first_bad = bad + 1, first_bad or number
            continue
        added += 1
        stamp, value, step = parsed
        raw.add(step, value, stamp / 1000.0)
    return added, first_bad, bad


def _bad_lines(log: LogFile, path: str, bad: int, first: int | None) -> None:
    if bad:
        log.issues.append(ReadIssue("corrupt", path, f"{bad} line(s) are not 'timestamp value step' with a step "
                                                     f"that fits int64 (lines skipped)", first))


def _read_metric(log: LogFile, path: str, key: str) -> None:
    """Add one `metrics/<key>` file's points; a bad line is counted, a cut last line is truncated."""
    data = read_capped(path, METRIC_CAP).decode("utf-8", errors="replace")
    lines = data.split("\n")
    cut = lines.pop() if lines else ""  # text after the last newline: a line cut while written
    raw = log.series_for(key)
    added, first, bad = _add_lines(raw, lines, 1)
    log.records += added
    _bad_lines(log, path, bad, first)
    if cut.strip():
        log.issues.append(ReadIssue("truncated", path, "the last line has no newline: it was cut while being "
                                                       "written (line skipped)", len(lines) + 1))
    if not raw.values:
        del log.series[key]


def _side_text(path: str) -> str | None:
    try:
        return read_capped(path, SIDE_CAP).decode("utf-8", errors="replace").strip()
    except (Unreadable, OSError):
        return None


def _params(log: LogFile, params: dict[str, str], where: str) -> None:
    """Facts the run's params state: the number of classes (for the chance check) and the optimizer."""
    from nnprobe.diagnosis.readers import class_count

    for key in _K_PARAMS:
        text = params.get(key)
        if text is None:
            continue
        k, problem = class_count(int(text) if re.fullmatch(r"\+?\d{1,12}", text.strip()) else text,
                                 f"{where} {key}")
        if k is not None:
            log.meta["num_classes"], log.meta["num_classes_from"] = k, f"from {where} ({key})"
        elif problem:
            log.issues.append(ReadIssue("invalid", log.path, problem))
        break
    for key in ("optimizer", "optimizer_name", "optim"):
        if key in params:
            log.meta["optimizer"] = params[key][:50]
            break


def tail(state) -> bool:
    """An MLflow file-store run followed: each metrics/<key> file's complete new lines, and meta.yaml (its
    status: FINISHED, FAILED or KILLED is the end marker) and params read again when meta.yaml changed."""
    from nnprobe.diagnosis.readers.incremental import TailState, appended, complete_lines, merge

    remote = _remote()
    folder = state.ref.path.rsplit("/", 1)[0] if remote.is_remote(state.ref.path) else os.path.dirname(state.ref.path)
    metrics = state.context.setdefault("metrics", {})
    fresh = LogFile(path=state.ref.path, format=FILE_FORMAT)
    metrics_dir = f"{folder}/metrics"
    for file in remote.files_below(metrics_dir):
        key = file[len(metrics_dir) + 1:].replace(os.sep, "/")
        one = metrics.setdefault(key, TailState(type(state.ref)(file, "mlflow-metric")))
        while new := appended(one):
            lines, first = complete_lines(one, new, fresh)
            added, first_bad, bad = _add_lines(fresh.series_for(key), lines, first)
            fresh.records += added
            _bad_lines(fresh, file, bad, first_bad)
        if key in fresh.series and not fresh.series[key].values:
            del fresh.series[key]
    state.bytes_read = sum(one.bytes_read for one in metrics.values())
    stamp = _stamp(state.ref.path)
    if stamp != state.stamp:
        state.stamp = stamp
        _run_facts(fresh, state.ref.path, folder)
        state.ended = fresh.meta.get("mlflow_status", "").upper() in _DONE
        state.context["meta_bytes"] = state.context.get("meta_bytes", 0) + (stamp[1] if stamp else 0)
    state.bytes_read += state.context.get("meta_bytes", 0)
    return merge(state.log, fresh)


_DONE = {"3", "4", "5", "FINISHED", "FAILED", "KILLED"}  # RunStatus numbers as meta.yaml stores them


def _stamp(path: str) -> tuple | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_mtime_ns, info.st_size


@register_reader(FILE_FORMAT, patterns=(), sniffer=Sniffer(("meta.yaml",), is_run_meta, in_folders=True),
                 shown="MLflow run folders (mlruns/<exp>/<run>/)", tail=tail)
def read(path: str) -> LogFile:
    """One MLflow file-store run: `path` is its meta.yaml; every metrics/<key> file is a series."""
    remote = _remote()
    folder = path.rsplit("/", 1)[0] if remote.is_remote(path) else os.path.dirname(path)
    log = LogFile(path=path, format=FILE_FORMAT)
    metrics_dir = f"{folder}/metrics"
    for file in remote.files_below(metrics_dir):
        key = file[len(metrics_dir) + 1:].replace(os.sep, "/")
        try:
            _read_metric(log, file, key)
        except Unreadable as exc:
            log.issues.append(ReadIssue("unreadable", file, str(exc)))
    _run_facts(log, path, folder)
    if not log.series and not log.issues:
        log.meta["skipped"] = "an MLflow run that logged no metric"
    return log


def _run_facts(log: LogFile, path: str, folder: str) -> None:
    """The run's name and status (meta.yaml) and the params that give K and the optimizer."""
    remote = _remote()
    meta = _side_text(path)
    if meta is None:
        raise Unreadable("cannot be read (the run's meta.yaml)")
    for key, pattern in (("run_name", r"^run_name:\s*(.*)$"), ("status", r"^status:\s*(.*)$")):
        match = re.search(pattern, meta, re.M)
        if match:
            log.meta[f"mlflow_{key}"] = match.group(1).strip().strip("'\"")[:100]
    params = {file[len(folder) + 8:].replace(os.sep, "/"): text
              for file in remote.files_below(f"{folder}/params") if (text := _side_text(file)) is not None}
    _params(log, params, "MLflow params")


def is_sqlite(path: str) -> bool:
    """A `.db`/`.sqlite` file the user names is read as an MLflow store when it is an SQLite database."""
    return (head_of(path, 16) or b"") == _SQLITE_MAGIC


def _connect(path: str):
    """A read-only connection to a local SQLite file, checked to be one; Unreadable otherwise."""
    import sqlite3
    from pathlib import Path

    if _remote().is_remote(path):
        raise Unreadable("is an SQLite database in a remote store: copy it locally first (SQLite reads a "
                         "local file)")
    with open_regular(path) as handle:  # a FIFO or device is refused before SQLite opens it
        if handle.read(16) != _SQLITE_MAGIC:
            raise Unreadable("is not an SQLite database")
    uri = Path(os.path.abspath(path)).as_uri() + "?mode=ro&immutable=1"
    try:
        connection = sqlite3.connect(uri, uri=True)
        connection.text_factory = lambda raw: raw.decode("utf-8", errors="replace")  # damaged text: U+FFFD
        return connection
    except sqlite3.Error as exc:
        raise Unreadable(f"cannot be opened as an SQLite database: {exc}") from None


def _query(path: str, sql: str, args: tuple = ()) -> list[tuple]:
    import sqlite3

    connection = _connect(path)
    try:
        return connection.execute(sql, args).fetchall()
    except (sqlite3.Error, UnicodeDecodeError) as exc:  # a damaged schema's names are not UTF-8 either
        raise Unreadable(f"is not a readable MLflow database: {exc}") from None
    finally:
        connection.close()


def db_runs(path: str) -> list[tuple[str, str]]:
    """(run id, "<experiment id>/<run name>") of every run in an mlflow.db, deleted runs left out; a run
    whose name is missing, not unique in its experiment or not a plain word is labelled by its id."""
    rows = _query(path, "SELECT run_uuid, experiment_id, name FROM runs WHERE lifecycle_stage != 'deleted' "
                        "ORDER BY experiment_id, start_time, run_uuid")
    names = [(str(experiment), str(name)) for _, experiment, name in rows]

    def label(uuid, experiment, name) -> str:
        plain = isinstance(name, str) and re.fullmatch(r"[\w.-]{1,80}", name)
        unique = names.count((str(experiment), str(name))) == 1
        return f"{experiment}/{name if plain and unique else uuid}"

    return [(str(uuid), label(uuid, experiment, name)) for uuid, experiment, name in rows]


@register_reader(DB_FORMAT, patterns=("mlflow.db",), sniffer=Sniffer(("*.db", "*.sqlite"), is_sqlite),
                 options=("part",), parts=db_runs, offset_unit="row")
def read_db(path: str, *, part: str = "") -> LogFile:
    """One run (`part`, its id) of an MLflow SQLite store; every point, NaN from is_nan, ±inf unclamped."""
    log = LogFile(path=path, format=DB_FORMAT)
    if not part:
        runs = db_runs(path)
        if len(runs) != 1:
            raise Unreadable(f"holds {len(runs)} MLflow runs: name the database itself, which reads each run")
        part = runs[0][0]
    rows = _query(path, "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ? "
                        "ORDER BY key, timestamp, step", (part,))
    for key, value, stamp, step, is_nan in rows:
        if not isinstance(value, (int, float)) or not isinstance(step, int):
            log.issues.append(ReadIssue("corrupt", path, f"metric {str(key)[:40]!r} has a row that is not a "
                                                         f"number (row skipped)"))
            continue
        log.records += 1
        value = math.nan if is_nan else float(value)
        if abs(value) == _CLAMP:
            value = math.copysign(math.inf, value)
        wall = stamp / 1000.0 if isinstance(stamp, (int, float)) else math.nan
        log.series_for(str(key)).add(step, value, wall)
    params = dict(_query(path, "SELECT key, value FROM params WHERE run_uuid = ?", (part,)))
    _params(log, {str(k): str(v) for k, v in params.items()}, "MLflow params")
    log.meta["mlflow_run_id"] = part
    if not rows:
        log.meta["skipped"] = f"an MLflow run ({part}) that logged no metric"
    return log
