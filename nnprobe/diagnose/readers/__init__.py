"""Finding log files in a run folder and reading them: one module per format, parsing only.

`discover` groups files into runs: a folder is a run, except the sub-folders that loggers create inside
one run (Keras `train/` and `validation/`, SummaryWriter.add_hparams' timestamp folder, HF
`checkpoint-N/`), which belong to their parent. Lightning's `version_N` folders are separate runs.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from nnprobe.errors import InputError

# Sub-folders a logger writes inside one run; the name of a split folder becomes a tag prefix.
SPLIT_DIRS = frozenset({"train", "training", "validation", "val", "valid", "eval", "evaluation"})
_TIMESTAMP_DIR = re.compile(r"^\d{9,}(\.\d+)?$")
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
_K_KEYS = re.compile(r"^\s*(num_classes|n_classes|num_labels|nb_classes|classes)\s*:\s*(\d+)\s*$", re.M)
LOOKED_FOR = "events.out.tfevents.*, metrics.csv, *.csv, Keras CSVLogger *.log, trainer_state.json, *.jsonl"


@dataclass(frozen=True)
class LogRef:
    """A file to read, its format and the tag prefix its folder implies."""

    path: str
    format: str
    prefix: str = ""


@dataclass
class RunFiles:
    """The files of one run, plus files that say how many classes there are."""

    root: str
    logs: list[LogRef] = field(default_factory=list)
    hparams: list[str] = field(default_factory=list)  # Lightning hparams.yaml
    hf_configs: list[str] = field(default_factory=list)  # HF config.json
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def format_of(name: str) -> str | None:
    """The log format a file name implies, or None when nnprobe does not read it."""
    if name.startswith("events.out.tfevents"):
        return "tensorboard"
    if name == "metrics.csv":
        return "lightning-csv"
    if name.endswith(".csv"):
        return "keras-csv"
    if name == "trainer_state.json":
        return "hf-trainer-state"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return None


def _run_root(directory: str, top: str) -> tuple[str, str]:
    """(run folder, tag prefix) for a file in `directory`: logger sub-folders fold into their parent."""
    prefix = ""
    current = directory
    while os.path.normpath(current) != os.path.normpath(top):
        name = os.path.basename(current)
        if name.lower() in SPLIT_DIRS:
            prefix = f"{name}/{prefix}"
        elif not (_TIMESTAMP_DIR.match(name) or _CHECKPOINT_DIR.match(name)):
            break
        current = os.path.dirname(current)
    return current, prefix


def discover(path: str) -> list[RunFiles]:
    """The runs under `path` (a log file or a folder), each with the files to read."""
    if not os.path.exists(path):
        raise InputError(f"{path} does not exist: give a run folder or a log file ({LOOKED_FOR}).")
    if os.path.isfile(path):
        fmt = format_of(os.path.basename(path)) or _sniff(path) or \
            (_sniff_csvlogger(path) if path.endswith(".log") else None)
        if fmt is None:
            raise InputError(f"{path} is not a training log nnprobe reads ({LOOKED_FOR}).")
        run = RunFiles(root=path, logs=[LogRef(path, fmt)])
        _add_class_hints(run, os.path.dirname(path) or ".")
        return [run]
    runs: dict[str, RunFiles] = {}
    for directory, subdirs, files in os.walk(path):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        root, prefix = _run_root(directory, path)
        for name in sorted(files):
            full = os.path.join(directory, name)
            fmt = format_of(name) or (_sniff_csvlogger(full) if name.endswith(".log") else None)
            if fmt is None:
                if name in ("hparams.yaml", "config.json") and directory == root:
                    run = runs.setdefault(root, RunFiles(root))
                    (run.hparams if name == "hparams.yaml" else run.hf_configs).append(full)
                continue
            runs.setdefault(root, RunFiles(root)).logs.append(LogRef(full, fmt, prefix))
    found = [run for _, run in sorted(runs.items()) if run.logs]
    if not found:
        raise InputError(f"no training logs under {path} (looked for {LOOKED_FOR}).")
    for run in found:
        _drop_stale_checkpoints(run)
    return found


def _sniff_csvlogger(path: str) -> str | None:
    """Keras' CSVLogger is usually given `training.log`: a .log whose first line is a CSV header with an
    `epoch` column is read as one; other .log files are not logs nnprobe reads."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline(4096)
    except OSError:
        return None
    header = first.strip().lower().split(b",")
    return "keras-csv" if len(header) > 1 and header[0].strip(b'"') == b"epoch" else None


def _sniff(path: str) -> str | None:
    if path.endswith(".json"):
        try:
            with open(path, "rb") as handle:
                head = handle.read(4096)
        except OSError:
            return None
        return "hf-trainer-state" if b"log_history" in head or b"global_step" in head else "jsonl"
    return None


def _add_class_hints(run: RunFiles, directory: str) -> None:
    for name, bucket in (("hparams.yaml", run.hparams), ("config.json", run.hf_configs)):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            bucket.append(candidate)


def _drop_stale_checkpoints(run: RunFiles) -> None:
    """HF copies trainer_state.json into every checkpoint-N/: the run's own copy (or else the newest
    checkpoint's) holds the whole history, older copies are prefixes of it."""
    states = [ref for ref in run.logs if ref.format == "hf-trainer-state"]
    if len(states) < 2:
        return

    def checkpoint(ref: LogRef) -> int:
        match = _CHECKPOINT_DIR.match(os.path.basename(os.path.dirname(ref.path)))
        return int(match.group(1)) if match else 1 << 62

    keep = max(states, key=checkpoint)
    for ref in states:
        if ref is not keep:
            run.logs.remove(ref)
            run.ignored.append((ref.path, f"older copy of {os.path.relpath(keep.path, run.root)}"))


def hparams_num_classes(path: str) -> int | None:
    """K from a Lightning hparams.yaml (`num_classes: 10`, also n_classes/num_labels), or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            match = _K_KEYS.search(handle.read())
    except OSError:
        return None
    return int(match.group(2)) if match and int(match.group(2)) >= 2 else None


def read_log(ref: LogRef, *, verify_crc: bool = True):
    """Parse one file with its format's reader; an unreadable file becomes an issue, never an exception."""
    from nnprobe.diagnose.readers import hf_trainer_state, jsonl, keras_csv, lightning_csv, tensorboard
    from nnprobe.diagnose.readers.base import LogFile, ReadIssue

    try:
        if ref.format == "tensorboard":
            return tensorboard.read(ref.path, verify_crc=verify_crc, prefix=ref.prefix)
        reader = {"lightning-csv": lightning_csv.read, "keras-csv": keras_csv.read,
                  "hf-trainer-state": hf_trainer_state.read, "jsonl": jsonl.read}[ref.format]
        return reader(ref.path)
    except OSError as exc:
        log = LogFile(path=ref.path, format=ref.format)
        log.issues.append(ReadIssue("corrupt", ref.path, f"cannot be read: {exc.strerror or exc}"))
        return log
