"""Fuzzed inputs: whatever the bytes, diagnose returns a Diagnosis or raises InputError, nothing else."""
from __future__ import annotations

import math
import struct

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnprobe.diagnosis import diagnose
from nnprobe.diagnosis.results import Diagnosis
from nnprobe.errors import InputError
from nnprobe.report import render

from diagnose_helpers import frame, wire_scalar_event

FUZZ = settings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def judged(path) -> None:
    try:
        result = diagnose(str(path))
    except InputError as exc:
        assert str(exc)
        return
    assert isinstance(result, Diagnosis)
    result.to_dict()
    render(result, "junit")


cells = st.one_of(st.sampled_from(["", "nan", "NaN", "inf", "-inf", "NA", "1e400", "x", "0.5", '"', "1,2"]),
                  st.floats(allow_nan=True).map(repr), st.text(max_size=6))


@FUZZ
@given(header=st.lists(st.sampled_from(["epoch", "step", "loss", "val_loss", "val_acc", "lr", "", "a"]),
                       min_size=0, max_size=6),
       rows=st.lists(st.lists(cells, max_size=7), max_size=12), tail=st.binary(max_size=8))
def test_fuzzed_csv(tmp_path_factory, header, rows, tail):
    folder = tmp_path_factory.mktemp("csv")
    text = "\n".join([",".join(header)] + [",".join(r) for r in rows])
    (folder / "metrics.csv").write_bytes(text.encode() + tail)
    judged(folder)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.integers(), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(
        ["loss", "step", "epoch", "eval_loss", "grad_norm", "log_history", "max_steps"]), inner, max_size=5)),
    max_leaves=20)


@FUZZ
@given(state=json_values, cut=st.integers(min_value=0, max_value=400), garbage=st.binary(max_size=16))
def test_fuzzed_trainer_state_and_jsonl(tmp_path_factory, state, cut, garbage):
    import json

    folder = tmp_path_factory.mktemp("json")
    text = json.dumps(state)
    (folder / "trainer_state.json").write_bytes(text[: cut or None].encode() + garbage)
    (folder / "log.jsonl").write_bytes((text + "\n" + text[:cut]).encode() + garbage)
    judged(folder)


@FUZZ
@given(points=st.lists(st.tuples(st.sampled_from(["loss", "val_loss", "val_acc", "lr"]),
                                 st.floats(width=32, allow_nan=True), st.integers(0, 2**40),
                                 st.floats(0, 2e9)), max_size=30),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=4),
       cut=st.integers(0, 10_000), junk=st.binary(max_size=40))
def test_fuzzed_event_file(tmp_path_factory, points, flips, cut, junk):
    folder = tmp_path_factory.mktemp("tb")
    data = bytearray(b"".join(frame(wire_scalar_event(*p)) for p in points) + junk)
    for offset, mask in flips:
        if data:
            data[offset % len(data)] ^= mask
    if cut and data:
        data = data[: cut % len(data)]
    (folder / "events.out.tfevents.1.fuzz").write_bytes(bytes(data))
    judged(folder)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_random_bytes_as_any_format(tmp_path_factory, raw):
    folder = tmp_path_factory.mktemp("raw")
    for name in ("events.out.tfevents.1.x", "metrics.csv", "trainer_state.json", "run.jsonl"):
        (folder / name).write_bytes(raw)
    judged(folder)


def test_huge_length_field_is_truncation_not_a_crash(tmp_path):
    header = struct.pack("<Q", 2**63)
    from nnprobe.diagnosis.readers.tensorboard import masked_crc32c

    (tmp_path / "events.out.tfevents.1.x").write_bytes(header + struct.pack("<I", masked_crc32c(header)) + b"abc")
    with pytest.raises(InputError, match=r"events.out.tfevents.1.x: last record is cut"):  # alone: nothing read
        diagnose(str(tmp_path))
    (tmp_path / "metrics.csv").write_text("step,loss\n0,1.0\n1,0.9\n")
    result = diagnose(str(tmp_path))  # beside a readable log: a cut (live) file is a warning, not a failure
    assert [f.id for f in result.findings] == ["log-truncated"] and not result.failed


# ------------------------------------------------------------------------------- round-trip properties
# Whatever the values, N points written are exactly N points read, per format, and the first non-finite
# point written is the one loss-not-finite names. Event files are also read with tiny chunks, so records
# straddle every chunk boundary.

ROUND_TRIP_FORMATS = ("lightning-csv", "jsonl", "tensorboard", "hf-trainer-state")
CSV_SPELLINGS = {"nan": ("nan", "NaN"), "inf": ("inf", "Infinity", "+inf"), "-inf": ("-inf", "-Infinity")}


def write_loss_log(folder, fmt: str, steps: list[int], values: list[float], spelling: int = 0) -> None:
    import json
    import math

    from diagnose_helpers import write_events

    if fmt == "lightning-csv":
        def cell(v: float) -> str:
            if math.isfinite(v):
                return repr(v)
            options = CSV_SPELLINGS["nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")]
            return options[spelling % len(options)]
        (folder / "metrics.csv").write_text("step,loss\n" + "".join(f"{s},{cell(v)}\n" for s, v in zip(steps, values)))
    elif fmt == "jsonl":  # json.dumps writes NaN, Infinity, -Infinity
        (folder / "log.jsonl").write_text("".join(json.dumps({"step": s, "loss": v}) + "\n" for s, v in zip(steps, values)))
    elif fmt == "tensorboard":
        write_events(folder / "events.out.tfevents.1.rt", [("loss", v, s, 1000.0 + i) for i, (s, v) in
                                                           enumerate(zip(steps, values))])
    else:
        history = [{"loss": v, "step": s} for s, v in zip(steps, values)]
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": steps[-1], "log_history": history}))


def read_with_chunk(folder, chunk: int):
    from nnprobe.diagnosis.readers import tensorboard

    saved = tensorboard.CHUNK
    tensorboard.CHUNK = chunk
    try:
        return diagnose(str(folder))
    finally:
        tensorboard.CHUNK = saved


finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)  # exact in every format


@FUZZ
@given(fmt=st.sampled_from(ROUND_TRIP_FORMATS), values=st.lists(finite32, min_size=1, max_size=40),
       stride=st.integers(1, 10_000), chunk=st.sampled_from([7, 64, 1 << 24]))
def test_n_finite_points_written_are_n_read(tmp_path_factory, fmt, values, stride, chunk):
    folder = tmp_path_factory.mktemp("rt")
    steps = [i * stride for i in range(len(values))]
    write_loss_log(folder, fmt, steps, values)
    (run,) = read_with_chunk(folder, chunk).runs
    (source,) = run.sources
    assert (source.format, source.points, source.issues) == (fmt, len(values), ())
    (mapping,) = [m for m in run.mapping if m.role == "train_loss"]
    assert (mapping.series, mapping.points) == ("loss", len(values))
    assert not [f for f in run.findings if f.id in ("loss-not-finite", "metric-not-finite", "log-unreadable",
                                                    "log-corrupt", "log-truncated")]


@FUZZ
@given(fmt=st.sampled_from(ROUND_TRIP_FORMATS), values=st.lists(finite32, min_size=1, max_size=40),
       bad=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from([math.nan, math.inf, -math.inf])),
                    min_size=1, max_size=6),
       stride=st.integers(1, 1000), spelling=st.integers(0, 2), chunk=st.sampled_from([7, 1 << 24]))
def test_k_non_finite_points_are_named_from_the_first(tmp_path_factory, fmt, values, bad, stride, spelling, chunk):
    folder = tmp_path_factory.mktemp("nan")
    values = list(values)
    for position, value in bad:
        values[position % len(values)] = value
    steps = [i * stride for i in range(len(values))]
    write_loss_log(folder, fmt, steps, values, spelling)
    (run,) = read_with_chunk(folder, chunk).runs
    first = next(i for i, v in enumerate(values) if not math.isfinite(v))
    (finding,) = [f for f in run.findings if f.id == "loss-not-finite"]
    assert finding.severity == "error"
    assert finding.evidence["step"] == steps[first]
    assert finding.evidence["count"] == sum(not math.isfinite(v) for v in values)
    assert finding.evidence["points"] == len(values)
