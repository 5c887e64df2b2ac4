"""Byte-level output, the floor every layer writes through: atomic files with the user's umask, written
through symlinks, and one guard that refuses an output path resolving to any input.

Why here and not in `report/`: the attacks write PNGs too, and the core must not import the report layer.
This module imports neither torch nor PIL (`png_bytes` takes an image that is already a PIL image).
"""
from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from nnprobe.errors import UsageError

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
