"""Byte-level output, the floor every layer writes through: atomic files with the user's umask, written
through symlinks, and one guard that refuses an output path resolving to any input.

Why here and not in `report/`: the attacks write PNGs too, and the core must not import the report layer.
This module imports neither torch nor PIL (`png_bytes` takes an image that is already a PIL image).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from nnprobe.errors import DataError, InputError, UsageError

STDOUT = "-"  # `-o -` means stdout


def _umask() -> int:
    """The process umask, read without changing it where the kernel tells it (Linux >= 4.7)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # no other way to read it: set and restore at once
    os.umask(old)
    return old


def write_target(path: str | os.PathLike) -> Path:
    """Where a write to `path` lands: a symlink is followed (the link stays, its target is replaced)."""
    return Path(os.path.realpath(os.fspath(path)))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` so that `path` is either its old self or complete (see `atomic_writer`)."""
    with atomic_writer(path) as handle:
        handle.write(data)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary handle whose bytes replace `path` only when the block ends without an error: a temporary
    file beside the target, renamed over it in one step (so a streamed file, interrupted, never looks
    complete). The file gets the mode an ordinary `open()` would give (0666 less the umask), or the mode
    of the file it replaces. A symlink is written through, never replaced by a file; a FIFO or device
    (`/dev/stdout`) is written to directly, since it cannot be renamed over."""
    target = write_target(path)
    try:
        info = target.stat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise UsageError(f"Cannot write {os.fspath(path)}: {exc.strerror or exc}.") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise UsageError(f"Cannot write {os.fspath(path)}: it is a folder.")
    if info is not None and not stat.S_ISREG(info.st_mode):
        with open(target, "wb") as handle:  # a pipe or a terminal: nothing to rename, nothing to lose
            yield handle
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(info.st_mode) if info is not None else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def png_bytes(image) -> bytes:
    """A PIL image encoded as PNG: lossless, since JPEG would destroy an adversarial perturbation."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _identity(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def refuse_overwriting_inputs(outputs: dict[str, str | os.PathLike | None], *,
                              files: Iterable[str | os.PathLike | None] = (),
                              folders: Iterable[tuple[str, str | os.PathLike | None]] = ()) -> None:
    """Raise a UsageError (exit 2) before any work when an output would replace or land among inputs.

    `outputs` maps an option name (`-o`, `--plot`) to its path. `files` are input files (the photo being
    attacked, the model file, a labels file): an output may not be one of them, by real path or by inode
    (hard links). `folders` are (what, path) pairs such as ("data set", "val/"): an output may not land
    inside one, where it would replace an image or be read back as one on the next run.
    """
    input_files = []
    for item in files:
        if item is None or os.fspath(item) in ("", STDOUT):
            continue
        input_files.append((os.fspath(item), write_target(item), _identity(item)))
    input_folders = [(what, os.fspath(f), write_target(f)) for what, f in folders if f is not None]
    for option, out in outputs.items():
        if out is None or os.fspath(out) == STDOUT:
            continue
        target, identity = write_target(out), _identity(out)
        for shown, real, ident in input_files:
            if target == real or (identity is not None and identity == ident):
                raise UsageError(f"{option} {os.fspath(out)} is an input ({shown}); refusing to overwrite it.")
        for what, shown, real in input_folders:
            if _inside(target, real):
                raise UsageError(f"{option} {os.fspath(out)} lies inside the {what} {shown}; write it elsewhere "
                                 "so no input is replaced or read back as one.")


def check_writable_file(option: str, path: str | os.PathLike | None) -> None:
    """Fail fast (before any work) when `path` cannot be written: its folder is missing, is a file, or is
    not writable, or the path is a folder. `-` (stdout) is always fine."""
    if path is None or os.fspath(path) == STDOUT:
        return
    shown = os.fspath(path)
    if not shown.strip():
        raise UsageError(f"{option} needs a file path (or - for stdout), not an empty string.")
    target = write_target(path)
    if target.is_dir():
        raise UsageError(f"{option} {shown} is a folder; give a file path.")
    parent = target.parent
    if not parent.exists():
        raise UsageError(f"{option} {shown}: the folder {parent} does not exist.")
    if not parent.is_dir():
        raise UsageError(f"{option} {shown}: {parent} is not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {shown}: the folder {parent} is not writable.")


def refuse_output_folder(option: str, folder: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                         data_sets: Iterable[tuple[str, str | os.PathLike]] = ()) -> None:
    """Raise a UsageError (exit 2) before any work when an output folder is the folder an input file sits
    in (by the path given or its real path), where the outputs would sit among the inputs, be taken for
    inputs by the next glob and could replace one; or when it lies inside one of `data_sets` ((what, path)
    pairs), where they would later be counted as data."""
    shown = os.fspath(folder)
    target, identity = write_target(folder), _identity(folder)
    for item in inputs:
        path = os.fspath(item)
        for parent in {os.path.dirname(os.path.abspath(path)), os.path.dirname(os.path.realpath(path))}:
            if target == write_target(parent) or (identity is not None and identity == _identity(parent)):
                raise UsageError(f"{option} {shown} is the folder of the input {path}; write the outputs to "
                                 "another folder so they are not mixed with (or taken for) the inputs.")
    refuse_overwriting_inputs({option: folder}, folders=data_sets)


# ---- reading back what nnprobe wrote: results, slices to merge, per-sample files --------------------
# (a small public reader until the one input guard of issue 16 part 5 lands here; it should absorb these)

MAX_RESULT_BYTES = 256 << 20  # a result JSON of a 1000-class eval is ~300 KB
MAX_JSON_DEPTH = 64  # nnprobe writes results ~6 levels deep


def kind_of(mode: int) -> str:
    """What a path that is not a regular file is, in words (from its st_mode)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket" if stat.S_ISSOCK(mode) else "not a regular file"


def open_input(path: str | os.PathLike, what: str) -> BinaryIO:
    """`path` opened for binary reading if it is a regular file (links followed), else one sentence naming
    `what` (InputError, exit 2): missing, a folder, a FIFO, a device, a socket, a symlink loop. O_NONBLOCK
    keeps the open from waiting on a FIFO; the type is checked on the open descriptor."""
    shown = os.fspath(path)
    try:
        fd = os.open(shown, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{what} {shown} does not exist.") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise InputError(f"{what} {shown} cannot be read ({reason}).") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InputError(f"{what} {shown} is {kind_of(mode)}, not a regular file.")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_input(path: str | os.PathLike, what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (see `open_input`), else one sentence."""
    shown = os.fspath(path)
    with open_input(path, what) as handle:
        try:
            data = handle.read(max_bytes + 1) if os.fstat(handle.fileno()).st_size <= max_bytes else None
        except OSError as exc:
            raise InputError(f"{what} {shown} cannot be read ({exc.strerror or exc}).") from None
    if data is None or len(data) > max_bytes:
        raise InputError(f"{what} {shown} is over {max_bytes >> 20} MiB: not a file nnprobe wrote.")
    return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_json(data: bytes | str, what: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Strict JSON (no NaN/Infinity: nnprobe writes null for those) nested at most `max_depth` deep, else
    one sentence naming `what`: never a RecursionError, never a NaN that passes every comparison."""
    try:
        value = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise DataError(f"{what} is nested deeper than {max_depth} levels: not a file nnprobe wrote.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        hint = " (NaN and Infinity are not JSON numbers)" if "is not JSON" in str(exc) else ""
        raise DataError(f"{what} is not JSON{hint}: give a file written with --format json.") from None
    if json_depth(value) > max_depth:
        raise DataError(f"{what} is nested deeper than {max_depth} levels: not a file nnprobe wrote.")
    return value


def json_depth(value: Any) -> int:
    """How deep containers nest in a parsed JSON value (iterative: any depth is measured safely)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_json(path: str | os.PathLike, what: str, max_bytes: int = MAX_RESULT_BYTES) -> Any:
    """A JSON file nnprobe wrote, read back through every guard: a regular file, at most `max_bytes`,
    strict JSON, bounded depth. `what` names it in the sentence ("the baseline", "Result")."""
    shown = f"{what} {os.fspath(path)}"
    return parse_json(read_input(path, what, max_bytes), shown)
