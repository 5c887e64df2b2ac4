"""Runs in a bucket: sample runs uploaded to a real S3 protocol server (moto's server mode on 127.0.0.1, a
free port) and diagnosed as s3:// URLs through fsspec/s3fs, with fake credentials and the endpoint taken
from the environment only (AWS_ENDPOINT_URL). The findings must equal the local ones; reads must be
streamed (no range request larger than the reader's 16 MiB chunk plus the read-ahead); failures are one
sentence and exit 2."""
from __future__ import annotations

import os

import pytest

from nnprobe.cli import main
from nnprobe.diagnosis import diagnose, log_files
from nnprobe import remote
from nnprobe.errors import InputError

from diagnose_helpers import SAMPLES, frame, scalar_event
from s3_server import fresh_filesystems, moto_s3, upload  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("fresh_filesystems")

UPLOADED = ("nan-loss", "healthy", "mlflow-nan-loss", "wandb-nan-loss", "mlflow-db")


@pytest.fixture(scope="module")
def endpoint():
    with moto_s3() as client:
        for name in UPLOADED:
            upload(client, SAMPLES / name, f"runs/{name}")
        yield client


def verdict(result) -> list[tuple]:
    return [(run_index, f.id, f.severity, f.message) for run_index, run in enumerate(result.runs)
            for f in run.findings]


@pytest.mark.parametrize("name", ["nan-loss", "healthy", "mlflow-nan-loss", "wandb-nan-loss"])
def test_bucket_run_has_the_same_findings_as_local(endpoint, name):
    local = diagnose(str(SAMPLES / name))
    bucket = diagnose(f"s3://bucket/runs/{name}/")
    assert verdict(bucket) == verdict(local)
    assert [(s.format, s.points, s.records) for r in bucket.runs for s in r.sources] == \
        [(s.format, s.points, s.records) for r in local.runs for s in r.sources]
    # runs spelled as locally: the folder as given when it is the run, else each run's path below it
    given = {str(SAMPLES / name): f"s3://bucket/runs/{name}/"}
    assert [run.path for run in bucket.runs] == [given.get(run.path, run.path) for run in local.runs]


def test_one_remote_log_file_and_the_parent_of_runs(endpoint):
    local = diagnose(str(SAMPLES / "nan-loss"))
    (name,) = [n for n in os.listdir(SAMPLES / "nan-loss") if n.startswith("events")]
    one = diagnose(f"s3://bucket/runs/nan-loss/{name}")
    assert [(f.id, f.message) for f in one.findings] == [(f.id, f.message) for f in local.findings]
    listed = log_files("s3://bucket/runs/nan-loss")
    assert listed == [f"s3://bucket/runs/nan-loss/{name}"]


def test_event_file_is_streamed_in_ranges_not_downloaded(endpoint, monkeypatch):
    from s3fs.core import S3File
    from tensorboard.compat.proto.event_pb2 import Event

    body = frame(Event(wall_time=1.0, file_version="x" * (40 << 20)).SerializeToString())
    body += b"".join(frame(scalar_event("loss", v, s, 2.0 + s)) for s, v in enumerate([1.0, float("nan"), 0.5]))
    endpoint.put_object(Bucket="bucket", Key="big/events.out.tfevents.1.big", Body=body)
    fetched: list[int] = []
    original = S3File._fetch_range

    def spy(self, start, end):
        fetched.append(end - start)
        return original(self, start, end)

    monkeypatch.setattr(S3File, "_fetch_range", spy)
    result = diagnose("s3://bucket/big/")
    assert [f.evidence.get("step") for f in result.findings if f.id == "loss-not-finite"] == [1]
    assert max(fetched) <= (16 << 20) + remote.BLOCK and len(fetched) >= 3  # the reader's chunk + read-ahead
    assert sum(fetched) <= len(body) + remote.BLOCK  # each byte fetched about once


def test_missing_bucket_and_missing_folder_are_one_sentence_exit_2(endpoint, capsys):
    for url, sentence in (("s3://no-such-bucket/runs/", "s3://no-such-bucket/runs/ does not exist"),
                          ("s3://bucket/runs/absent/", "s3://bucket/runs/absent/ does not exist")):
        with pytest.raises(SystemExit) as info:
            main(["diagnose", url])
        err = capsys.readouterr().err.strip()
        assert info.value.code == 2 and err.startswith("Error: " + sentence) and "\n" not in err


def test_no_credentials_is_one_sentence_exit_2(endpoint, monkeypatch, capsys, tmp_path):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(SystemExit) as info:
        main(["diagnose", "s3://bucket/runs/nan-loss/"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and "\n" not in err
    assert err.startswith("Error: cannot list s3://bucket/runs/nan-loss/: ") and "credentials" in err.lower()


def test_remote_mlflow_db_is_refused_with_a_reason(endpoint):
    with pytest.raises(InputError, match="is an SQLite database in a remote store: copy it locally first"):
        diagnose("s3://bucket/runs/mlflow-db/mlflow.db")


@pytest.mark.parametrize("url, package", [("gs://bucket/run/", "gcsfs"), ("az://container/run/", "adlfs")])
def test_a_backend_that_is_not_installed_is_one_sentence(url, package, monkeypatch):
    import importlib.util

    if importlib.util.find_spec(package) is not None:  # make it absent for this test
        monkeypatch.setitem(__import__("sys").modules, package, None)
    with pytest.raises(InputError) as info:
        diagnose(url)
    assert str(info.value) == (f"reading {url.split(':')[0]}:// URLs needs the {package} package: pip install "
                               f"{package} (or 'nnprobe[remote]').")


def test_without_fsspec_the_sentence_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "fsspec.core", None)
    with pytest.raises(InputError, match=r"reading s3://b/r/ needs fsspec and s3fs: pip install 'nnprobe\[remote\]'"):
        diagnose("s3://b/r/")


def test_local_paths_are_never_remote():
    assert remote.is_remote("s3://b/x") and remote.is_remote("HF://datasets/x") and remote.is_remote("memory://x")
    assert not remote.is_remote("runs/s3:/x") and not remote.is_remote("C:\\runs") and not remote.is_remote("file://x")
    assert not remote.is_remote(b"s3://b/x")  # not a string
