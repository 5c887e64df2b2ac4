"""Reader tests, one group per format: every point kept, NaN spellings, damage reported, restarts."""
from __future__ import annotations

import json
import math
import os
import struct

import numpy as np
import pytest

from nnprobe.diagnosis import diagnose
from nnprobe.diagnosis.readers import discover, hf_trainer_state, jsonl, keras_csv, lightning_csv, tensorboard
from nnprobe.diagnosis.run import load_run
from nnprobe.errors import InputError

from diagnose_helpers import frame, scalar_event, wire_scalar_event, write_events


def same(a, b) -> bool:
    return all((x == y) or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


# ---------------------------------------------------------------------------------------- TensorBoard

def test_summarywriter_legacy_and_tensor_scalars_read_exactly(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    values = [2.5, float("nan"), float("inf"), -float("inf"), 0.125]
    for step, value in enumerate(values):
        writer.add_scalar("legacy", value, step, walltime=100.0 + step)
        writer.add_scalar("tf2", value, step, walltime=100.0 + step, new_style=True)
    writer.add_text("note", "not a scalar", 0)
    writer.add_histogram("weights", np.arange(10.0), 0)
    writer.close()
    (path,) = [os.path.join(tmp_path, f) for f in os.listdir(tmp_path)]
    log = tensorboard.read(path)
    assert set(log.series) == {"legacy", "tf2"}
    for tag in ("legacy", "tf2"):
        assert log.series[tag].steps == [0, 1, 2, 3, 4]
        assert same(log.series[tag].values, values)
        assert log.series[tag].walls == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert log.issues == []


def test_tensor_content_and_half_scalars(tmp_path):
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.compat.proto.tensor_pb2 import TensorProto

    tensors = {
        "f64": TensorProto(dtype=2, tensor_content=struct.pack("<d", 0.1)),
        "f32": TensorProto(dtype=1, tensor_content=struct.pack("<f", float("nan"))),
        "half": TensorProto(dtype=19, half_val=[struct.unpack("<H", struct.pack("<e", 1.5))[0]]),
        "i64": TensorProto(dtype=9, int64_val=[7]),
        "text": TensorProto(dtype=7, string_val=[b"hello"]),
        "vector": TensorProto(dtype=1, float_val=[1.0, 2.0], tensor_shape={"dim": [{"size": 2}]}),
    }
    body = b"".join(frame(Event(step=3, wall_time=5.0, summary=Summary(value=[Summary.Value(tag=t, tensor=v)]))
                          .SerializeToString()) for t, v in tensors.items())
    path = tmp_path / "events.out.tfevents.1.x"
    path.write_bytes(body)
    log = tensorboard.read(str(path))
    assert set(log.series) == {"f64", "f32", "half", "i64"}
    assert log.series["f64"].values == [0.1]
    assert math.isnan(log.series["f32"].values[0])
    assert log.series["half"].values == [1.5]
    assert log.series["i64"].values == [7.0]


def test_hand_encoded_test_events_equal_proto_serialisation():
    for point in (("loss", 2.5, 0, 1.5), ("train/loss", float("nan"), 300, 1e9), ("x", -1.0, 2**40, 5.0)):
        assert wire_scalar_event(*point) == scalar_event(*point)


def test_truncated_last_record_reported_and_good_records_kept(tmp_path):
    path = write_events(tmp_path / "events.out.tfevents.1.x",
                        [("loss", float(i), i, 10.0 + i) for i in range(50)])
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # the writer died inside the last record
    log = tensorboard.read(str(path))
    assert log.series["loss"].values == [float(i) for i in range(49)]
    assert [i.kind for i in log.issues] == ["truncated"]
    path.write_bytes(data[:-len(frame(scalar_event("loss", 49.0, 49, 59.0))) + 5])  # cut in the header
    log = tensorboard.read(str(path))
    assert len(log.series["loss"].values) == 49
    assert [i.kind for i in log.issues] == ["truncated"]


def test_bad_data_crc_skips_only_that_record(tmp_path):
    points = [("loss", float(i), i, 10.0 + i) for i in range(20)]
    path = write_events(tmp_path / "events.out.tfevents.1.x", points)
    data = bytearray(path.read_bytes())
    records = [frame(scalar_event(*p)) for p in points]
    header = len(data) - sum(len(r) for r in records)
    offset = header + sum(len(r) for r in records[:7]) + 12 + 3  # a byte inside record 7's data
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    log = tensorboard.read(str(path))
    assert log.series["loss"].steps == [i for i in range(20) if i != 7]
    assert [(i.kind, i.offset) for i in log.issues] == [("corrupt", header + sum(len(r) for r in records[:7]))]
    unchecked = tensorboard.read(str(path), verify_crc=False)  # without CRC the damaged record may decode
    assert not any(i.kind == "corrupt" and "CRC" in i.detail for i in unchecked.issues)


def test_bad_length_crc_stops_framing(tmp_path):
    points = [("loss", 1.0, i, 1.0 + i) for i in range(5)]
    path = write_events(tmp_path / "events.out.tfevents.1.x", points)
    data = bytearray(path.read_bytes())
    start = len(data) - sum(len(frame(scalar_event(*p))) for p in points[3:])  # the record of step 3
    data[start + 8] ^= 0x01  # its length CRC
    path.write_bytes(bytes(data))
    log = tensorboard.read(str(path))
    assert log.series["loss"].steps == [0, 1, 2]
    assert len(log.issues) == 1 and log.issues[0].kind == "corrupt" and "length" in log.issues[0].detail


def test_two_hundred_thousand_points_keep_every_nan(tmp_path):
    n = 200_000
    values = np.linspace(3.0, 0.1, n)
    values[::997] = np.nan
    values[5::1999] = np.inf
    path = write_events(tmp_path / "events.out.tfevents.1.x",
                        [("train/loss", float(v), i, 1000.0 + i * 0.01) for i, v in enumerate(values)])
    result = diagnose(str(path))
    (finding,) = [f for f in result.findings if f.id == "loss-not-finite"]
    assert finding.evidence["count"] == int((~np.isfinite(values)).sum())
    assert finding.evidence["points"] == n
    assert finding.evidence["step"] == 0  # step 0 is a NaN point: EventAccumulator would lose both
    assert result.runs[0].sources[0].points == n


def test_restart_resolved_by_wall_time(tmp_path):
    first = [("loss", 10.0 + i, i, 100.0 + i) for i in range(0, 20)]  # steps 0..19, crashed at 19
    second = [("loss", 100.0 + i, i, 500.0 + i) for i in range(15, 30)]  # resumed from step 15
    write_events(tmp_path / "events.out.tfevents.1.a", first)
    write_events(tmp_path / "events.out.tfevents.2.b", second)
    (run,) = discover(str(tmp_path))
    data = load_run(run)
    series = data.series["loss"]
    assert series.steps.tolist() == list(range(30))
    assert series.values.tolist() == [10.0 + i for i in range(15)] + [100.0 + i for i in range(15, 30)]
    assert series.superseded == 5
    result = diagnose(str(tmp_path))
    (info,) = [f for f in result.findings if f.id == "run-restarted"]
    assert info.severity == "info" and info.evidence == {"superseded_points": 5}


def test_keras_split_folders_are_one_run_with_prefixed_tags(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    for split, base in (("train", 1.0), ("validation", 1.5)):
        writer = SummaryWriter(str(tmp_path / "logs" / split))
        for epoch in range(4):
            writer.add_scalar("epoch_loss", base / (epoch + 1), epoch, new_style=True)
            writer.add_scalar("epoch_accuracy", 0.5 + 0.1 * epoch, epoch, new_style=True)
        writer.close()
    (run,) = discover(str(tmp_path / "logs"))
    data = load_run(run)
    assert set(data.series) == {"train/epoch_loss", "train/epoch_accuracy", "validation/epoch_loss",
                                "validation/epoch_accuracy"}
    assert data.series["validation/epoch_loss"].epochs.tolist() == [0.0, 1.0, 2.0, 3.0]
    mapping = {m.role: m.series for m in diagnose(str(tmp_path / "logs")).runs[0].mapping}
    assert mapping == {"train_loss": "train/epoch_loss", "val_loss": "validation/epoch_loss",
                       "train_acc": "train/epoch_accuracy", "val_acc": "validation/epoch_accuracy",
                       "lr": None, "grad_norm": None}


# ---------------------------------------------------------------------------------------- CSV

def test_lightning_sparse_rows_and_nan_spellings(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train_loss_step,val_loss,val_acc\n"
                    "0,9,2.3,,\n"
                    "0,19,nan,,\n"
                    "0,19,,1.9,0.4\n"
                    "1,29,inf,,\n"
                    "1,39,-inf,,\n"
                    "1,39,,NaN,0.5\n")
    log = lightning_csv.read(str(path))
    assert log.series["train_loss_step"].steps == [9, 19, 29, 39]
    assert same(log.series["train_loss_step"].values, [2.3, math.nan, math.inf, -math.inf])
    assert log.series["val_loss"].steps == [19, 39]
    assert same(log.series["val_loss"].values, [1.9, math.nan])
    assert log.series["val_acc"].epochs == [0.0, 1.0]
    assert log.issues == []


def test_keras_csvlogger_na_is_missing_nan_is_nan(tmp_path):
    path = tmp_path / "training.csv"
    path.write_text("epoch,accuracy,loss,val_accuracy,val_loss\r\n"
                    "0,0.5,1.2,NA,NA\r\n"
                    "1,0.6,nan,0.55,1.1\r\n")
    log = keras_csv.read(str(path))
    assert log.series["loss"].steps == [0, 1]
    assert same(log.series["loss"].values, [1.2, math.nan])
    assert log.series["val_loss"].steps == [1] and log.series["val_loss"].values == [1.1]


def test_csv_cut_last_line_is_truncated(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,loss\n0,1,2.0\n0,2,1.9\n0,3,1.")
    log = lightning_csv.read(str(path))
    assert log.series["loss"].values == [2.0, 1.9]
    assert [i.kind for i in log.issues] == ["truncated"]


def test_csv_without_axis_is_not_a_metrics_table(tmp_path):
    (tmp_path / "predictions.csv").write_text("image,label\na.jpg,3\n")
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    result = diagnose(str(tmp_path))
    (source,) = [s for s in result.runs[0].sources if s.path.endswith("predictions.csv")]
    assert source.points == 0 and "not a metrics table" in source.skipped


# ---------------------------------------------------------------------------------------- HF, JSON lines

def test_hf_trainer_state_bare_nan_and_infinity(tmp_path):
    state = ('{"max_steps": 30, "global_step": 20, "log_history": ['
             '{"epoch": 0.5, "grad_norm": 1.5, "learning_rate": 5e-05, "loss": 2.1, "step": 10},'
             '{"epoch": 1.0, "grad_norm": NaN, "learning_rate": 4e-05, "loss": 0.0, "step": 20},'
             '{"epoch": 1.0, "eval_loss": Infinity, "eval_accuracy": 0.9, "step": 20}]}')
    (tmp_path / "trainer_state.json").write_text(state)
    (tmp_path / "config.json").write_text(json.dumps({"id2label": {str(i): str(i) for i in range(7)}}))
    log = hf_trainer_state.read(str(tmp_path / "trainer_state.json"))
    assert same(log.series["grad_norm"].values, [1.5, math.nan])
    assert log.series["eval_loss"].values == [math.inf]
    assert log.series["loss"].epochs == [0.5, 1.0]
    assert log.meta["max_steps"] == 30 and log.meta["finished"] is False
    result = diagnose(str(tmp_path))
    assert result.runs[0].num_classes == 7 and "config.json" in result.runs[0].num_classes_source
    ids = sorted(f.id for f in result.findings)
    assert ids == ["loss-not-finite", "run-stopped-early"]


def test_hf_checkpoint_copies_are_not_read_twice(tmp_path):
    history = [{"loss": 2.0 - 0.1 * i, "step": 10 * i, "epoch": i / 10} for i in range(1, 11)]
    (tmp_path / "checkpoint-50").mkdir()
    (tmp_path / "checkpoint-50" / "trainer_state.json").write_text(json.dumps({"log_history": history[:5]}))
    (tmp_path / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    result = diagnose(str(tmp_path))
    (run,) = result.runs
    assert [s.path for s in run.sources] == [str(tmp_path / "trainer_state.json")]
    assert len(run.ignored) == 1 and "checkpoint-50" in run.ignored[0][0]


def test_jsonl_nan_tokens_cut_and_corrupt_lines(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 0, "loss": 2.0, "time": 1.0}\n'
                    '{"step": 1, "loss": NaN, "time": 2.0}\n'
                    'garbage\n'
                    '{"step": 2, "loss": -Infinity, "time": 3.0}\n'
                    '{"step": 3, "lo')
    log = jsonl.read(str(path))
    assert log.series["loss"].steps == [0, 1, 2]
    assert same(log.series["loss"].values, [2.0, math.nan, -math.inf])
    assert log.series["loss"].walls == [1.0, 2.0, 3.0]
    assert [(i.kind, i.offset) for i in log.issues] == [("corrupt", 3), ("truncated", 5)]


# ---------------------------------------------------------------------------------------- discovery

def test_version_folders_are_separate_runs_and_side_by_side_formats_merge(tmp_path):
    for version in (0, 1):
        folder = tmp_path / "lightning_logs" / f"version_{version}"
        folder.mkdir(parents=True)
        (folder / "metrics.csv").write_text("epoch,step,train_loss\n0,0,2.0\n0,1,1.5\n")
        write_events(folder / "events.out.tfevents.1.x", [("train_loss", 2.0, 0, 1.0), ("train_loss", 1.5, 1, 2.0)])
        (folder / "hparams.yaml").write_text("num_classes: 3\n")
        stamp = folder / "1700000000.123"
        write_events(stamp / "events.out.tfevents.2.x", [("hp_metric", -1.0, 0, 3.0)])
    result = diagnose(str(tmp_path / "lightning_logs"))
    assert [r.path for r in result.runs] == ["version_0", "version_1"]
    for run in result.runs:
        assert sorted(s.format for s in run.sources) == ["lightning-csv", "tensorboard", "tensorboard"]
        assert run.num_classes == 3
        (mapping,) = [m for m in run.mapping if m.role == "train_loss"]
        assert mapping.points == 2  # the same metric from CSV and TB is taken once
        assert run.superseded == 0


def test_missing_path_and_empty_folder_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        diagnose(str(tmp_path / "nope"))
    with pytest.raises(InputError, match="no training logs"):
        diagnose(str(tmp_path))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not a training log"):
        diagnose(str(tmp_path / "notes.txt"))


def test_keras_csvlogger_append_after_resume_keeps_the_later_rows(tmp_path):
    rows = ["epoch,loss,val_loss"] + [f"{e},{1.0 - 0.1 * e},{1.1 - 0.1 * e}" for e in range(6)]
    rows += [f"{e},{0.5 - 0.01 * e},{0.6 - 0.01 * e}" for e in range(3, 8)]  # CSVLogger(append=True) after resume
    (tmp_path / "training.csv").write_text("\n".join(rows) + "\n")
    result = diagnose(str(tmp_path))
    (mapping,) = [m for m in result.runs[0].mapping if m.role == "train_loss"]
    assert mapping.points == 8
    assert result.runs[0].superseded == 6  # epochs 3, 4, 5 of loss and of val_loss
    (run,) = discover(str(tmp_path))
    loss = load_run(run).series["loss"]
    assert loss.steps.tolist() == list(range(8))
    assert loss.values.tolist() == pytest.approx([1.0, 0.9, 0.8, 0.47, 0.46, 0.45, 0.44, 0.43])


def test_csvlogger_training_log_is_found_other_log_files_are_not(tmp_path):
    (tmp_path / "training.log").write_text("epoch,accuracy,loss\r\n0,0.5,1.2\r\n1,0.6,1.0\r\n")
    (tmp_path / "stdout.log").write_text("epoch 1 done, loss 1.0\n")
    (run,) = discover(str(tmp_path))
    assert [(os.path.basename(r.path), r.format) for r in run.logs] == [("training.log", "keras-csv")]
    assert [m.series for m in diagnose(str(tmp_path / "training.log")).runs[0].mapping][:1] == ["loss"]


# ---------------------------------------------------------------------------------------- what is one run

def test_two_writers_into_one_folder_at_once_are_two_runs(tmp_path):
    """Overlapping wall times for one tag (two SummaryWriters on one logdir, e.g. every DDP rank) are not
    a restart: superseding would hide one writer's NaN."""
    write_events(tmp_path / "events.out.tfevents.1.rank0", [("loss", 1.0 / (i + 1), i, 100.0 + i) for i in range(10)])
    write_events(tmp_path / "events.out.tfevents.1.rank1",
                 [("loss", float("nan") if i == 4 else 1.0, i, 100.5 + i) for i in range(10)])
    result = diagnose(str(tmp_path))
    assert [r.path for r in result.runs] == ["events.out.tfevents.1.rank0", "events.out.tfevents.1.rank1"]
    assert [(f.run, f.id, f.evidence["step"]) for f in result.findings if f.id == "loss-not-finite"] == \
        [("events.out.tfevents.1.rank1", "loss-not-finite", 4)]
    assert all(r.superseded == 0 for r in result.runs)


def test_split_metrics_in_two_jsonl_files_stay_one_run(tmp_path):
    (tmp_path / "train.jsonl").write_text("".join(f'{{"step": {i}, "loss": {2 - 0.1 * i}}}\n' for i in range(10)))
    (tmp_path / "val.jsonl").write_text("".join(f'{{"step": {i}, "val_loss": {2 - 0.1 * i}}}\n' for i in range(0, 10, 3)))
    (run,) = diagnose(str(tmp_path)).runs
    assert run.path == str(tmp_path) and len(run.sources) == 2


def test_log_files_lists_every_file_read_without_parsing(tmp_path):
    from nnprobe.diagnosis import log_files

    version = tmp_path / "lightning_logs" / "version_0"
    version.mkdir(parents=True)
    (version / "metrics.csv").write_text("step,loss\n0,1.0\n")
    (version / "hparams.yaml").write_text("num_classes: 3\n")
    (version / "notes.txt").write_text("not read")
    write_events(version / "1700000000.1" / "events.out.tfevents.2.x", [("hp_metric", -1.0, 0, 1.0)])
    (tmp_path / "hf" / "checkpoint-5").mkdir(parents=True)
    (tmp_path / "hf" / "checkpoint-5" / "trainer_state.json").write_text('{"log_history": []}')
    (tmp_path / "hf" / "trainer_state.json").write_text('{"log_history": []}')
    (tmp_path / "hf" / "config.json").write_text('{"num_labels": 4}')
    (tmp_path / "hf" / "training.log").write_text("epoch,loss\n0,1.0\n")
    (tmp_path / "hf" / "stdout.log").write_text("hello\n")
    expected = {version / "metrics.csv", version / "hparams.yaml", version / "1700000000.1" / "events.out.tfevents.2.x",
                tmp_path / "hf" / "trainer_state.json", tmp_path / "hf" / "config.json", tmp_path / "hf" / "training.log"}
    assert sorted(log_files(str(tmp_path))) == sorted(map(str, expected))
    assert log_files(str(version / "metrics.csv")) == [str(version / "metrics.csv"), str(version / "hparams.yaml")]
    assert log_files(str(tmp_path / "missing")) == [] and log_files(str(version / "notes.txt")) == []


def test_diagnose_is_still_importable_beside_log_files():
    import nnprobe.diagnosis as package

    assert callable(package.diagnose) and callable(package.log_files)
    assert {"diagnose", "log_files"} <= set(package.__all__)


def test_log_files_imports_no_torch(tmp_path):
    import subprocess
    import sys

    (tmp_path / "metrics.csv").write_text("step,loss\n0,1.0\n")
    code = ("import sys; from nnprobe.diagnosis import log_files; print(log_files(sys.argv[1])); "
            "print('torch' in sys.modules, 'tensorboard' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines() == [repr([str(tmp_path / "metrics.csv")]), "False False"], proc.stderr
