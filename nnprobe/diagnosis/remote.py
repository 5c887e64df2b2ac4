"""Runs in a bucket: `s3://`, `gs://`, `hf://`, `az://` folders read through fsspec, streamed.

fsspec and the backend (s3fs, gcsfs, huggingface_hub, adlfs: the `remote` extra) are imported only when
such a URL is given. Readers never see a difference: `base.open_regular` hands them a file object from
`open_remote`, which reads byte ranges as they are asked for (an event file is read 16 MiB at a time, never
downloaded whole; one range request holds at most that chunk plus a 4 MiB read-ahead), and
`discover_remote` groups the listed files into runs as `discover` does a local folder. Credentials and
endpoints come only from the backend's usual environment (AWS_* variables and ~/.aws, AWS_ENDPOINT_URL or
FSSPEC_S3_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS, HF_TOKEN, AZURE_*); nnprobe never takes a secret
on its command line. Every failure (no backend, no bucket, no credentials)
is one sentence: `InputError` while listing, `Unreadable` for one file.
"""
from __future__ import annotations

import os
import re

from nnprobe.errors import InputError

# URL scheme -> the pip package that gives fsspec that protocol (for the message when it is missing).
SCHEMES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "hf": "huggingface_hub",
           "az": "adlfs", "abfs": "adlfs", "abfss": "adlfs", "memory": "fsspec"}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
BLOCK = 4 << 20  # read-ahead window: a read(n) fetches n + BLOCK bytes at most, small reads share one fetch


def is_remote(path) -> bool:
    """Whether `path` is a URL of a remote store nnprobe reads (a local path never is)."""
    match = _URL.match(path) if isinstance(path, str) else None
    return bool(match and match.group(1).lower() in SCHEMES)


def _why(exc: BaseException) -> str:
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
        return url_to_fs(url)
    except ImportError:
        raise InputError(f"reading {scheme}:// URLs needs the {package} package: pip install {package} "
                         f"(or 'nnprobe[remote]').") from None
    except Exception as exc:  # noqa: BLE001 - any backend refusal becomes one sentence
        raise InputError(f"cannot open {url}: {_why(exc)}.") from None


class RemoteFile:
    """A read-only, streamed file object over an fsspec file: read(n) fetches byte ranges as needed.

    `size` is the object's length. `fileno()` is a shim for code that asks `os.fstat(f.fileno()).st_size`
    (the event reader): a sparse, empty in-memory file of that size, which holds no data; prefer
    `base`-independent `size`."""

    def __init__(self, handle, size: int):
        self._handle, self.size, self._fd = handle, size, None

    def read(self, n: int = -1) -> bytes:
        return self._handle.read(n)

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
    `cap` bytes; `base.Unreadable` saying why otherwise."""
    from nnprobe.diagnosis.readers.base import MIB, Unreadable

    try:
        fs, inner = filesystem(url)
    except InputError as exc:
        raise Unreadable(f"cannot be opened: {str(exc).rstrip('.')}") from None
    try:
        info = fs.info(inner)
    except FileNotFoundError:
        raise Unreadable("cannot be opened: no such object") from None
    except Exception as exc:  # noqa: BLE001
        raise Unreadable(f"cannot be opened: {_why(exc)}") from None
    if info.get("type") != "file":
        raise Unreadable(f"is {'a folder' if info.get('type') == 'directory' else 'not a file'}, "
                         f"not a regular file")
    size = int(info.get("size") or 0)
    if cap is not None and size > cap:
        raise Unreadable(f"is {size:,} bytes, over the {cap // MIB} MiB limit for such a file")
    try:
        handle = fs.open(inner, "rb", block_size=BLOCK, cache_type="readahead")
    except Exception as exc:  # noqa: BLE001
        raise Unreadable(f"cannot be opened: {_why(exc)}") from None
    return RemoteFile(handle, size)


def _listing(url: str) -> tuple[object, str, list[str], bool]:
    """(fs, the top folder's URL, every file below it as a full URL, whether `url` is itself a file)."""
    fs, inner = filesystem(url)
    try:
        if fs.isfile(inner):
            return fs, inner, [url], True
        found = sorted(fs.find(inner, withdirs=False))
        if not found and not fs.exists(inner):
            raise FileNotFoundError(inner)
    except FileNotFoundError:
        raise InputError(f"{url} does not exist (no such bucket or folder).") from None
    except Exception as exc:  # noqa: BLE001 - missing bucket, no credentials, endpoint down
        raise InputError(f"cannot list {url}: {_why(exc)}.") from None
    top = inner.rstrip("/")
    files = [fs.unstrip_protocol(path) for path in found
             if not any(part.startswith(".") for part in path[len(top):].split("/") if part)]
    return fs, fs.unstrip_protocol(top), files, False


def discover_remote(url: str) -> list:
    """The runs under a remote folder URL (or one remote log file), grouped as `readers.discover` groups a
    local folder: a folder is a run, logger sub-folders fold into it, checkpoint copies are dropped."""
    from nnprobe.diagnosis.readers import (_CHECKPOINT_DIR, LogRef, RunFiles, _drop_stale_checkpoints,
                                           _fold_logger_subruns, _run_root, format_of, looked_for, sniff)

    _, top, files, single = _listing(url)
    runs: dict[str, RunFiles] = {}
    for full in files:
        directory, name = full.rsplit("/", 1)
        fmt = format_of(name) or sniff(full, name, in_folder=not single)
        root, prefix = (directory, "") if single else _run_root(directory, top)
        if fmt is None:
            if name in ("hparams.yaml", "config.json") and directory == root or \
                    name == "config.json" and _CHECKPOINT_DIR.match(directory.rsplit("/", 1)[-1]):
                run = runs.setdefault(root, RunFiles(root))
                (run.hparams if name == "hparams.yaml" else run.hf_configs).append(full)
            continue
        runs.setdefault(root, RunFiles(root)).logs.append(LogRef(full, fmt, prefix))
    _fold_logger_subruns(runs)  # one run per logger, as for a local folder
    found = [run for _, run in sorted(runs.items()) if run.logs]
    if not found:
        what = "is not a training log nnprobe reads" if single else "holds no training logs"
        raise InputError(f"{url} {what} (looked for {looked_for()}).")
    for run in found:
        _drop_stale_checkpoints(run)
    return found


def isdir(path: str) -> bool:
    """os.path.isdir for a local path or a remote URL (False when it cannot be asked)."""
    if not is_remote(path):
        return os.path.isdir(path)
    try:
        fs, inner = filesystem(path)
        return bool(fs.isdir(inner))
    except Exception:  # noqa: BLE001
        return False


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
