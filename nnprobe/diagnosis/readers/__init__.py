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

import dataclasses
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
from nnprobe.diagnosis.readers import mlflow  # noqa: F401
from nnprobe.diagnosis.readers import wandb  # noqa: F401
from nnprobe.diagnosis.readers.base import SIZE_CAPS, Unreadable, read_capped
from nnprobe.diagnosis.readers.registry import (READERS, Reader, Sniffer, could_be_log, format_of, looked_for,
                                                readers, register_reader, sniff)
from nnprobe.errors import InputError

__all__ = ["MAX_CLASSES", "READERS", "LogRef", "Reader", "RunFiles", "Sniffer", "class_count", "could_be_log",
           "discover", "format_of", "hparams_num_classes", "log_files", "looked_for", "read_log", "readers",
           "register_reader", "settled", "sniff", "tail"]

# Sub-folders a logger writes inside one run; the name of a split folder becomes a tag prefix.
SPLIT_DIRS = frozenset({"train", "training", "validation", "val", "valid", "eval", "evaluation"})
_TIMESTAMP_DIR = re.compile(r"^\d{9,}(\.\d+)?$")
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
_HF_LOGGING_DIR = re.compile(r"^[A-Z][a-z]{2}\d{2}_\d{2}-\d{2}-\d{2}_.+$")  # HF's default `%b%d_%H-%M-%S_<host>`
_VERSION_DIR = re.compile(r"^version_\d+$")  # Lightning: a run of its own
_K_KEYS = re.compile(r"^\s*(num_classes|n_classes|num_labels|nb_classes|classes)\s*:[ \t]*(.*?)\s*$", re.M)
MAX_CLASSES = 10**9  # a class count above this is a typo or garbage (1/K must stay a usable float)


@dataclass(frozen=True)
class LogRef:
    """A file to read, its format and the tag prefix its folder implies."""

    path: str
    format: str
    prefix: str = ""
    part: str = ""  # which run of a file holding several (an mlflow.db run's id)
    scalars_of: str = ""  # add_scalars folder below the run: `<main_tag>_<tag>` or `<main_tag>/<tag>` (see run.py)


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
    """The runs under `path` (a log file or a folder, or an s3:// gs:// hf:// az:// URL of one), each with the
    files to read; a file holding several runs (mlflow.db) gives one run each."""
    from nnprobe.remote import is_remote, listing

    if is_remote(path):
        return _split_parts(_grouped(path, *listing(path)))
    if not os.path.lexists(path):
        raise InputError(f"{path} does not exist: give a run folder or a log file ({looked_for()}).")
    if not os.path.isdir(path):  # a file, or a FIFO/device/broken link given by name: read_log says which
        name = os.path.basename(path)
        fmt = format_of(name) or sniff(path, name, in_folder=False)
        if fmt is None:
            raise InputError(f"{path} is not a training log nnprobe reads ({looked_for()}).")
        run = RunFiles(root=path, logs=[LogRef(path, fmt)])
        _add_class_hints(run, os.path.dirname(path) or ".")
        return _split_parts([run])
    runs = _walk(os.path.abspath(path), lambda p: _spelled(p, os.path.abspath(path), path))
    _fold_logger_subruns(runs)
    found = [_respelled(run, lambda p: _spelled(p, os.path.abspath(path), path)) for _, run in sorted(runs.items())
             if run.logs]
    if not found:
        raise InputError(f"no training logs under {path} (looked for {looked_for()}).")
    for run in found:
        _drop_stale_checkpoints(run)
    return _split_parts(found)


def _grouped(url: str, top: str, files: list[str], single: bool) -> list[RunFiles]:
    """The runs in a remote listing (remote.listing), grouped as a local folder's: a folder is a run,
    logger sub-folders fold into it, checkpoint copies are dropped."""
    runs: dict[str, RunFiles] = {}
    for full in files:
        directory, name = full.rsplit("/", 1)
        fmt = format_of(name) or sniff(full, name, in_folder=not single)
        root, prefix = (full, "") if single else _run_root(directory, top)  # one log file: the run, as locally
        if fmt is None:
            if name in ("hparams.yaml", "config.json") and directory == root or \
                    name == "config.json" and _CHECKPOINT_DIR.match(directory.rsplit("/", 1)[-1]):
                run = runs.setdefault(root, RunFiles(root))
                (run.hparams if name == "hparams.yaml" else run.hf_configs).append(full)
            continue
        runs.setdefault(root, RunFiles(root)).logs.append(LogRef(full, fmt, prefix))
    _fold_logger_subruns(runs)  # one run per logger, as for a local folder
    found = [run for _, run in sorted(runs.items()) if run.logs]
    if single and found:  # the class hints beside one log file, as _add_class_hints finds them locally
        from nnprobe.remote import isfile

        directory = files[0].rsplit("/", 1)[0]
        for name, hints in (("hparams.yaml", found[0].hparams), ("config.json", found[0].hf_configs)):
            if isfile(f"{directory}/{name}"):
                hints.append(f"{directory}/{name}")
    if not found:
        what = "is not a training log nnprobe reads" if single else "holds no training logs"
        raise InputError(f"{url} {what} (looked for {looked_for()}).")
    for run in found:
        _drop_stale_checkpoints(run)
    return found


def _spelled(full: str, top_abs: str, top: str) -> str:
    """`full` (below the absolute `top_abs`) as the user spelled the top: `run/`, `./run`, `.` and an
    absolute path all name the same run, shown the way it was given (without a trailing slash)."""
    rel = os.path.relpath(full, top_abs)
    return os.path.normpath(top if rel == os.curdir else os.path.join(top, rel))


def _respelled(run: RunFiles, user) -> RunFiles:
    return RunFiles(user(run.root), [dataclasses.replace(ref, path=user(ref.path)) for ref in run.logs],
                    [user(p) for p in run.hparams], [user(p) for p in run.hf_configs],
                    [(user(p), why) for p, why in run.ignored])


def _walk(path: str, user) -> dict[str, RunFiles]:
    """The runs below the absolute folder `path`, keyed by absolute run folder (`user` spells a path as
    the user gave the top, for messages)."""
    runs: dict[str, RunFiles] = {}
    seen_dirs: set[str] = set()
    seen_files: dict[tuple[int, int], str] = {}
    for directory, subdirs, files in os.walk(path, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen_dirs:  # reached again through a symlink (or a loop): walked once already
            subdirs[:] = []
            continue
        seen_dirs.add(real)
        subdirs[:] = sorted((d for d in subdirs if not d.startswith(".")),  # real folders before links to them
                            key=lambda d: (os.path.islink(os.path.join(directory, d)), d))
        root, prefix = _run_root(directory, path)
        for name in sorted(files, key=lambda n: (os.path.islink(os.path.join(directory, n)), n)):  # real files first
            full = os.path.join(directory, name)
            fmt = format_of(name) or sniff(full, name, in_folder=True)
            is_hint = name in ("hparams.yaml", "config.json") and directory == root or \
                name == "config.json" and bool(_CHECKPOINT_DIR.match(os.path.basename(directory)))
            if fmt is None and not is_hint:
                continue
            try:
                info = os.stat(full)
                identity = (info.st_dev, info.st_ino)
            except OSError:
                identity = None  # a broken link: listed, and reading it says why
            if identity is not None and identity in seen_files:
                runs.setdefault(root, RunFiles(root)).ignored.append(
                    (full, f"the same file as {user(seen_files[identity])} (a link): read once"))
                continue
            if identity is not None:
                seen_files[identity] = full
            run = runs.setdefault(root, RunFiles(root))
            if fmt is None:
                (run.hparams if name == "hparams.yaml" else run.hf_configs).append(full)
            else:
                run.logs.append(LogRef(full, fmt, prefix))
    return runs


def _fold_logger_subruns(runs: dict[str, RunFiles]) -> None:
    """Folders that one logger writes for one run, folded into that run: HF Trainer's TensorBoard folder
    `runs/<Mon01_12-00-00_host>/` beside its trainer_state.json (report_to="tensorboard"), and tensorboardX
    / torch add_scalars folders beside the writer's own event file, `<run>/<main_tag>/<tag>/` (tensorboardX)
    or `<run>/<main_tag>_<tag>/` (torch) (the tags in them are renamed main_tag/tag when read, see run.py)."""
    by_norm = {os.path.normpath(root): root for root in runs}
    # shallow folders first: `acc/` (its val/ read into it) folds away before `acc/top5/` looks for its writer
    for root in sorted(runs, key=lambda r: os.path.normpath(r).count(os.sep)):
        run = runs[root]
        parent = os.path.dirname(os.path.normpath(root))
        name = os.path.basename(os.path.normpath(root))
        if not run.logs or any(ref.format != "tensorboard" for ref in run.logs):
            continue
        owner = by_norm.get(os.path.dirname(parent)) if os.path.basename(parent) == "runs" \
            and _HF_LOGGING_DIR.match(name) else None
        if owner in runs and any(ref.format == "hf-trainer-state" for ref in runs[owner].logs):
            target, refs = runs[owner], run.logs
        else:
            owner, folders = _add_scalars_owner(root, run, runs, by_norm)
            if owner is None:
                continue
            target = runs[owner]
            refs = [LogRef(ref.path, ref.format, "", ref.part, folder) for ref, folder in zip(run.logs, folders)]
        target.logs.extend(refs)
        target.ignored.extend(run.ignored)
        target.hparams.extend(run.hparams)
        target.hf_configs.extend(run.hf_configs)
        del runs[root]


def _add_scalars_owner(root: str, run: RunFiles, runs: dict[str, RunFiles],
                       by_norm: dict[str, str]) -> tuple[str | None, list[str]]:
    """(the run whose writer made `root` with add_scalars, each file's folder relative to that run) or (None,
    []): the nearest run folder above `root` that holds an event file itself; the files' folders are
    `<main_tag>_<tag>` right below it (torch, main_tag's '/' written as '_') or `<main_tag>/<tag>` at any
    depth (tensorboardX keeps main_tag's '/', so `loss/train/` and `metrics/loss/train/` both occur)."""
    current = os.path.normpath(root)
    while True:
        parent = os.path.dirname(current)
        if parent == current:
            return None, []
        owner = by_norm.get(parent)
        if owner in runs:
            break
        current = parent
    if not any(ref.format == "tensorboard" and os.path.normpath(os.path.dirname(ref.path)) == parent
               for ref in runs[owner].logs):
        return None, []
    folders = []
    for ref in run.logs:
        folder = os.path.normpath(os.path.dirname(ref.path))
        if not folder.startswith(parent + os.sep):
            return None, []
        parts = folder[len(parent) + 1:].split(os.sep)
        if any(_VERSION_DIR.match(p) or _HF_LOGGING_DIR.match(p) for p in parts) or \
                len(parts) == 1 and "_" not in parts[0]:
            return None, []
        folders.append("/".join(parts))
    return owner, folders


def _split_parts(runs: list[RunFiles]) -> list[RunFiles]:
    """A file that holds several runs (mlflow.db) becomes one run per part, named `file#label`; one whose
    parts cannot be listed stays whole, and reading it says why."""
    from nnprobe.diagnosis.readers.base import Unreadable

    out: list[RunFiles] = []
    for run in runs:
        multi = [ref for ref in run.logs if READERS[ref.format].parts is not None]
        for ref in multi:
            try:
                parts = READERS[ref.format].parts(ref.path)
            except (Unreadable, OSError):
                continue
            if not parts:  # no run in it: read whole, which says so
                continue
            run.logs.remove(ref)
            out += [RunFiles(f"{ref.path}#{label}", [LogRef(ref.path, ref.format, ref.prefix, key)])
                    for key, label in parts]
        if run.logs or not multi:
            out.append(run)
    return out


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


def tail(ref: LogRef, state=None, *, verify_crc: bool = True):
    """What `ref` gained since `state` (None: since nothing), as a `TailState` whose `log` holds every point
    read so far and `changed` whether this call brought any. Appended formats are read from where the last
    call stopped (a half-written record waited for; a rotated or rewritten file read again from its start);
    formats rewritten whole are read again when they changed. An unreadable file becomes an issue, as in
    `read_log`, never an exception."""
    from nnprobe.diagnosis.readers.base import ReadIssue
    from nnprobe.diagnosis.readers.incremental import TailState, reread

    state = state if state is not None else TailState(ref, verify_crc)
    reader = READERS[ref.format]
    try:
        state.changed = reader.tail(state) if reader.tail is not None else \
            reread(state, lambda: read_log(ref, verify_crc=verify_crc))
    except (Unreadable, OSError) as exc:
        detail = str(exc) if isinstance(exc, Unreadable) else f"cannot be read: {exc.strerror or exc}"
        known = {(issue.kind, issue.detail) for issue in state.log.issues}
        state.changed = ("unreadable", detail) not in known
        if state.changed:
            state.log.issues.append(ReadIssue("unreadable", ref.path, detail))
    return state


def read_log(ref: LogRef, *, verify_crc: bool = True):
    """Parse one file with its format's reader; an unreadable file becomes an issue, never an exception."""
    from nnprobe.diagnosis.readers.base import LogFile, ReadIssue

    reader = READERS[ref.format]
    options = {"verify_crc": verify_crc, "prefix": ref.prefix, "part": ref.part}
    try:
        log = reader.read(ref.path, **{name: options[name] for name in reader.options})
    except (Unreadable, OSError) as exc:
        detail = str(exc) if isinstance(exc, Unreadable) else f"cannot be read: {exc.strerror or exc}"
        log = LogFile(path=ref.path, format=ref.format)
        log.issues.append(ReadIssue("unreadable", ref.path, detail))
        return log
    return settled(ref, log)


def settled(ref: LogRef, log):
    """`log` as a one-shot read reports it: a file of which not one record decoded, only damage, is not
    this format at all (one 'unreadable' issue naming the first damage). A new LogFile when it changes
    (a followed file's accumulated log is left as it is), else `log`."""
    from nnprobe.diagnosis.readers.base import LogFile, ReadIssue

    damaged = [issue for issue in log.issues if issue.kind == "corrupt"]
    if log.records or not damaged:
        return log
    first = damaged[0]
    where = f"at {READERS[ref.format].offset_unit} {first.offset}: " if first.offset is not None else ""
    meta = {k: v for k, v in log.meta.items() if k != "skipped"}
    return LogFile(path=log.path, format=log.format, series=log.series, meta=meta, records=log.records,
                   issues=[ReadIssue("unreadable", ref.path, f"has no readable record ({where}{first.detail})")],
                   histograms=log.histograms)
