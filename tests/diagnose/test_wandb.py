"""W&B run folders: the run-<id>.wandb transaction log, written by real wandb (samples) and by hand here.

The hand-written logs are framed and protobuf-encoded by tracking_helpers (LevelDB log blocks as W&B
writes them: `:W&B` header, 32 KiB blocks, crc32 over type + data), independently of the reader's decoder;
the sample runs' expectations come from samples/make_tracking_runs.py (INJECTED.json).
"""
from __future__ import annotations

import json
import math
import os
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnprobe.diagnosis import diagnose
from nnprobe.diagnosis.readers import discover, read_log
from nnprobe.diagnosis.readers import wandb as reader
from nnprobe.diagnosis.readers.base import LogFile
from nnprobe.errors import InputError

from diagnose_helpers import SAMPLES
from tracking_helpers import BLOCK, config, frame, history

RUNS = ("healthy", "nan-loss", "chance")


def write(tmp_path, data: bytes, name: str = "run-abc.wandb"):
    folder = tmp_path / "wandb" / "offline-run-20260101_000000-abc"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(bytes(data))
    return folder / name


def same(a, b) -> bool:
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------------------- samples

def injected(name: str) -> dict:
    return json.loads((SAMPLES / f"wandb-{name}" / "INJECTED.json").read_text())


@pytest.mark.parametrize("name", RUNS)
def test_sample_gives_its_injected_verdict(name):
    record = injected(name)
    (run,) = diagnose(str(SAMPLES / f"wandb-{name}")).runs
    assert run.num_classes == 10 and run.num_classes_source == "from the W&B config (num_classes)"
    errors = sorted((f.id, f.evidence.get("series")) for f in run.findings if f.severity == "error")
    if name == "healthy":
        assert [f for f in run.findings if f.severity in ("error", "warning")] == []
    elif name == "chance":
        assert ("chance-accuracy", "val_acc") in errors
    else:
        steps = {f.evidence.get("series"): f.evidence.get("step") for f in run.findings if f.id == "loss-not-finite"}
        assert steps == {"loss": record["first_nonfinite_train_step"], "val_loss": record["first_nonfinite_val_step"]}
        (ref,) = discover(str(SAMPLES / f"wandb-{name}"))[0].logs
        loss = read_log(ref).series["loss"]
        assert sum(not math.isfinite(v) for v in loss.values) == record["nonfinite_train_points"]


@pytest.mark.parametrize("name", RUNS)
def test_fallback_decoder_reads_the_samples_exactly_as_the_default(name, monkeypatch):
    (ref,) = discover(str(SAMPLES / f"wandb-{name}"))[0].logs
    default = read_log(ref)
    monkeypatch.setattr(reader, "_decoder", lambda: reader.decode_wire)
    fallback = read_log(ref)
    assert sorted(default.series) == sorted(fallback.series) and default.records == fallback.records > 0
    for key, raw in default.series.items():
        other = fallback.series[key]
        assert raw.steps == other.steps and same(raw.values, other.values) and raw.walls == other.walls
    assert default.meta == fallback.meta


def test_wire_decoder_agrees_with_wandbs_protobuf_on_every_sample_record():
    pb2 = pytest.importorskip("wandb.proto.wandb_internal_pb2")  # the optional path: only with wandb installed
    decode = reader._decoder()
    count = 0
    for name in RUNS:
        (ref,) = discover(str(SAMPLES / f"wandb-{name}"))[0].logs
        with open(ref.path, "rb") as handle:
            for _, body in reader.records(handle, LogFile(ref.path, "wandb")):
                pb2.Record.FromString(body)
                assert reader.decode_wire(body) == decode(body)
                count += 1
    assert count > 100


# ------------------------------------------------------------------------------------ hand-made logs

def test_values_steps_nested_keys_and_a_record_spanning_blocks(tmp_path):
    wide = {f"w{i:05d}": str(i) for i in range(6000)}  # ~70 KiB: FIRST, MIDDLE, LAST fragments
    bodies = [config({"num_classes": "5"}),
              history({"_step": "0", "_timestamp": "100.5", "loss": "NaN", ("train", "acc"): "0.25"}),
              history({"loss": 2.0, "acc": "Infinity", "n": -3}, step=1),
              history({"loss": "-Infinity", "_step": "2", "media": '{"_type": "image"}', "t": '"text"'}),
              history({**wide, "_step": "3"}),
              history({"loss": "1e400"}, step=4)]
    path = write(tmp_path, frame(bodies))
    log = reader.read(str(path))
    assert log.issues == [] and log.records == 5 and log.meta["num_classes"] == 5
    loss = log.series["loss"]
    assert loss.steps == [0, 1, 2, 4] and same(loss.values, [math.nan, 2.0, -math.inf, math.inf])
    assert same(loss.walls, [100.5, math.nan, math.nan, math.nan])
    assert log.series["train/acc"].values == [0.25] and log.series["acc"].values == [math.inf]
    assert log.series["n"].values == [-3.0]
    assert "media" not in log.series and "t" not in log.series and "_step" not in log.series
    assert log.series["w05999"].steps == [3] and log.series["w05999"].values == [5999.0]
    assert os.path.getsize(path) > 2 * BLOCK


def test_bad_crc_skips_the_rest_of_its_block_only(tmp_path):
    filler = [history({"loss": "1.0", "pad": "x" * 900}, step=s) for s in range(40)]  # past one block
    data = frame(filler + [history({"loss": "0.5"}, step=40)])
    data[7 + 7 + 10] ^= 0xFF  # a byte inside the first record
    log = reader.read(str(write(tmp_path, data)))
    (issue,) = log.issues
    assert (issue.kind, issue.offset) == ("corrupt", 7) and "CRC" in issue.detail
    steps = log.series["loss"].steps
    assert steps[0] > 0 and steps[-1] == 40 and len(steps) < 41  # the first block's records are lost


def test_cut_last_record_is_truncated_and_the_rest_is_read(tmp_path):
    data = frame([history({"loss": "1.0"}, step=0), history({"loss": "NaN"}, step=1)])
    path = write(tmp_path, data[:-3])
    log = reader.read(str(path))
    assert [i.kind for i in log.issues] == ["truncated"] and log.series["loss"].values == [1.0]
    (run,) = diagnose(str(path.parent)).runs
    assert "log-truncated" in {f.id for f in run.findings}


def test_undecodable_record_is_corrupt_and_skipped(tmp_path):
    data = frame([b"\x0a\xff\xff\xff", history({"loss": "1.0"}, step=0)])
    log = reader.read(str(write(tmp_path, data)))
    assert [(i.kind, i.offset) for i in log.issues] == [("corrupt", 7)] and log.series["loss"].values == [1.0]


@pytest.mark.parametrize("content, fragment", [
    (b"", "is not a W&B transaction log (no :W&B header)"),
    (random.Random(100).randbytes(100), "is not a W&B transaction log (no :W&B header)"),  # seeded: same ids in every xdist worker
    (b":W&B" + struct.pack("<HB", 0xBEE1, 9), "of a version this reader does not know"),
])
def test_not_a_wandb_log_is_one_sentence_exit_2(tmp_path, content, fragment):
    write(tmp_path, content)
    with pytest.raises(InputError) as info:
        diagnose(str(tmp_path))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_config_yaml_gives_k_when_the_log_has_no_config(tmp_path):
    path = write(tmp_path, frame([history({"loss": "1.0", "val_acc": "0.5"}, step=0)]))
    (path.parent / "files").mkdir()
    (path.parent / "files" / "config.yaml").write_text("_wandb:\n  value: {}\nnum_classes:\n  desc: null\n"
                                                       "  value: 12\n")
    assert reader.read(str(path)).meta["num_classes"] == 12


def test_latest_run_link_and_wandb_side_files_give_one_run(tmp_path):
    path = write(tmp_path, frame([history({"loss": "1.0"}, step=0), history({"loss": "0.5"}, step=1)]))
    os.symlink(path.parent.name, tmp_path / "wandb" / "latest-run")
    (tmp_path / "wandb" / "debug.log").write_text("2026-01-01 INFO started\n")
    (path.parent / "files").mkdir()
    (path.parent / "files" / "wandb-summary.json").write_text('{"loss": 0.5}')
    runs = discover(str(tmp_path / "wandb"))
    assert [[os.path.basename(ref.path) for ref in run.logs] for run in runs] == [["run-abc.wandb"]]
    assert runs[0].root == str(path.parent)  # the real folder, not the latest-run link to it


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 4000), flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(1, 255)), max_size=6),
       junk=st.binary(max_size=300))
def test_fuzzed_logs_give_a_diagnosis_or_one_sentence(tmp_path_factory, cut, flips, junk):
    data = frame([config({"num_classes": "[[[" * 50}), *(history({"loss": "1.5", "x": junk.hex()}, step=s)
                                                         for s in range(20))])
    for at, mask in flips:
        if at < len(data):
            data[at] ^= mask
    folder = tmp_path_factory.mktemp("fuzz")
    write(folder, bytes(data[:len(data) - cut]) + junk)
    try:
        result = diagnose(str(folder))
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    result.to_dict()
