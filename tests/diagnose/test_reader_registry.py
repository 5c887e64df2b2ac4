"""The log-reader registry: every registered reader round-trips a tiny log and is picked for each of its
file patterns (a reader without a writer here fails `test_every_reader_has_a_writer`), sniffers apply
where they say, duplicates raise, and the registry is complete in a fresh interpreter without torch or
tensorboard."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from diagnose_helpers import frame, write_events, write_jsonl
from tracking_helpers import make_mlflow_db, mlflow_line, write_mlflow_run, write_wandb

from nnprobe.diagnosis.readers import (READERS, LogRef, could_be_log, discover, format_of, looked_for, read_log,
                                       readers, register_reader)
from nnprobe.diagnosis.readers.base import LogFile
from nnprobe.diagnosis.readers.registry import _READERS, Sniffer
from nnprobe.errors import InputError

EXPECTED_IDS = ["tensorboard", "lightning-csv", "keras-csv", "hf-trainer-state", "jsonl", "mlflow", "mlflow-db",
                "wandb"]
STEPS = [0, 2, 4, 6, 8, 10, 12]
VALUES = [2.0, 1.5, 1.25, math.nan, 1.0, 0.75, 0.5]  # exact in float32; the NaN must come back too
EXTRA_RECORDS = {"tensorboard": 1}  # the file_version event


def _csv(path, axis):
    rows = "".join(f"{step},{value}\n" for step, value in zip(STEPS, VALUES))
    path.write_text(f"{axis},loss\n{rows}")


def _trainer_state(path):
    history = [{"loss": value, "step": step, "epoch": step / 10} for step, value in zip(STEPS, VALUES)]
    path.write_text(json.dumps({"global_step": STEPS[-1], "log_history": history}))  # NaN as a bare token


WRITERS = {
    "tensorboard": lambda path: write_events(path, [("loss", v, s, 100.0 + s) for s, v in zip(STEPS, VALUES)]),
    "lightning-csv": lambda path: _csv(path, "step"),
    "keras-csv": lambda path: _csv(path, "epoch"),  # Keras' CSVLogger: the epoch is the axis
    "hf-trainer-state": _trainer_state,
    "jsonl": lambda path: write_jsonl(path, [{"step": s, "loss": v} for s, v in zip(STEPS, VALUES)]),
    "mlflow": lambda path: write_mlflow_run(path, {"loss": "".join(mlflow_line(1000 + s, v, s)
                                                                   for s, v in zip(STEPS, VALUES))}),
    "mlflow-db": lambda path: make_mlflow_db(path, [("loss", v, 1000 + s, s, "r1") for s, v in zip(STEPS, VALUES)]),
    "wandb": lambda path: write_wandb(path, list(zip(STEPS, VALUES))),
}


def _name_for(pattern: str) -> str:
    return pattern.replace("*", "run1")


PATTERNS = [(reader.id, pattern) for reader in readers() for pattern in reader.patterns]
SNIFFED = [(reader.id, pattern) for reader in readers() if reader.sniffer for pattern in reader.sniffer.patterns]


@pytest.fixture
def scratch_registry():
    """Readers registered by a test are gone afterwards."""
    known = set(READERS)
    yield
    for added in set(READERS) - known:
        del _READERS[added]


def _assert_round_trip(log: LogFile, reader_id: str) -> None:
    assert log.format == reader_id and log.issues == []
    assert list(log.series) == ["loss"] and log.records == len(STEPS) + EXTRA_RECORDS.get(reader_id, 0)
    loss = log.series["loss"]
    assert loss.steps == STEPS
    assert [v for v in loss.values if not math.isnan(v)] == [v for v in VALUES if not math.isnan(v)]
    assert [math.isnan(v) for v in loss.values] == [math.isnan(v) for v in VALUES]


def test_every_reader_has_a_writer():
    assert list(READERS) == EXPECTED_IDS
    assert [reader.id for reader in readers()] == EXPECTED_IDS
    assert set(WRITERS) == set(READERS)


@pytest.mark.parametrize("reader_id, pattern", PATTERNS)
def test_each_pattern_is_found_and_read_back(reader_id, pattern, tmp_path):
    name = _name_for(pattern)
    assert format_of(name) == reader_id
    WRITERS[reader_id](tmp_path / name)
    (run,) = discover(str(tmp_path))
    assert [(ref.path, ref.format) for ref in run.logs] == [(str(tmp_path / name), reader_id)]
    _assert_round_trip(read_log(run.logs[0]), reader_id)


@pytest.mark.parametrize("reader_id, pattern", SNIFFED)
def test_each_sniffer_claims_a_named_file_and_folders_only_where_it_says(reader_id, pattern, tmp_path):
    name = _name_for(pattern)
    assert format_of(name) is None  # only the content tells
    WRITERS[reader_id](tmp_path / name)
    (run,) = discover(str(tmp_path / name))
    assert [ref.format for ref in run.logs] == [reader_id]
    _assert_round_trip(read_log(run.logs[0]), reader_id)
    if READERS[reader_id].sniffer.in_folders:
        assert [ref.format for ref in discover(str(tmp_path))[0].logs] == [reader_id]
    else:
        with pytest.raises(InputError, match="no training logs"):
            discover(str(tmp_path))


@pytest.mark.parametrize("name, expected", [
    *((_name_for(pattern), True) for _, pattern in PATTERNS + SNIFFED),
    ("report.txt", False), ("hparams.yaml", False), ("metrics.CSV", False), ("run.json.bak", False),
])
def test_could_be_log_covers_patterns_and_sniffed_names(name, expected):
    assert could_be_log(name) is expected


def test_what_is_looked_for_names_every_reader():
    assert looked_for() == ("events.out.tfevents.*, metrics.csv, *.csv, Keras CSVLogger *.log, "
                            "trainer_state.json, *.jsonl, MLflow run folders (mlruns/<exp>/<run>/), mlflow.db, "
                            "W&B run-*.wandb")


def test_event_file_damage_is_located_in_bytes(tmp_path):
    path = tmp_path / "events.out.tfevents.1.x"
    path.write_bytes(frame(b"\xff\xff\xff"))
    (issue,) = read_log(LogRef(str(path), "tensorboard")).issues
    assert issue.kind == "unreadable" and issue.detail.startswith("has no readable record (at byte 0: ")


def test_a_new_reader_is_found_read_and_listed(scratch_registry, tmp_path):
    calls = []

    @register_reader("tiny-log", patterns=("*.tinylog",), options=("prefix",), shown="*.tinylog")
    def _read(path, *, prefix=""):
        calls.append(prefix)
        log = LogFile(path=path, format="tiny-log")
        for step, value in zip(STEPS, VALUES):
            log.series_for(f"{prefix}loss").add(step, value)
        log.records = len(STEPS)
        return log

    @register_reader("special-csv", patterns=("special.csv",), priority=5)  # before Keras' *.csv
    def _special(path):
        raise AssertionError("not read here")

    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "a.tinylog").write_text("")
    assert format_of("special.csv") == "special-csv" and format_of("other.csv") == "keras-csv"
    (run,) = discover(str(tmp_path))
    assert [(ref.format, ref.prefix) for ref in run.logs] == [("tiny-log", "train/")]
    log = read_log(run.logs[0], verify_crc=False)
    assert calls == ["train/"] and list(log.series) == ["train/loss"] and log.points == len(STEPS)
    assert looked_for().endswith("W&B run-*.wandb, *.tinylog")


def test_the_registry_changes_only_by_registering_a_new_id(scratch_registry):
    before = dict(READERS)
    with pytest.raises(ValueError, match="'jsonl' is registered twice"):
        register_reader("jsonl", patterns=("*.json2",))(lambda path: None)
    with pytest.raises(TypeError):  # read-only
        READERS["mine"] = READERS["jsonl"]
    assert dict(READERS) == before


def test_registry_is_complete_in_a_fresh_interpreter_without_torch_or_tensorboard():
    code = ("import sys, nnprobe.diagnosis.readers as r; print(','.join(r.READERS)); "
            "print(sorted(p for x in r.readers() for p in x.patterns)); "
            "print('torch' in sys.modules, 'tensorboard' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [",".join(EXPECTED_IDS), repr(sorted(p for _, p in PATTERNS)), "False False"]
