"""`compare RUN_A RUN_B` on runs in a bucket: corpus runs uploaded to a real S3 protocol server (moto's server
mode on 127.0.0.1, tests/s3_server.py) compare exactly as the same runs given as local folders or log files
(the JSON, the human report and the exit code), through the one guard diagnose's runs go through; hostile
inputs (a FIFO, a missing key, an object over its reader's cap, a result JSON in the bucket) are one sentence
and exit 2."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from s3_server import fresh_filesystems, moto_s3, upload  # noqa: F401 (a fixture)

CORPUS = Path(__file__).resolve().parents[2] / "samples" / "corpus"
BUCKET = "s3://bucket/corpus"
PAIRS = [  # (baseline, candidate): folders of four loggers, and log files
    ("jsonl-healthy-adam", "jsonl-overfit"),  # a new error, the loss above the baseline's
    ("tb-healthy-sgd", "tb-nan"),  # TensorBoard event files, read in byte ranges
    ("lightning-csv-healthy-adam/metrics.csv", "lightning-csv-diverge/metrics.csv"),  # one log file each
    ("hf-healthy-adam/trainer_state.json", "hf-overfit"),  # a .json log (sniffed through the remote layer)
    ("mlflow-healthy-sgd", "mlflow-healthy-adam"),  # MLflow's file store: two healthy runs, exit 0
]
UPLOADED = sorted({side.split("/")[0] for pair in PAIRS for side in pair})
pytestmark = pytest.mark.usefixtures("fresh_filesystems")


@pytest.fixture(scope="module")
def bucket():
    with moto_s3() as client:
        for name in UPLOADED:
            upload(client, CORPUS / name, f"corpus/{name}")
        yield client


def as_local(text: str) -> str:
    """The bucket's URLs written as the local corpus paths (the only thing that may differ)."""
    return text.replace(BUCKET, str(CORPUS))


def one_sentence(run) -> str:
    err = run.stderr.strip()
    assert run.returncode == 2 and run.stdout == "" and "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("base,cand", PAIRS, ids=[f"{b}-vs-{c}" for b, c in PAIRS])
def test_compare_of_two_bucket_runs_equals_compare_of_the_local_runs(bucket, invoke, base, cand):
    local = invoke("compare", str(CORPUS / base), str(CORPUS / cand), "--format", "json")
    remote = invoke("compare", f"{BUCKET}/{base}", f"{BUCKET}/{cand}", "--format", "json")
    assert remote.returncode == local.returncode, remote.stderr
    assert as_local(remote.stderr) == local.stderr
    one, other = json.loads(as_local(remote.stdout)), json.loads(local.stdout)
    one.pop("seconds"), other.pop("seconds")
    assert one == other
    assert one["baseline"]["kind"] == "compare" and one["baseline"]["baseline"] == str(CORPUS / base)
    assert json.loads(remote.stdout)["baseline"]["candidate"] == f"{BUCKET}/{cand}"  # read from the bucket


def test_the_human_report_and_diagnose_baseline_from_the_bucket(bucket, invoke):
    base, cand = "jsonl-healthy-adam", "jsonl-overfit"
    local = invoke("compare", str(CORPUS / base), str(CORPUS / cand))
    remote = invoke("compare", f"{BUCKET}/{base}", f"{BUCKET}/{cand}")
    diagnosed = invoke("diagnose", f"{BUCKET}/{cand}", "--baseline", f"{BUCKET}/{base}")
    assert local.returncode == remote.returncode == diagnosed.returncode == 1
    assert remote.stdout == diagnosed.stdout and remote.stderr == diagnosed.stderr
    assert " ".join(as_local(remote.stdout).split()) == " ".join(local.stdout.split())  # rich wraps by width
    assert "the candidate's validation loss is above the baseline's from epoch" in " ".join(remote.stdout.split())


def test_a_local_run_against_a_bucket_run(bucket, invoke):
    base, cand = "tb-healthy-sgd", "tb-nan"
    local = invoke("compare", str(CORPUS / base), str(CORPUS / cand), "--format", "json")
    mixed = invoke("compare", str(CORPUS / base), f"{BUCKET}/{cand}", "--format", "json")
    one, other = json.loads(as_local(mixed.stdout)), json.loads(local.stdout)
    one.pop("seconds"), other.pop("seconds")
    assert (mixed.returncode, one) == (local.returncode, other)


def test_a_fifo_beside_a_bucket_run_is_one_sentence(bucket, invoke, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for args in ((str(fifo), f"{BUCKET}/tb-nan"), (f"{BUCKET}/tb-nan", str(fifo))):
        err = one_sentence(invoke("compare", *args))
        assert str(fifo) in err and "FIFO" in err


@pytest.mark.parametrize("missing", [f"{BUCKET}/absent/", f"{BUCKET}/absent/metrics.csv",
                                     "s3://no-such-bucket/corpus/tb-nan"])
def test_a_missing_key_or_bucket_is_one_sentence(bucket, invoke, missing):
    for args in ((missing, f"{BUCKET}/tb-nan"), (f"{BUCKET}/tb-nan", missing)):
        err = one_sentence(invoke("compare", *args))
        assert err.startswith(f"Error: {missing} does not exist"), err


def test_an_object_over_its_readers_cap_is_refused_without_downloading_it(bucket, invoke, monkeypatch):
    """A metrics.csv over the Lightning reader's cap (made 1 MiB here; 256 MiB really): refused by its size,
    never read (no byte range of it fetched), the rest of the comparison not attempted."""
    from s3fs.core import S3File

    from nnprobe.diagnosis.readers.base import SIZE_CAPS

    text = (CORPUS / "lightning-csv-diverge" / "metrics.csv").read_text()
    header, rows = text.split("\n", 1)
    body = (header + "\n" + rows * (1 + (2 << 20) // len(rows))).encode()
    bucket.put_object(Bucket="bucket", Key="huge/metrics.csv", Body=body)
    monkeypatch.setitem(SIZE_CAPS, "lightning-csv", 1 << 20)
    fetched: list[int] = []
    original = S3File._fetch_range

    def spy(self, start, end):
        if self.path.endswith("huge/metrics.csv"):
            fetched.append(end - start)
        return original(self, start, end)

    monkeypatch.setattr(S3File, "_fetch_range", spy)
    run = invoke("compare", f"{BUCKET}/lightning-csv-healthy-adam/metrics.csv", "s3://bucket/huge/metrics.csv")
    err = one_sentence(run)
    assert "s3://bucket/huge/metrics.csv" in err and f"{len(body):,} bytes, over the 1 MiB limit" in err
    assert sum(fetched) <= 4096 + (4 << 20) and sum(fetched) < len(body)  # the sniffer's head at most


def test_a_result_json_in_the_bucket_is_one_sentence(bucket, invoke, tmp_path):
    report = tmp_path / "tb-nan.json"
    assert invoke("diagnose", str(CORPUS / "tb-nan"), "--format", "json", "-o", str(report)).returncode == 1
    bucket.upload_file(str(report), "bucket", "results/tb-nan.json")
    err = one_sentence(invoke("compare", "s3://bucket/results/tb-nan.json", str(report)))
    assert "s3://bucket/results/tb-nan.json is a file in a remote store that no log reader takes" in err
    assert "copy it first" in err
