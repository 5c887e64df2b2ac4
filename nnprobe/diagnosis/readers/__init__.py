"""Finding log files in a run folder and reading them: one module per format, parsing only.

`discover` groups files into runs: a folder is a run, except the sub-folders that loggers create inside
one run (Keras `train/` and `validation/`, SummaryWriter.add_hparams' timestamp folder, HF
`checkpoint-N/`), which belong to their parent. Lightning's `version_N` folders are separate runs.
Symlinked folders are followed once per real folder (a loop ends there) and a file reached twice through
links is read once. Only regular files are read (see base.open_regular), each within its size cap.

Formats come from `READERS` (registry.py): each reader module below registers its format id, file name
patterns and sniffer on import, so the registry is complete once this package is imported.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

# Importing a reader module registers it (here in priority order); they import only base, _table and
# registry, never this package, so there is no circle.
from nnprobe.diagnosis.readers import tensorboard  # noqa: F401,I001
from nnprobe.diagnosis.readers import lightning_csv  # noqa: F401
from nnprobe.diagnosis.readers import keras_csv  # noqa: F401
from nnprobe.diagnosis.readers import hf_trainer_state  # noqa: F401
from nnprobe.diagnosis.readers import jsonl  # noqa: F401
from nnprobe.diagnosis.readers.base import SIZE_CAPS, Unreadable, read_capped
from nnprobe.diagnosis.readers.registry import (READERS, Reader, Sniffer, could_be_log, format_of, looked_for,
                                                readers, register_reader, sniff)
from nnprobe.errors import InputError

__all__ = ["MAX_CLASSES", "READERS", "LogRef", "Reader", "RunFiles", "Sniffer", "class_count", "could_be_log",
           "discover", "format_of", "hparams_num_classes", "log_files", "looked_for", "read_log", "readers",
           "register_reader", "sniff"]

# Sub-folders a logger writes inside one run; the name of a split folder becomes a tag prefix.
SPLIT_DIRS = frozenset({"train", "training", "validation", "val", "valid", "eval", "evaluation"})
_TIMESTAMP_DIR = re.compile(r"^\d{9,}(\.\d+)?$")
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
_K_KEYS = re.compile(r"^\s*(num_classes|n_classes|num_labels|nb_classes|classes)\s*:[ \t]*(.*?)\s*$", re.M)
MAX_CLASSES = 10**9  # a class count above this is a typo or garbage (1/K must stay a usable float)


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

    def files(self) -> list[str]:
        """Every file that will be read for this run: the logs and the files that give K."""
        return [ref.path for ref in self.logs] + self.hparams + self.hf_configs


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
    if not os.path.lexists(path):
        raise InputError(f"{path} does not exist: give a run folder or a log file ({looked_for()}).")
    if not os.path.isdir(path):  # a file, or a FIFO/device/broken link given by name: read_log says which
        name = os.path.basename(path)
        fmt = format_of(name) or sniff(path, name, in_folder=False)
        if fmt is None:
            raise InputError(f"{path} is not a training log nnprobe reads ({looked_for()}).")
        run = RunFiles(root=path, logs=[LogRef(path, fmt)])
        _add_class_hints(run, os.path.dirname(path) or ".")
        return [run]
    runs: dict[str, RunFiles] = {}
    seen_dirs: set[str] = set()
    seen_files: dict[tuple[int, int], str] = {}
    for directory, subdirs, files in os.walk(path, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen_dirs:  # reached again through a symlink (or a loop): walked once already
            subdirs[:] = []
            continue
        seen_dirs.add(real)
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        root, prefix = _run_root(directory, path)
        for name in sorted(files, key=lambda n: (os.path.islink(os.path.join(directory, n)), n)):  # real files first
            full = os.path.join(directory, name)
            fmt = format_of(name) or sniff(full, name, in_folder=True)
            is_hint = name in ("hparams.yaml", "config.json") and directory == root
            if fmt is None and not is_hint:
                continue
            try:
                info = os.stat(full)
                identity = (info.st_dev, info.st_ino)
            except OSError:
                identity = None  # a broken link: listed, and reading it says why
            if identity is not None and identity in seen_files:
                runs.setdefault(root, RunFiles(root)).ignored.append(
                    (full, f"the same file as {seen_files[identity]} (a link): read once"))
                continue
            if identity is not None:
                seen_files[identity] = full
            run = runs.setdefault(root, RunFiles(root))
            if fmt is None:
                (run.hparams if name == "hparams.yaml" else run.hf_configs).append(full)
            else:
                run.logs.append(LogRef(full, fmt, prefix))
    found = [run for _, run in sorted(runs.items()) if run.logs]
    if not found:
        raise InputError(f"no training logs under {path} (looked for {looked_for()}).")
    for run in found:
        _drop_stale_checkpoints(run)
    return found


def log_files(path: str) -> list[str]:
    """Every file `diagnose(path)` would read (logs, hparams.yaml, config.json), as found under `path`
    (resolve them before comparing); [] when there is none. No parsing: for output guards."""
    try:
        runs = discover(os.fspath(path))
    except InputError:
        return []
    return [file for run in runs for file in run.files()]


def _add_class_hints(run: RunFiles, directory: str) -> None:
    for name, bucket in (("hparams.yaml", run.hparams), ("config.json", run.hf_configs)):
        candidate = os.path.join(directory, name)
        if os.path.lexists(candidate):
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


def class_count(value, where: str) -> tuple[int | None, str | None]:
    """(K, None) for an integer 2..MAX_CLASSES, else (None, why `value` from `where` was ignored)."""
    if isinstance(value, int) and not isinstance(value, bool) and 2 <= value <= MAX_CLASSES:
        return value, None
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_CLASSES:
        shown = f"{value:.3e}" if value.bit_length() < 1000 else \
            f"a number of about {int(value.bit_length() * 0.30103)} digits"
    else:
        shown = repr(value) if not isinstance(value, str) else repr(value[:30])
    return None, (f"{where} {shown} is not a number of classes (an integer from 2 to {MAX_CLASSES:,}), "
                  f"so it was ignored")


def hparams_num_classes(path: str) -> tuple[int | None, str | None]:
    """(K from a Lightning hparams.yaml: `num_classes: 10`, also n_classes/num_labels/nb_classes/classes;
    why a value there was ignored). No such key, or a list/null value, is no claim about K."""
    where = os.path.basename(path)
    try:
        text = read_capped(path, SIZE_CAPS["hparams"]).decode("utf-8", errors="replace")
    except Unreadable as exc:
        return None, f"{where} {exc}, so it was ignored"
    match = _K_KEYS.search(text)
    if not match:
        return None, None
    key, raw = match.group(1), match.group(2).split(" #")[0].strip()
    if not raw or raw[0] in "[{&*|>" or raw in ("null", "~", "None"):
        return None, None
    bare = raw.strip("'\"")
    if re.fullmatch(r"\+?\d+", bare):
        digits = bare.lstrip("+").lstrip("0") or "0"
        if len(digits) > 12:
            return None, (f"{where} {key}: a {len(digits)}-digit number is not a number of classes (an "
                          f"integer from 2 to {MAX_CLASSES:,}), so it was ignored")
        return class_count(int(digits), f"{where} {key}:")
    return class_count(bare, f"{where} {key}:")


def read_log(ref: LogRef, *, verify_crc: bool = True):
    """Parse one file with its format's reader; an unreadable file becomes an issue, never an exception."""
    from nnprobe.diagnosis.readers.base import LogFile, ReadIssue

    reader = READERS[ref.format]
    options = {"verify_crc": verify_crc, "prefix": ref.prefix}
    try:
        log = reader.read(ref.path, **{name: options[name] for name in reader.options})
    except (Unreadable, OSError) as exc:
        detail = str(exc) if isinstance(exc, Unreadable) else f"cannot be read: {exc.strerror or exc}"
        log = LogFile(path=ref.path, format=ref.format)
        log.issues.append(ReadIssue("unreadable", ref.path, detail))
        return log
    damaged = [issue for issue in log.issues if issue.kind == "corrupt"]
    if not log.records and damaged:  # not one record decoded: the file is not this format at all
        first = damaged[0]
        where = f"at {reader.offset_unit} {first.offset}: " if first.offset is not None else ""
        log.issues[:] = [ReadIssue("unreadable", ref.path, f"has no readable record ({where}{first.detail})")]
        log.meta.pop("skipped", None)
    return log
