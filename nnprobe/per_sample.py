"""Per-sample results: what the model answered for each image, so that two runs can be compared image by
image (`nnprobe compare`), and the data set's fingerprint, so that they are known to be the same images.

The file is JSON Lines (gzip when the name ends in `.gz`): a header line, then one row per decoded image in
data order. It is streamed to a temporary file and renamed into place, so an interrupted run never leaves
one that looks complete, and its sha256 is computed while writing, for the result JSON to record.

    {"format": "nnprobe-per-sample", "version": 1, "kind": "eval", "data_fingerprint": "…", "rows": 4, …}
    {"i": 0, "path": "n02123045/cat.jpg", "label": 281, "top5": [281, 285, …], "loss": 0.41, …}

This module imports neither torch nor the report layer.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnprobe.errors import DataError
from nnprobe.io import atomic_writer, open_input

FORMAT = "nnprobe-per-sample"
VERSION = 1
MAX_LINE = 1 << 20  # a row is ~150 bytes; a longer line is not ours
ROW_BYTES = 16 << 10  # decompressed bytes allowed per row a result counts (paths can be long)


def relative_path(path: str, root: str | None) -> str:
    """An image's path relative to the data root, with `/` separators (the same on every OS and machine)."""
    if root is None:
        return path.replace(os.sep, "/")
    return os.path.relpath(path, root).replace(os.sep, "/")


def data_fingerprint(root: str, samples: Sequence[tuple[str, int]]) -> str:
    """sha256 over the sorted (relative path, label) pairs: equal fingerprints mean the same images with the
    same labels, wherever the data set lives."""
    digest = hashlib.sha256()
    for rel, label in sorted((relative_path(path, root), int(label)) for path, label in samples):
        digest.update(f"{rel}\t{label}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


@dataclass(frozen=True)
class PerSampleFile:
    """Where the per-sample rows were written, their content hash and count (recorded in the result JSON)."""

    path: str
    sha256: str
    rows: int


@dataclass(frozen=True, eq=False)
class EvalSamples:
    """eval's answer per decoded image, in data order (numpy arrays of equal length)."""

    positions: np.ndarray  # int64: index into LabelledImages.samples
    labels: np.ndarray  # int64: the label, in the model's class indices
    top: np.ndarray  # int64 [N, k]: top-k predicted class indices
    loss: np.ndarray  # float64: cross-entropy of the label (nats)
    confidence: np.ndarray  # float64: max softmax probability
    brier: np.ndarray  # float64: sum over classes of (p - onehot)^2
    paths: tuple[str | None, ...] | None = None  # each image's path relative to the data root, once known

    @property
    def predicted(self) -> np.ndarray:
        return self.top[:, 0] if len(self.top) else np.zeros(0, dtype=np.int64)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels

    @staticmethod
    def merged(parts: Sequence["EvalSamples"]) -> "EvalSamples":
        """Rank parts (disjoint positions) as one, in data order."""
        fields = [np.concatenate([getattr(p, name) for p in parts]) for name in _EVAL_FIELDS]
        order = np.argsort(fields[0], kind="stable")
        return EvalSamples(*(f[order] for f in fields))


_EVAL_FIELDS = ("positions", "labels", "top", "loss", "confidence", "brier")


@dataclass(frozen=True, eq=False)
class RobustSamples:
    """robust's verdict per attacked image: the first budget of the sweep that fooled it."""

    positions: np.ndarray  # int64
    labels: np.ndarray  # int64
    clean_correct: np.ndarray  # bool
    fell_at: np.ndarray  # int64: index into the sweep's eps of the first budget that fooled it; -1 never
    paths: tuple[str | None, ...] | None = None  # each image's path relative to the data root, once known
    min_norm_distance: np.ndarray | None = None  # float64 (--min-norm): smallest fooling distance; inf never, 0 wrong
    min_norm_improving: np.ndarray | None = None  # bool (--min-norm): still shrinking over the last steps

    @staticmethod
    def merged(parts: Sequence["RobustSamples"]) -> "RobustSamples":
        names = _ROBUST_FIELDS + (_MIN_NORM_FIELDS if parts and parts[0].min_norm_distance is not None else ())
        fields = {name: np.concatenate([getattr(p, name) for p in parts]) for name in names}
        order = np.argsort(fields["positions"], kind="stable")
        return RobustSamples(**{name: f[order] for name, f in fields.items()})


_ROBUST_FIELDS = ("positions", "labels", "clean_correct", "fell_at")
_MIN_NORM_FIELDS = ("min_norm_distance", "min_norm_improving")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def eval_rows(samples: EvalSamples, paths: Sequence[str | None]) -> Iterator[dict[str, Any]]:
    for i, position in enumerate(samples.positions.tolist()):
        top = samples.top[i].tolist()
        yield {"i": position, "path": paths[i], "label": int(samples.labels[i]), "top5": top,
               "loss": _finite(float(samples.loss[i])), "confidence": _finite(float(samples.confidence[i])),
               "brier": _finite(float(samples.brier[i])), "correct": top[0] == int(samples.labels[i])}


def robust_rows(samples: RobustSamples, paths: Sequence[str | None], eps: Sequence[float]) -> Iterator[dict[str, Any]]:
    """Each image's row; with --min-norm also its smallest fooling distance (0 when wrong before any attack,
    null when never fooled: unbounded) and whether it was still shrinking at the last steps."""
    distances = samples.min_norm_distance
    for i, position in enumerate(samples.positions.tolist()):
        fell, clean = int(samples.fell_at[i]), bool(samples.clean_correct[i])
        fell_at = float(eps[fell]) if fell >= 0 else None
        row = {"i": position, "path": paths[i], "label": int(samples.labels[i]), "clean_correct": clean,
               "fell_at": fell_at if clean else 0.0}  # wrong before any attack: fooled at budget 0
        if distances is not None:
            d = float(distances[i])
            row["min_norm_distance"] = 0.0 if not clean else (d if math.isfinite(d) else None)
            row["min_norm_improving"] = bool(samples.min_norm_improving[i])
        yield row


def min_norm_columns(rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distance with inf for null, clean_correct, still improving) of robust --min-norm rows; KeyError,
    TypeError or ValueError when a row lacks them."""
    distance = np.array([np.inf if r["min_norm_distance"] is None else float(r["min_norm_distance"]) for r in rows],
                        dtype=np.float64)
    return (distance, np.array([bool(r["clean_correct"]) for r in rows], dtype=bool),
            np.array([bool(r["min_norm_improving"]) for r in rows], dtype=bool))


def with_paths(samples, root: str | None, found: Sequence[tuple[str, int]] | None):
    """`samples` with each image's path relative to the data root (None for tensor batches)."""
    import dataclasses

    positions = samples.positions.tolist()
    paths = tuple(relative_path(found[p][0], root) for p in positions) if found is not None else \
        (None,) * len(positions)
    return dataclasses.replace(samples, paths=paths)


def header_of(result) -> dict[str, Any]:
    """The per-sample header of an EvalResult or RobustResult (without format and version)."""
    samples = result.samples
    header = {"kind": "eval" if isinstance(samples, EvalSamples) else "robust",
              "data_fingerprint": result.data.get("fingerprint"), "rows": len(samples.positions)}
    if isinstance(samples, EvalSamples):
        header["num_classes"] = result.model.num_classes
    else:
        header["eps"] = [p.eps for p in result.points]
    return header


def rows_of(result) -> Iterator[dict[str, Any]]:
    """The per-sample rows of an EvalResult or RobustResult, from its in-memory samples (as written)."""
    samples = result.samples
    if isinstance(samples, EvalSamples):
        return eval_rows(samples, samples.paths)
    return robust_rows(samples, samples.paths, [p.eps for p in result.points])


def save(result, path: str) -> PerSampleFile:
    """Write a result's per-sample file (`--save-predictions`): its rows in data order."""
    return write(path, header_of(result), rows_of(result))


def write(path: str, header: dict[str, Any], rows: Iterator[dict[str, Any]]) -> PerSampleFile:
    """Stream `header` and `rows` to `path` (atomically; gzip for `.gz`) and return its hash and row count."""
    digest = hashlib.sha256()
    count = 0

    class Hashing(io.RawIOBase):
        def __init__(self, sink) -> None:
            self.sink = sink

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            digest.update(data)
            return self.sink.write(data)

    with atomic_writer(path) as sink:
        hashing = io.BufferedWriter(Hashing(sink), 1 << 16)
        stream = gzip.GzipFile(fileobj=hashing, mode="wb", mtime=0) if path.endswith(".gz") else hashing
        stream.write((json.dumps({"format": FORMAT, "version": VERSION, **header}) + "\n").encode())
        for row in rows:
            stream.write((json.dumps(row, allow_nan=False) + "\n").encode("utf-8", "surrogateescape"))
            count += 1
        if stream is not hashing:
            stream.close()
        hashing.flush()
    if count != header["rows"]:
        raise AssertionError(f"wrote {count} per-sample rows, expected {header['rows']}")
    return PerSampleFile(path, digest.hexdigest(), count)


def file_sha256(path: str, rows: int | None = None) -> str:
    """The file's sha256; with `rows` (the count its result records), refused unread when it is larger than
    that many rows can be (`max_bytes`)."""
    digest = hashlib.sha256()
    with open_input(path, "The per-sample file") as handle:
        if rows is not None and os.fstat(handle.fileno()).st_size > max_bytes(rows):
            raise DataError(f"{path} is larger than a per-sample file of {rows} rows can be: not the file this "
                            "result wrote.")
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read(path: str, expected_rows: int | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and rows of a per-sample file; anything else is one sentence (DataError). A regular file
    only; with `expected_rows` (the count the result records) the header must say that many and reading
    stops right after them, and the decompressed bytes are capped (`max_bytes`): a small gzip can never
    expand into millions of rows."""
    with open_input(path, "The per-sample file") as raw:
        try:
            handle = gzip.GzipFile(fileobj=raw, mode="rb") if path.endswith(".gz") else raw
            lines = _Lines(path, handle, expected_rows)
            header = lines.header()
            rows = list(lines)
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise DataError(f"{path}: cannot read the per-sample file ({exc}).") from None
    if header.get("rows") != len(rows) or not all(isinstance(r, dict) for r in rows):
        raise DataError(f"{path}: the header says {header.get('rows')} rows, the file has {len(rows)} "
                        "(truncated or edited).")
    return header, rows


def max_bytes(rows: int) -> int:
    """The most decompressed bytes a per-sample file of `rows` rows may hold (a row is ~150 bytes)."""
    return MAX_LINE + rows * ROW_BYTES


class _Lines:
    """The JSON lines of a per-sample file, read within the caps."""

    def __init__(self, path: str, handle, expected_rows: int | None) -> None:
        self.path, self.handle, self.expected = path, handle, expected_rows
        self.budget = max_bytes(expected_rows) if expected_rows is not None else None
        self.number = 0

    def _next(self) -> Any:
        line = self.handle.readline(MAX_LINE + 1)
        if not line:
            return _END
        if len(line) > MAX_LINE:
            raise DataError(f"{self.path}: a per-sample line is over 1 MiB: not an nnprobe per-sample file.")
        if self.budget is not None:
            self.budget -= len(line)
            if self.budget < 0:
                raise DataError(f"{self.path}: the per-sample file decompresses to more than {self.expected} rows "
                                "can take: not the file this result wrote.")
        self.number += 1
        return _json_line(self.path, self.number, line)

    def header(self) -> dict[str, Any]:
        header = self._next()
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise DataError(f"{self.path} is not an nnprobe per-sample file (no '{FORMAT}' header).")
        if self.expected is not None and header.get("rows") != self.expected:
            raise DataError(f"{self.path}: the header says {header.get('rows')!r} rows but the result counts "
                            f"{self.expected} images.")
        return header

    def __iter__(self) -> Iterator[Any]:
        while True:
            if self.expected is not None and self.number > self.expected:
                if self._next() is not _END:
                    raise DataError(f"{self.path}: more rows than the {self.expected} the result counts.")
                return
            row = self._next()
            if row is _END:
                return
            yield row


_END = object()


def _json_line(path: str, number: int, line: bytes) -> Any:
    try:
        return json.loads(line, parse_constant=_no_constant)
    except RecursionError:
        raise DataError(f"{path} line {number} is nested too deep: not an nnprobe per-sample file.") from None
    except ValueError:
        raise DataError(f"{path} line {number} is not JSON: not an nnprobe per-sample file, or truncated.") from None


def _no_constant(name: str):
    raise ValueError(name)


def median_min_eps(clean_correct: np.ndarray, fell_at: Sequence[float | None]) -> float | None:
    """The median smallest fooling budget on a robust sweep's grid (the lower median: the smallest eps of
    the sweep at which at most half the samples are still right): a sample wrong before any attack counts
    0, one never fooled counts as above the sweep. None when the median sample was never fooled."""
    per = np.array([0.0 if not clean else (np.inf if fell is None else float(fell))
                    for clean, fell in zip(np.asarray(clean_correct).tolist(), fell_at)], dtype=np.float64)
    if not per.size:
        return None
    median = float(np.sort(per)[(per.size - 1) // 2])
    return None if np.isinf(median) else median
