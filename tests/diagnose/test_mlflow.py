"""MLflow runs: the file store (mlruns/<exp>/<run>/) and the SQLite store (mlflow.db).

Expected values come from samples/make_tracking_runs.py (INJECTED.json: what each run was given, the first
non-finite logged step and how many) and from the raw files read here with plain loops and sqlite3; the
hand-built stores follow the layout of mlflow's file_store.py / sqlalchemy_store.py.
"""
from __future__ import annotations

import json
import math
import os
import random
import sqlite3
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnprobe.diagnosis import diagnose
from nnprobe.diagnosis.readers import discover, log_files, mlflow, read_log
from nnprobe.errors import InputError

from diagnose_helpers import SAMPLES
from tracking_helpers import make_mlflow_db, write_mlflow_run

RUNS = ("healthy", "nan-loss", "chance")


def injected(folder: str) -> dict:
    return json.loads((SAMPLES / folder / "INJECTED.json").read_text())


def run_folder(name: str):
    (meta,) = (SAMPLES / f"mlflow-{name}" / "mlruns").glob("*/*/meta.yaml")
    return meta.parent


def raw_nonfinite(path) -> tuple[int | None, int]:
    """(first step whose value is not finite, how many), read with a plain loop."""
    first, count = None, 0
    for line in open(path):
        _, value, step = line.split()
        if not math.isfinite(float(value)):
            first = int(step) if first is None else first
            count += 1
    return first, count


def errors(run) -> list[tuple[str, object]]:
    return sorted((f.id, f.evidence.get("series")) for f in run.findings if f.severity == "error")


def check_verdict(run, record: dict) -> None:
    """The findings a run must have, from what the generator put in."""
    if record["run"] == "healthy":
        assert [f for f in run.findings if f.severity in ("error", "warning")] == []
    elif record["run"] == "chance":
        assert ("chance-accuracy", "val_acc") in errors(run)
        assert run.num_classes == 10
    else:
        steps = {f.evidence.get("series"): f.evidence.get("step") for f in run.findings if f.id == "loss-not-finite"}
        assert steps == {"loss": record["first_nonfinite_train_step"], "val_loss": record["first_nonfinite_val_step"]}


# ------------------------------------------------------------------------------------------ file store

@pytest.mark.parametrize("name", RUNS)
def test_file_store_sample_gives_its_injected_verdict(name):
    record = injected(f"mlflow-{name}")
    result = diagnose(str(SAMPLES / f"mlflow-{name}"))
    (run,) = result.runs
    assert run.num_classes == 10 and "MLflow params" in run.num_classes_source
    check_verdict(run, record)
    if name == "nan-loss":
        first, count = raw_nonfinite(run_folder(name) / "metrics" / "loss")
        assert (first, count) == (record["first_nonfinite_train_step"], record["nonfinite_train_points"])


def test_run_folder_experiment_folder_and_mlruns_give_the_same_runs():
    folder = run_folder("nan-loss")
    one = diagnose(str(folder))
    experiment = diagnose(str(folder.parent))
    everything = diagnose(str(SAMPLES / "mlflow-nan-loss" / "mlruns"))
    assert [r.path for r in experiment.runs] == [folder.name]
    assert len(everything.runs) == 1  # experiment 0's meta.yaml has no metrics/ beside it: no run
    assert [(f.id, f.message) for f in one.findings] == [(f.id, f.message) for f in experiment.findings]


def write_run(root, metrics: dict[str, str], params: dict[str, str] | None = None):
    (root / "mlruns" / "1" / "abc123").mkdir(parents=True)
    (root / "mlruns" / "1" / "meta.yaml").write_text("experiment_id: '1'\nname: e\n")
    return write_mlflow_run(root / "mlruns" / "1" / "abc123" / "meta.yaml", metrics, params).parent


def test_file_store_lines_nan_spellings_nested_keys_and_damage(tmp_path):
    run = write_run(tmp_path, {
        "loss": "1000 2.5 0\n2000 nan 1\n3000 inf 2\n4000 -inf 3\n5000 0.5 4 ds digest\n6000 0.25 5\n",
        "train/acc": "1000 0.1 0\n2000 0.2 1\n",
        "old": "1000 7.0\n",
        "bad": "1000 0.1 0\nnot a metric line\n2000 x 1\n3000 0.3 2\n",
        "cut": "1000 0.1 0\n2000 0.2",
    }, params={"num_classes": "7", "optimizer": "adam"})
    (ref,) = discover(str(tmp_path))[0].logs
    assert ref.format == "mlflow" and ref.path == str(run / "meta.yaml")
    log = read_log(ref)
    loss = log.series["loss"]
    assert loss.steps == [0, 1, 2, 3, 4, 5]
    assert loss.values[0] == 2.5 and math.isnan(loss.values[1]) and loss.values[2:4] == [math.inf, -math.inf]
    assert loss.values[4:] == [0.5, 0.25] and loss.walls == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert log.series["train/acc"].values == [0.1, 0.2]
    assert log.series["old"].steps == [0] and log.series["old"].values == [7.0]
    assert log.series["bad"].values == [0.1, 0.3] and log.series["cut"].values == [0.1]
    kinds = sorted((i.kind, os.path.basename(i.path), i.offset) for i in log.issues)
    assert kinds == [("corrupt", "bad", 2), ("truncated", "cut", 2)]
    assert "2 line(s)" in [i.detail for i in log.issues if i.kind == "corrupt"][0]
    assert log.records == 6 + 2 + 1 + 2 + 1
    assert log.meta["num_classes"] == 7 and log.meta["optimizer"] == "adam"
    result = diagnose(str(tmp_path))
    assert result.runs[0].num_classes == 7


def test_experiment_meta_alone_is_no_run_and_an_empty_run_is_exit_2(tmp_path):
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "meta.yaml").write_text("name: Default\n")
    with pytest.raises(InputError, match="no training logs under"):
        diagnose(str(tmp_path))
    write_run(tmp_path, {})
    with pytest.raises(InputError, match=r"meta.yaml is an MLflow run that logged no metric"):
        diagnose(str(tmp_path))


def test_hostile_metric_files_are_reported_not_raised(tmp_path, monkeypatch):
    run = write_run(tmp_path, {"loss": "1000 1.0 0\n2000 0.5 1\n", "big": "1000 1.0 0\n" * 100,
                               "garbage": "\x00\xff\xfe" * 50})
    os.mkfifo(run / "metrics" / "pipe")
    monkeypatch.setattr(mlflow, "METRIC_CAP", 500)
    log = read_log(discover(str(tmp_path))[0].logs[0])
    by_file = {os.path.basename(i.path): (i.kind, i.detail) for i in log.issues}
    assert by_file["pipe"] == ("unreadable", "is a FIFO (named pipe), not a regular file")
    assert by_file["big"][0] == "unreadable" and "over the 0 MiB limit" in by_file["big"][1]
    assert by_file["garbage"][0] in ("corrupt", "truncated")
    assert set(log.series) == {"loss"}
    result = diagnose(str(tmp_path))  # the good metric is judged, the unreadable ones fail the gate
    assert result.failed and "log-unreadable" in {f.id for f in result.findings}


# ---------------------------------------------------------------------------------------- SQLite store

def db_path():
    return SAMPLES / "mlflow-db" / "mlflow.db"


def test_sqlite_sample_gives_each_run_its_injected_verdict():
    records = injected("mlflow-db")
    before = os.stat(db_path()).st_mtime_ns
    result = diagnose(str(db_path()))
    assert os.stat(db_path()).st_mtime_ns == before
    assert sorted(os.listdir(db_path().parent)) == ["INJECTED.json", "mlflow.db"]  # no journal, no -wal
    by_name = {run.path.rsplit("/", 1)[1]: run for run in result.runs}  # mlflow.db#<experiment>/<run name>
    assert sorted(by_name) == sorted(RUNS)
    assert all(run.path.startswith(f"{db_path()}#") for run in result.runs)
    for name, record in records.items():
        check_verdict(by_name[name], record)
    connection = sqlite3.connect(str(db_path()))  # the raw rows, read independently
    nan_rows = connection.execute("SELECT COUNT(*), MIN(step) FROM metrics WHERE key = 'loss' AND is_nan = 1 "
                                  "AND run_uuid = ?", (records["nan-loss"]["run_id"],)).fetchone()
    connection.close()
    nan = records["nan-loss"]
    assert nan_rows == (nan["nonfinite_train_points"], nan["first_nonfinite_train_step"])


def test_sqlite_and_file_store_agree_on_every_point():
    records = injected("mlflow-db")
    for name in RUNS:
        file_log = read_log(discover(str(run_folder(name)))[0].logs[0])
        (files,) = [r for r in discover(str(db_path())) if r.logs[0].part == records[name]["run_id"]]
        assert files.root.endswith(f"/{name}")
        db_log = read_log(files.logs[0])
        assert sorted(file_log.series) == sorted(db_log.series)
        for key, raw in file_log.series.items():
            other = db_log.series[key]
            assert raw.steps == other.steps and raw.walls == other.walls
            assert [repr(v) for v in raw.values] == [repr(v) for v in other.values]


def test_sqlite_nan_flag_inf_clamp_deleted_runs_and_params(tmp_path):
    make_mlflow_db(tmp_path / "mlflow.db", [("loss", 2.0, 1000, 0, "r1"), ("loss", math.nan, 2000, 1, "r1"),
                                            ("loss", math.inf, 3000, 2, "r1"), ("loss", -math.inf, 4000, 3, "r1"),
                                            ("loss", 1.0, 1000, 0, "del1")],
                   runs=(("r1", "0"), ("del1", "0")), params=(("num_classes", "4", "r1"),))
    connection = sqlite3.connect(str(tmp_path / "mlflow.db"))  # MLflow's encoding, as stored
    assert connection.execute("SELECT value, is_nan FROM metrics WHERE step IN (1, 2) ORDER BY step").fetchall() == \
        [(0.0, 1), (sys.float_info.max, 0)]
    connection.close()
    (run,) = discover(str(tmp_path))
    assert run.root == f"{tmp_path / 'mlflow.db'}#0/n" and run.logs[0].part == "r1"  # labelled by its name
    log = read_log(run.logs[0])
    assert log.series["loss"].steps == [0, 1, 2, 3] and log.series["loss"].walls == [1.0, 2.0, 3.0, 4.0]
    values = log.series["loss"].values
    assert values[0] == 2.0 and math.isnan(values[1]) and values[2:] == [math.inf, -math.inf]
    assert log.meta["num_classes"] == 4


@pytest.mark.parametrize("content, fragment", [
    (random.Random(64).randbytes(64), "is not an SQLite database"),  # seeded: pytest-xdist workers collect the same ids
    (b"", "is not an SQLite database"),
])
def test_a_db_that_is_not_sqlite_is_one_sentence(tmp_path, content, fragment):
    (tmp_path / "mlflow.db").write_bytes(content)
    with pytest.raises(InputError, match=fragment):
        diagnose(str(tmp_path / "mlflow.db"))


def test_truncated_and_foreign_databases_are_one_sentence(tmp_path):
    data = db_path().read_bytes()
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "mlflow.db").write_bytes(data[:len(data) // 3])
    with pytest.raises(InputError) as info:
        diagnose(str(cut / "mlflow.db"))
    assert str(info.value).startswith(f"no metric could be read from {cut / 'mlflow.db'}")
    assert "\n" not in str(info.value)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    connection = sqlite3.connect(str(foreign / "mlflow.db"))
    connection.execute("CREATE TABLE t (x)")
    connection.commit()
    connection.close()
    with pytest.raises(InputError, match="is not a readable MLflow database: no such table: runs"):
        diagnose(str(foreign / "mlflow.db"))


def test_log_files_lists_the_db_and_meta_yaml(tmp_path):
    make_mlflow_db(tmp_path / "mlflow.db", [("loss", 1.0, 1, 0, "r1")], runs=(("r1", "0"), ("r2", "0")))
    assert log_files(str(tmp_path)) == [str(tmp_path / "mlflow.db")] * 2
    roots = [run.root.rsplit("#", 1)[1] for run in discover(str(tmp_path))]
    assert roots == ["0/r1", "0/r2"]  # both runs are named 'n': labelled by their ids
    assert [os.path.basename(p) for p in log_files(str(run_folder("healthy")))] == ["meta.yaml"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet="0123456789 .-einfaNx\n\x00", max_size=400), params=st.text(max_size=40))
def test_fuzzed_metric_files_give_a_diagnosis_or_one_sentence(tmp_path_factory, text, params):
    root = tmp_path_factory.mktemp("fuzz")
    write_run(root, {"loss": text}, params={"num_classes": params})
    try:
        result = diagnose(str(root))
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    result.to_dict()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 255)), min_size=1, max_size=8))
def test_fuzzed_databases_give_a_diagnosis_or_one_sentence(tmp_path_factory, flips):
    root = tmp_path_factory.mktemp("fuzzdb")
    make_mlflow_db(root / "mlflow.db", [("loss", 1.0 / (s + 1), 1000 * s, s, "r1") for s in range(200)],
                   params=(("num_classes", "10", "r1"),))
    data = bytearray((root / "mlflow.db").read_bytes())
    for at, mask in flips:
        data[at % len(data)] ^= mask
    (root / "mlflow.db").write_bytes(bytes(data))
    try:
        result = diagnose(str(root / "mlflow.db"))
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    result.to_dict()
