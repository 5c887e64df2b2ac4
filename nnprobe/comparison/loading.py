"""Reading the two sides of a comparison: a result (a JSON file, a dict, or a result object), and the
per-sample file it records, found where the contract says and verified by its sha256."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from nnprobe.errors import DataError, InputError, UsageError

KINDS = ("eval", "robust", "diagnose")


@dataclass(frozen=True, eq=False)
class Side:
    """One result as a dict, where it came from, and its per-sample rows (None when it has none)."""

    role: str  # "baseline" | "candidate"
    body: dict[str, Any]
    origin: str
    folder: str | None  # the result file's folder: relative per-sample paths are resolved from it first
    header: dict[str, Any] | None = None
    rows: list[dict[str, Any]] | None = None

    @property
    def kind(self) -> str:
        return self.body["kind"]

    @property
    def fingerprint(self) -> str | None:
        data = self.body.get("data")
        return data.get("fingerprint") if isinstance(data, dict) else None


def load_side(source: Any, role: str) -> Side:
    """A result from a path to its JSON, a dict of that shape, or an object with `to_dict()`."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        body, origin, folder = _read_json(path, role), path, os.path.dirname(os.path.abspath(path))
    elif isinstance(source, dict):
        body, origin, folder = source, "<dict>", None
    elif callable(getattr(source, "to_dict", None)):
        body, origin, folder = source.to_dict(), f"<{type(source).__name__}>", None
        if getattr(getattr(source, "samples", None), "paths", None) is not None:
            from nnprobe.per_sample import header_of, rows_of

            # a result just computed (`--baseline`): its rows are in memory, written to a file or not
            return Side(role, body, origin, folder, header_of(source), list(rows_of(source)))
    else:
        raise UsageError(f"the {role} must be a result JSON path, a dict or a result object, "
                         f"not {type(source).__name__}.")
    from nnprobe import kinds

    return Side(role, kinds.validate(body, f"the {role} {origin}", KINDS), origin, folder)


def is_run(source: Any) -> bool:
    """Whether a comparison side is a training run (a folder, or a file diagnose's readers take for a log; in a
    bucket too, s3://...) rather than a result: `compare RUN_A RUN_B` is `diagnose RUN_B --baseline RUN_A`. A `.json` only JSON
    lines' catch-all would read is a log when its first line is a record naming no result kind (a result is
    written indented, or names its kind and schema_version)."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    from nnprobe import remote

    path = os.fspath(source)
    if remote.is_remote(path):
        if not remote.isfile(path):  # a folder, or not there: diagnose's remote layer lists it or says why not
            return True
    elif os.path.isdir(path):
        return True
    elif not os.path.isfile(path):  # missing, a FIFO or a device: the result reader's guard says which
        return False
    from nnprobe.diagnosis.readers.registry import format_of, sniff

    name = os.path.basename(path)
    fmt = format_of(name) or sniff(path, name, in_folder=False)
    if fmt is None or format_of(name) is not None:
        return fmt is not None
    return fmt != "jsonl" or _first_record(path) is not None


def _first_record(path: str) -> dict[str, Any] | None:
    """The first line of a file as a JSON lines record (an object naming no result kind), else None."""
    import json

    from nnprobe.diagnosis.readers.base import head_of

    head = head_of(path, 1 << 20) or b""  # through the readers' guard, local or remote
    line = next((line for line in head.split(b"\n") if line.strip()), b"")  # over 1 MiB: cut short, no record
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) and not {"kind", "schema_version"} & set(record) else None


def _read_json(path: str, role: str) -> Any:
    if os.path.isdir(path):
        raise UsageError(f"the {role} {path} is a folder: give two result JSON files, or two run folders "
                         "to compare their diagnoses.")
    from nnprobe.io import read_json

    return read_json(path, f"the {role}")


def per_sample_path(side: Side) -> str | None:
    """Where the side's per-sample file is: absolute as recorded; relative, first beside the result JSON,
    then from the current folder. None when the result records none; InputError when it is not found."""
    record = side.body.get("per_sample")
    if not record:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("path"), str) or not record.get("sha256"):
        raise InputError(f"the {side.role} {side.origin} has a malformed per_sample record.")
    recorded = record["path"]
    tried = [recorded]
    if not os.path.isabs(recorded) and side.folder is not None:
        tried.insert(0, os.path.join(side.folder, recorded))
    for path in tried:
        if os.path.isfile(path):
            return path
    raise InputError(f"the per-sample file {recorded} of the {side.role} {side.origin} is not found "
                     f"(looked at {' and '.join(tried)}).")


def with_rows(side: Side) -> Side:
    """The side with its per-sample rows read, after the file's sha256 matched the one recorded."""
    from nnprobe.per_sample import file_sha256, read

    if side.rows is not None:
        return side
    path = per_sample_path(side)
    if path is None:
        return side
    record = side.body["per_sample"]
    if file_sha256(path, record.get("rows")) != record["sha256"]:
        raise DataError(f"the per-sample file {path} does not match the sha256 recorded in the {side.role} "
                        f"{side.origin} (it was changed or replaced after the run).")
    header, rows = read(path, record.get("rows"))
    from nnprobe.kinds.schema import check_rows

    check_rows(side.body, rows, f"the per-sample file {path} of the {side.role} {side.origin}")
    if header.get("kind") != side.kind:
        raise DataError(f"the per-sample file {path} holds {header.get('kind')} rows, but the {side.role} "
                        f"is a {side.kind} result.")
    if side.fingerprint and header.get("data_fingerprint") not in (None, side.fingerprint):
        raise DataError(f"the per-sample file {path} was written for other data than the {side.role} "
                        f"{side.origin} (data fingerprints differ).")
    return Side(side.role, side.body, side.origin, side.folder, header, rows)


def data_difference(base: Side, cand: Side) -> str | None:
    """The first difference between the two sides' data (None when none is seen): the fingerprints, then
    the per-sample rows' (i, path, label)."""
    if base.fingerprint and cand.fingerprint and base.fingerprint != cand.fingerprint:
        row = _first_row_difference(base, cand)
        detail = f": {row}" if row else f" ({base.fingerprint[:12]}… vs {cand.fingerprint[:12]}…)"
        return f"the data sets differ{detail}"
    row = _first_row_difference(base, cand)
    return f"the per-sample files differ: {row}" if row else None


def _first_row_difference(base: Side, cand: Side) -> str | None:
    if base.rows is None or cand.rows is None:
        return None
    for left, right in zip(base.rows, cand.rows):
        a, b = _key(left), _key(right)
        if a != b:
            return (f"row {a[0]} is {a[1]} (label {a[2]}) in the baseline but row {b[0]} is {b[1]} "
                    f"(label {b[2]}) in the candidate")
    if len(base.rows) != len(cand.rows):
        return f"the baseline has {len(base.rows)} images, the candidate {len(cand.rows)}"
    return None


def _key(row: dict[str, Any]) -> tuple[Any, Any, Any]:
    return row.get("i"), row.get("path"), row.get("label")
