"""Issue 21 (4): the sample generators reproduce their committed files. Each generator is run for real into a
temporary folder (tiny models, fixed seeds, one thread, fixed wall times, ids and event-file names) and every
file it writes is compared with the committed one; a difference names the file and its first differing line
(or record), so a nondeterministic field is named, not hidden.

- samples/make_runs.py: byte for byte (~4 s).
- samples/make_tracking_runs.py (~7 s): the MLflow file stores byte for byte (ids and clocks are seeded and
  fixed while MLflow logs); the SQLite store row by row in every table (alembic builds its schema's
  constraints and indexes in a different order on every run, so the file's bytes cannot repeat); the W&B
  logs record by record but for the clocks wandb-core stamps itself (history/summary `_timestamp`,
  `_runtime` and `_wandb/runtime`, the run's start time, the exit's runtime), the run's host, the
  interpreter's version and platform in its telemetry, and the random mailbox slot of each request.
- samples/make_framework_runs.py tbx keras hf (~25 s): Keras CSVs, tensorboardX events, HF config.json and
  every EXPECTED.json byte for byte; the HF Trainer's trainer_state.json and TensorBoard events but for what
  its stopwatch measures (`*_runtime`, `*_per_second`) and the events' wall_time (its TensorBoard callback
  stamps each with time.time()). Not rerun: keras-tb-* (Keras on TensorFlow, made in a separate venv: torch
  and tensorflow in one process segfault, and tensorflow-cpu is not a test dependency).
- samples/make_corpus_runs.py: one case with three loggers (~6 s), the fields that cannot repeat named.

The generators' own dependencies (scikit-learn, mlflow-skinny, sqlalchemy/alembic, wandb, keras,
tensorboardX, transformers, accelerate) are in the test extra, the ones whose versions change the numbers
pinned to the versions that made the committed files (EXPECTED.json records them): these tests run in CI
and fail, never skip, without them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _first_difference(made: bytes, committed: bytes) -> str:
    """Where two files part: the first differing line of a text file, else the first differing byte."""
    try:
        a, b = made.decode().splitlines(), committed.decode().splitlines()
    except UnicodeDecodeError:
        at = next((i for i, (x, y) in enumerate(zip(made, committed)) if x != y), min(len(made), len(committed)))
        return f"byte {at} of {len(made)} (committed: {len(committed)} bytes)"
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"line {at + 1}: made {a[at] if at < len(a) else '<end>'!r}, committed {b[at] if at < len(b) else '<end>'!r}"


def test_make_runs_reproduces_its_committed_files_byte_for_byte(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, str(SAMPLES / "make_runs.py"), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    sys.path.insert(0, str(SAMPLES))
    try:
        import make_runs
    finally:
        sys.path.remove(str(SAMPLES))
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    # every run the generator names, and nothing else, was written; each was committed
    assert {p.parts[0] for p in made} == set(make_runs.INJECTED)
    committed = sorted(p.relative_to(SAMPLES / "runs") for name in make_runs.INJECTED
                       for p in (SAMPLES / "runs" / name).rglob("*") if p.is_file())
    assert made == committed
    differ = [f"{path}: {_first_difference((tmp_path / path).read_bytes(), (SAMPLES / 'runs' / path).read_bytes())}"
              for path in made if (tmp_path / path).read_bytes() != (SAMPLES / "runs" / path).read_bytes()]
    assert not differ, "regenerated files differ from samples/runs/ (rerun samples/make_runs.py and the tests " \
                       "that quote them):\n" + "\n".join(differ)
    # and what the golden tests read from INJECTED.json is the generator's record, not an edit
    for name in make_runs.INJECTED:
        record = json.loads((SAMPLES / "runs" / name / "INJECTED.json").read_text())
        assert record["run"] == name and record["injected"] == make_runs.INJECTED[name]["injected"]


def test_first_difference_names_the_line_or_byte():
    assert _first_difference(b"a\nb\n", b"a\nc\n") == "line 2: made 'b', committed 'c'"
    assert _first_difference(b"\xff\x00\x01", b"\xff\x00\x02") == "byte 2 of 3 (committed: 3 bytes)"


def test_corpus_generator_reproduces_its_runs_but_for_the_fields_named(tmp_path):
    """samples/make_corpus_runs.py retrains healthy-sgd with three loggers (~6 s of one core). JSON lines come
    out byte for byte. Two things are nondeterministic by the loggers' design, and nothing else: TensorBoard's
    `wall_time` (SummaryWriter stamps every event, and names its file, with time.time()), and MLflow's
    timestamps (time.time() in ms on every metric line and in meta.yaml) and ids (the experiment id and the
    run id are random). Needs the generator's own dependencies (scikit-learn for the data, mlflow-skinny),
    which are in the test extra."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, str(SAMPLES / "make_corpus_runs.py"), str(tmp_path), "jsonl", "tb",
                           "mlflow", "--case=healthy-sgd"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    corpus = SAMPLES / "corpus"
    for name in ("jsonl-healthy-sgd/metrics.jsonl", "jsonl-healthy-sgd/EXPECTED.json", "tb-healthy-sgd/EXPECTED.json",
                 "mlflow-healthy-sgd/EXPECTED.json"):
        assert (tmp_path / name).read_bytes() == (corpus / name).read_bytes(), name
    # TensorBoard: every event equal once its wall_time is cleared; the file name differs in its time stamp only
    (made,), (committed,) = [sorted((root / "tb-healthy-sgd").glob("events.out.tfevents.*"))
                             for root in (tmp_path, corpus)]
    assert made.name.split(".")[:3] + made.name.split(".")[4:] == \
        committed.name.split(".")[:3] + committed.name.split(".")[4:]
    a, b = _events(made), _events(committed)
    assert len(a) == len(b) > 100 and a != b  # the wall times differ ...
    for one, other in zip(a, b):
        one.wall_time = other.wall_time = 0
    assert a == b  # ... and nothing else does
    # MLflow: every metric's (value, step) pairs and every param equal; timestamps and ids differ
    (made_run,), (committed_run,) = [[p for p in (root / "mlflow-healthy-sgd" / "mlruns").glob("*/*")
                                      if (p / "metrics").is_dir()] for root in (tmp_path, corpus)]
    assert made_run.name != committed_run.name  # a random run id
    keys = sorted(p.name for p in (committed_run / "metrics").iterdir())
    assert keys == sorted(p.name for p in (made_run / "metrics").iterdir()) and "val_accuracy" in keys
    for key in keys:
        pairs = [[line.split()[1:] for line in (run / "metrics" / key).read_text().splitlines()]
                 for run in (made_run, committed_run)]
        assert pairs[0] == pairs[1], key
    for param in (committed_run / "params").iterdir():
        assert (made_run / "params" / param.name).read_bytes() == param.read_bytes()


def _events(path: Path) -> list:
    import struct

    from tensorboard.compat.proto.event_pb2 import Event

    data, events, pos = path.read_bytes(), [], 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        events.append(Event.FromString(data[pos + 12:pos + 12 + length]))
        pos += 16 + length
    return events


def _generate(script: str, args: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "WANDB_MODE": "offline"}
    done = subprocess.run([sys.executable, str(SAMPLES / script), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _files(root: Path, folders) -> list[Path]:
    return sorted(p.relative_to(root) for name in folders for p in (root / name).rglob("*") if p.is_file())


def _compare(made: Path, committed: Path, paths, special: dict) -> list[str]:
    """Each file byte for byte, or by the comparison `special` names for its suffix; the differences found."""
    differ = []
    for path in paths:
        a, b = (made / path).read_bytes(), (committed / path).read_bytes()
        check = next((fn for suffix, fn in special.items() if path.match(suffix)), None)
        why = check(made / path, committed / path) if check else (None if a == b else _first_difference(a, b))
        if why:
            differ.append(f"{path}: {why}")
    return differ


TRACKING = [f"{tool}-{name}" for tool in ("mlflow", "wandb") for name in ("healthy", "nan-loss", "chance")] + \
    ["mlflow-db"]


def test_tracking_generator_reproduces_its_runs_but_for_wandbs_clocks(tmp_path):
    _generate("make_tracking_runs.py", [str(tmp_path)], tmp_path)
    made = _files(tmp_path, TRACKING)
    assert made == _files(SAMPLES / "runs", TRACKING) and len(made) == 50
    differ = _compare(tmp_path, SAMPLES / "runs", made, {"*.db": _sqlite_difference, "*.wandb": _wandb_difference})
    assert not differ, "rerun samples/make_tracking_runs.py and the tests that quote it:\n" + "\n".join(differ)


def _sqlite_difference(made: Path, committed: Path) -> str | None:
    """Every table's columns and rows (in a fixed order) equal; the schema's DDL text is not compared."""
    import sqlite3

    def dump(path: Path) -> dict:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [t for (t,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {t: (sorted(c[1] for c in connection.execute(f'PRAGMA table_info("{t}")')),
                        sorted(map(repr, connection.execute(f'SELECT * FROM "{t}"')))) for t in tables}
        finally:
            connection.close()

    a, b = dump(made), dump(committed)
    assert len(b["metrics"][1]) > 500 and len(b["runs"][1]) == 3  # the comparison below compares something
    if sorted(a) != sorted(b):
        return f"tables {sorted(set(a) ^ set(b))} are in one file only"
    return next((f"table {t}: columns or rows differ" for t in sorted(a) if a[t] != b[t]), None)


WANDB_CLOCKS = ("_timestamp", "_runtime", "_wandb/runtime")


def _wandb_records(path: Path) -> list:
    """The .wandb transaction log's records (LevelDB log framing: 32 KiB blocks, 7-byte fragment headers,
    after the 7-byte :W&B header), decoded by wandb's own protobuf classes, with the named fields cleared."""
    import struct

    from wandb.proto.wandb_internal_pb2 import Record

    data, pos, bodies, pending = path.read_bytes(), 7, [], b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        _, length, kind = struct.unpack_from("<IHB", data, pos)
        if (kind, length) == (0, 0) or 32768 - pos % 32768 < 7:  # zero padding to the block's end
            pos += 32768 - pos % 32768
            continue
        pending, pos = pending + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # FULL or LAST
            bodies.append(pending)
            pending = b""
    records = []
    for body in bodies:
        record = Record.FromString(body)
        record.control.ClearField("mailbox_slot")  # a random id per request
        kind = record.WhichOneof("record_type")
        if kind == "run":
            record.run.ClearField("start_time")  # wandb-core's clock
            record.run.ClearField("host")  # the generating machine
        if kind in ("run", "telemetry"):
            telemetry = record.run.telemetry if kind == "run" else record.telemetry
            telemetry.ClearField("python_version")  # the interpreter, not the generator
            telemetry.ClearField("platform")
        if kind == "exit":
            record.exit.ClearField("runtime")  # seconds the run took
        if kind in ("history", "summary"):  # wandb-core writes both maps in no fixed order
            items = record.history.item if kind == "history" else record.summary.update
            kept = sorted((one for one in items if _wandb_key(one) not in WANDB_CLOCKS), key=_wandb_key)
            del items[:]
            items.extend(kept)
        records.append(record)
    return records


def _wandb_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def _wandb_difference(made: Path, committed: Path) -> str | None:
    a, b = _wandb_records(made), _wandb_records(committed)
    assert sum(r.WhichOneof("record_type") == "history" for r in b) > 50  # the metrics are compared
    if len(a) != len(b):
        return f"{len(a)} records, committed {len(b)}"
    return next((f"record {i} ({one.WhichOneof('record_type')}): made {str(one)[:300]!r}, committed "
                 f"{str(other)[:300]!r}" for i, (one, other) in enumerate(zip(a, b)) if one != other), None)


FRAMEWORK = ("tbx", "keras", "hf")
HF_STOPWATCH = ("runtime", "per_second")  # the Trainer's speed metrics: eval_runtime, train_samples_per_second, ...


def test_framework_generator_reproduces_its_runs_but_for_the_trainers_stopwatch(tmp_path):
    # run as the committed files were made, from the repository root with a relative folder: the Trainer
    # writes its output_dir into the events' args/text_summary
    _generate("make_framework_runs.py", ["samples/runs", *FRAMEWORK], tmp_path)
    made_root, committed_root = tmp_path / "samples" / "runs", SAMPLES / "runs"
    folders = sorted(p.name for p in committed_root.iterdir() if (p / "EXPECTED.json").exists()
                     and p.name.split("-")[0] in FRAMEWORK and not p.name.startswith("keras-tb-"))
    assert len(folders) == 14 and sorted(p.name for p in made_root.iterdir()) == folders
    made = _files(made_root, folders)
    assert made == _files(committed_root, folders)
    differ = _compare(made_root, committed_root, made, {"hf-*/**/trainer_state.json": _trainer_state_difference,
                                                        "hf-*/runs/*/events.out.tfevents.*": _hf_events_difference,
                                                        "hf-*/trainer_state.json": _trainer_state_difference})
    assert not differ, "rerun samples/make_framework_runs.py and the tests that quote it:\n" + "\n".join(differ)


def _without_stopwatch(value):
    if isinstance(value, dict):
        return {k: _without_stopwatch(v) for k, v in value.items() if not k.endswith(HF_STOPWATCH)}
    return [_without_stopwatch(v) for v in value] if isinstance(value, list) else value


def _trainer_state_difference(made: Path, committed: Path) -> str | None:
    a, b = (json.loads(p.read_text()) for p in (made, committed))
    assert "eval_runtime" in json.dumps(b) and len(b["log_history"]) > 10
    a, b = _without_stopwatch(a), _without_stopwatch(b)
    if a == b:
        return None
    at = next((i for i, (x, y) in enumerate(zip(a["log_history"], b["log_history"])) if x != y), None)
    return f"log_history[{at}]: made {a['log_history'][at]}, committed {b['log_history'][at]}" if at is not None \
        else "fields outside log_history differ"


def _hf_events_difference(made: Path, committed: Path) -> str | None:
    a, b = _events(made), _events(committed)
    assert len(b) > 100
    if len(a) != len(b):
        return f"{len(a)} events, committed {len(b)}"
    for i, (one, other) in enumerate(zip(a, b)):
        for event in (one, other):
            event.wall_time = 0
            for value in event.summary.value:
                if value.tag.endswith(HF_STOPWATCH):
                    value.simple_value = 0
        if one != other:
            return f"event {i}: made {str(one)[:300]!r}, committed {str(other)[:300]!r}"
    return None
