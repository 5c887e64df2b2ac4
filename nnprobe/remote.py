"""Runs and result parts in a bucket: `s3://`, `gs://`, `hf://`, `az://` read through fsspec, streamed. One home
for every remote input: `diagnose` reads runs through it, `merge` reads its parts (`part_files`).

fsspec and the backend (s3fs, gcsfs, huggingface_hub, adlfs: the `remote` extra) are imported only when
such a URL is given. Diagnosis readers never see a difference: `readers.base.open_regular` hands them a file object from
`open_remote`, which reads byte ranges as they are asked for (an event file is read 16 MiB at a time, never
downloaded whole; one range request holds at most that chunk plus a 4 MiB read-ahead), and
`listing` lists a folder's files, which `readers.discover` groups into runs as it does a local folder (this
module imports nothing of the readers). Every request has connect and read timeouts (`timeouts`). Credentials and
endpoints come only from the backend's usual environment (AWS_* variables and ~/.aws, AWS_ENDPOINT_URL or
FSSPEC_S3_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS, HF_TOKEN, AZURE_*); nnprobe never takes a secret
on its command line. Every failure (no backend, no bucket, no credentials)
is one sentence: `InputError` while listing, `Unreadable` for one file.
"""
from __future__ import annotations

import os
import re

from contextlib import contextmanager

from nnprobe.errors import InputError

# URL scheme -> the pip package that gives fsspec that protocol (for the message when it is missing).
SCHEMES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "hf": "huggingface_hub",
           "az": "adlfs", "abfs": "adlfs", "abfss": "adlfs", "memory": "fsspec"}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
BLOCK = 4 << 20  # read-ahead window: a read(n) fetches n + BLOCK bytes at most, small reads share one fetch
MIB = 1 << 20
# Connect and read timeouts of one request, in seconds (`diagnose --timeout`): well under a minute, and a
# refused or silent endpoint is tried once, not retried (s3fs would retry 5 times, botocore 4 more).
TIMEOUT = 20.0
_timeout = [TIMEOUT]


class RemoteError(Exception):
    """One remote file cannot be read; the message completes the sentence "<url> ..." (the readers turn it
    into their own `Unreadable`)."""


@contextmanager
def timeouts(seconds: float | None):
    """Within the block, every request to a remote store gives up after `seconds` (connect and read)."""
    before = _timeout[0]
    _timeout[0] = TIMEOUT if seconds is None else float(seconds)
    try:
        yield
    finally:
        _timeout[0] = before


def _options(scheme: str) -> dict:
    """The backend's own spelling of connect/read timeouts without retries, where nnprobe knows it."""
    seconds = _timeout[0]
    if scheme in ("s3", "s3a"):
        return {"config_kwargs": {"connect_timeout": seconds, "read_timeout": seconds,
                                  "retries": {"total_max_attempts": 1}}}
    return {}


def is_remote(path) -> bool:
    """Whether `path` is a URL of a remote store nnprobe reads (a local path never is)."""
    match = _URL.match(path) if isinstance(path, str) else None
    return bool(match and match.group(1).lower() in SCHEMES)


def why_unreachable(exc: BaseException) -> str:
    """A backend exception in a few words (botocore's own messages are sentences already)."""
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError"):
        text += " (credentials come from the backend's usual environment, e.g. AWS_ACCESS_KEY_ID or ~/.aws)"
    return text.splitlines()[0][:300]


def filesystem(url: str):
    """(fsspec filesystem, path inside it) for `url`; InputError when fsspec or the backend is missing."""
    scheme = _URL.match(url).group(1).lower()
    package = SCHEMES.get(scheme, "fsspec")
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise InputError(f"reading {url} needs fsspec and {package}: pip install 'nnprobe[remote]'.") from None
    try:
        fs, inner = url_to_fs(url, **_options(scheme))
        if scheme in ("s3", "s3a"):
            fs.retries = 1  # s3fs' own retry loop, on top of botocore's
        return fs, inner
    except ImportError:
        raise InputError(f"reading {scheme}:// URLs needs the {package} package: pip install {package} "
                         f"(or 'nnprobe[remote]').") from None
    except Exception as exc:  # noqa: BLE001 - any backend refusal becomes one sentence
        raise InputError(f"cannot open {url}: {why_unreachable(exc)}.") from None


class RemoteFile:
    """A read-only, streamed file object over an fsspec file: read(n) fetches byte ranges as needed.

    `size` is the object's length. `fileno()` is a shim for code that asks `os.fstat(f.fileno()).st_size`
    (the event reader): a sparse, empty in-memory file of that size, which holds no data; prefer
    `base`-independent `size`."""

    def __init__(self, handle, size: int):
        self._handle, self.size, self._fd = handle, size, None

    def read(self, n: int = -1) -> bytes:
        try:
            return self._handle.read(n)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - a timeout or a dropped connection mid-file
            raise OSError(f"reading failed: {why_unreachable(exc)}") from None

    def seek(self, offset: int) -> int:
        return self._handle.seek(offset)

    def fileno(self) -> int:
        if self._fd is None:
            fd = os.memfd_create("nnprobe-remote-size") if hasattr(os, "memfd_create") else None
            if fd is None:
                import tempfile

                fd = os.dup(tempfile.TemporaryFile().fileno())
            os.ftruncate(fd, self.size)
            self._fd = fd
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_remote(url: str, cap: int | None = None) -> RemoteFile:
    """A streamed file object for the remote file `url`, checked to be a file and, with `cap`, at most
    `cap` bytes; `RemoteError` saying why otherwise."""
    try:
        fs, inner = filesystem(url)
    except InputError as exc:
        raise RemoteError(f"cannot be opened: {str(exc).rstrip('.')}") from None
    try:
        info = fs.info(inner)
    except FileNotFoundError:
        raise RemoteError("cannot be opened: no such object") from None
    except Exception as exc:  # noqa: BLE001
        raise RemoteError(f"cannot be opened: {why_unreachable(exc)}") from None
    if info.get("type") != "file":
        raise RemoteError(f"is {'a folder' if info.get('type') == 'directory' else 'not a file'}, "
                          f"not a regular file")
    size = int(info.get("size") or 0)
    if cap is not None and size > cap:
        raise RemoteError(f"is {size:,} bytes, over the {cap // MIB} MiB limit for such a file")
    try:
        handle = fs.open(inner, "rb", block_size=BLOCK, cache_type="readahead")
    except Exception as exc:  # noqa: BLE001
        raise RemoteError(f"cannot be opened: {why_unreachable(exc)}") from None
    return RemoteFile(handle, size)


def listing(url: str) -> tuple[str, list[str], bool]:
    """(the top folder's URL, every file below it as a full URL, whether `url` is itself a file); hidden
    files and folders are left out. `readers.discover` groups them into runs."""
    fs, inner = filesystem(url)
    try:
        if fs.isfile(inner):
            return inner, [url], True
        found = sorted(fs.find(inner, withdirs=False))
        if not found and not fs.exists(inner):
            raise FileNotFoundError(inner)
    except FileNotFoundError:
        raise InputError(f"{url} does not exist (no such bucket or folder).") from None
    except Exception as exc:  # noqa: BLE001 - missing bucket, no credentials, endpoint down, timeout
        raise InputError(f"cannot list {url}: {why_unreachable(exc)}.") from None
    top = inner.rstrip("/")
    files = [fs.unstrip_protocol(path) for path in found
             if not any(part.startswith(".") for part in path[len(top):].split("/") if part)]
    return fs.unstrip_protocol(top), files, False


def _is(path: str, what: str) -> bool:
    """os.path.isdir/isfile (`what`) for a local path or a remote URL (False when it cannot be asked)."""
    if not is_remote(path):
        return getattr(os.path, what)(path)
    try:
        fs, inner = filesystem(path)
        return bool(getattr(fs, what)(inner))
    except Exception:  # noqa: BLE001
        return False


def isdir(path: str) -> bool:
    return _is(path, "isdir")


def isfile(path: str) -> bool:
    return _is(path, "isfile")


def files_below(folder: str) -> list[str]:
    """Every file below `folder` (local path or remote URL), as paths/URLs, sorted; [] when none."""
    if not is_remote(folder):
        found = []
        for directory, subdirs, names in os.walk(folder):
            subdirs.sort()
            found += [os.path.join(directory, name) for name in sorted(names)]
        return found
    try:
        fs, inner = filesystem(folder)
        return [fs.unstrip_protocol(p) for p in sorted(fs.find(inner, withdirs=False))]
    except Exception:  # noqa: BLE001
        return []
