"""Where `nnprobe merge` finds its parts: file paths, a glob (`'parts/part-*.json'`, quoted so the shell
leaves it alone, or more files than a command line holds), or a bucket URL with or without a glob
(`s3://bucket/run/part-*.json`, `gs://...`) read through `nnprobe.remote`, the fsspec layer `diagnose` uses too (the `remote`
extra; credentials from the backend's usual environment). A bucket's parts are fetched concurrently in one
batch (fsspec `cat`), each checked against the size cap first. Every failure is one sentence.
"""
from __future__ import annotations

import glob
import os
from collections.abc import Iterable

from nnprobe.errors import DataError, InputError
from nnprobe.io import MAX_RESULT_BYTES
_GLOB = ("*", "?", "[")


def _is_glob(text: str) -> bool:
    return any(c in text for c in _GLOB)


def _local(spec: str) -> list[str]:
    if os.path.exists(spec) or not _is_glob(spec):
        return [spec]
    found = sorted(glob.glob(spec))
    if not found:
        raise InputError(f"No file matches {spec}.")
    return found


def _remote(spec: str) -> list[tuple[str, int]]:
    """(URL, size) of each object the URL names: one object, every object a glob matches, or every .json
    object directly in a folder."""
    from nnprobe.remote import filesystem, why_unreachable

    fs, inner = filesystem(spec)
    try:
        fs.invalidate_cache()  # list the bucket as it is now (a retried slice may have replaced its part)
        if _is_glob(inner):
            found = fs.glob(inner, detail=True)
        elif fs.isdir(inner):
            found = {i["name"]: i for i in fs.ls(inner, detail=True) if i["name"].endswith(".json")}
        else:
            found = {inner: fs.info(inner)}
    except FileNotFoundError:
        raise InputError(f"{spec} does not exist (no such bucket, folder or object).") from None
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - no bucket, no credentials, endpoint down: one sentence
        raise InputError(f"cannot list {spec}: {why_unreachable(exc)}.") from None
    files = sorted((name, int(info.get("size") or 0)) for name, info in found.items() if info.get("type") == "file")
    if not files:
        raise InputError(f"No object matches {spec}.")
    return [(fs.unstrip_protocol(name), size) for name, size in files]


def _fetch_remote(listed: list[tuple[str, int]]) -> list[tuple[str, bytes]]:
    if not listed:
        return []
    from nnprobe.remote import filesystem, why_unreachable

    for url, size in listed:
        if size > MAX_RESULT_BYTES:
            raise DataError(f"{url} is over {MAX_RESULT_BYTES >> 20} MiB: not an nnprobe result.")
    fs, _ = filesystem(listed[0][0])
    inner = {fs._strip_protocol(url): url for url, _ in listed}
    try:
        got = fs.cat(list(inner), on_error="raise")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot read {listed[0][0]} and the other parts: {why_unreachable(exc)}.") from None
    if not isinstance(got, dict):
        got = {next(iter(inner)): got}
    return [(inner[name], got[name]) for name in inner]


def names(specs: Iterable[str]) -> list[str]:
    """The specs with each local glob expanded (sorted; one sentence when it matches nothing); paths and
    bucket URLs as given (a URL's glob is expanded when it is fetched)."""
    from nnprobe.remote import is_remote

    return [name for spec in specs for name in ([spec] if is_remote(spec) else _local(spec))]


def fetch(specs: Iterable[str]) -> list[tuple[str, bytes | None]]:
    """(name, bytes) of every bucket object and (path, None) of every local file the paths, globs and URLs
    name (local files are read by the one input guard, io.read_input), in the order given, a glob's
    matches sorted. A file named twice comes twice: `merge` refuses it as an overlap, as two copies."""
    from nnprobe.remote import is_remote

    out: list[tuple[str, bytes | None]] = []
    for spec in specs:
        out += _fetch_remote(_remote(spec)) if is_remote(spec) else [(p, None) for p in _local(spec)]
    return out
