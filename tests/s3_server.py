"""A real S3 protocol server for tests: moto's server mode on 127.0.0.1 at a free port (so pytest-xdist
workers never share one), fake credentials, and the endpoint given only through the environment
(AWS_ENDPOINT_URL, FSSPEC_S3_ENDPOINT_URL), as a user's CI would. Restores the environment after.
moto keeps its buckets in process-wide state that outlives a server: each server starts from a reset
(its /moto-api/reset), so a test never sees the objects an earlier test in the same worker left."""
from __future__ import annotations

import contextlib
import os
import socket
import urllib.request

import pytest

S3_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
                "FSSPEC_S3_ENDPOINT_URL")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def moto_s3(bucket: str = "bucket"):
    """Yields a boto3 client of a fresh local S3 server holding one empty `bucket`."""
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=30).close()
    saved = {k: os.environ.get(k) for k in S3_VARIABLES}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                      AWS_ENDPOINT_URL=url, FSSPEC_S3_ENDPOINT_URL=url)
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        client = boto3.client("s3", endpoint_url=url)
        client.create_bucket(Bucket=bucket)
        yield client
    finally:
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def upload(client, folder, prefix: str, bucket: str = "bucket") -> None:
    """Every file below `folder` to `bucket` under `prefix`, at its path relative to `folder`."""
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            client.upload_file(path, bucket, f"{prefix}/{os.path.relpath(path, folder)}")


@pytest.fixture
def fresh_filesystems():
    """s3fs caches filesystems (and their listings) per process: each test starts without them (import it
    into a test module, with `pytestmark = pytest.mark.usefixtures("fresh_filesystems")`)."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()
