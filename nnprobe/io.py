"""Byte-level input and output, the floor every layer reads and writes through: the one input guard
(`open_regular`, `check_input`: regular files only, a size cap per kind), atomic files with the user's
umask, written through symlinks, and the one output guard that refuses an output path resolving to any input.

Why here and not in `report/`: the attacks write PNGs too, and the core must not import the report layer.
This module imports neither torch nor PIL (`png_bytes` takes an image that is already a PIL image).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from nnprobe.errors import DataError, InputError, UsageError

STDOUT = "-"  # `-o -` means stdout

MIB = 2**20
# The size cap of each kind of input file: far above any real one, far below what would exhaust memory or
# time when the path names the wrong thing (a disk image, /proc/kcore, a runaway log).
INPUT_CAPS: dict[str, int | None] = {
    "model": 64 * 2**30,  # checkpoints and archives (the largest public ImageNet models are a few GiB)
    "image": 1024 * MIB,
    "labels": 256 * MIB,  # label CSVs, class maps, ReaL labels, devkit ground truth
    "model-list": MIB,  # eval --models FILE: one model spec per line
    "result": 256 * MIB,  # result JSON (compare, merge, --baseline)
    "per-sample": 4096 * MIB,  # --save-predictions files read back
    "log": None,  # each log reader has its own cap per format
}
_READ_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
               | getattr(os, "O_BINARY", 0))


class NotRegularFile(OSError):
    """The path exists but is a folder, FIFO, device or socket (`kind` says which), or is over its size cap
    (`kind` then says how large)."""

    def __init__(self, path: str, kind: str, *, oversize: bool = False) -> None:
        super().__init__(f"{path} is {kind}" if oversize else f"{path} is {kind}, not a regular file")
        self.path, self.kind, self.oversize = path, kind, oversize

    @property
    def problem(self) -> str:
        """What is wrong, without the path: "is a FIFO (named pipe), not a regular file", "is 3 bytes, over ..."."""
        return str(self)[len(self.path) + 1:]


def kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike, cap: int | None = None) -> BinaryIO:
    """A binary file object for `path` if it is a regular file (links followed) of at most `cap` bytes.
    Checked before opening (opening some devices has effects) and again on the open descriptor (the path
    may change in between); O_NONBLOCK keeps even that open from waiting on a FIFO. Raises OSError
    (FileNotFoundError, ELOOP for a symlink loop ...) or NotRegularFile."""
    shown = os.fspath(path)
    info = os.stat(shown)
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFile(shown, kind_of(info.st_mode))
    fd = os.open(shown, _READ_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(shown, kind_of(info.st_mode))
        if cap is not None and info.st_size > cap:
            raise NotRegularFile(shown, f"{info.st_size:,} bytes, over the {cap // MIB:,} MiB limit for such a file",
                                 oversize=True)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def input_problem(path: str | os.PathLike, kind: str = "labels") -> str | None:
    """Why `path` cannot be read as an input of this kind ("does not exist", "is a FIFO ..."), or None.
    Reads nothing: a stat, never an open, so a FIFO or a device costs nothing."""
    import errno

    try:
        info = os.stat(os.fspath(path))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "does not exist"
        return f"cannot be read ({exc.strerror or exc})"
    except ValueError:  # a NUL byte
        return "is not a valid path"
    if not stat.S_ISREG(info.st_mode):
        return f"is {kind_of(info.st_mode)}, not a regular file"
    cap = INPUT_CAPS.get(kind)
    if cap is not None and info.st_size > cap:
        return f"is {info.st_size:,} bytes, over the {cap // MIB:,} MiB limit for such a file"
    if not os.access(os.fspath(path), os.R_OK):
        return "cannot be read (permission denied)"
    return None


def check_input(path: str | os.PathLike, what: str, kind: str = "labels") -> None:
    """The one input guard, before any work: `what path` is a regular, readable file within the cap of its
    kind (INPUT_CAPS), else a UsageError (exit 2) with one sentence. `what` names it as the user gave it
    (`--labels`, `Baseline result`)."""
    problem = input_problem(path, kind)
    if problem is not None:
        raise InputError(f"{what} {os.fspath(path)} {problem}.")


def check_input_folder(path: str | os.PathLike, what: str) -> None:
    """A folder input (a data set, a devkit): it exists and is a folder (a symlink loop is named)."""
    problem = input_problem(path, "log")
    if problem is None:
        raise UsageError(f"{what} {os.fspath(path)} is a file; give a folder.")
    if "a folder" not in problem:
        raise UsageError(f"{what} {os.fspath(path)} {problem}.")


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
    try:
        target = write_target(path)
        info = os.stat(target) if os.path.lexists(target) else None
    except OSError as exc:  # a symlink loop
        raise UsageError(f"{option} {shown} cannot be written ({exc.strerror or exc}).") from None
    if target.is_dir():
        raise UsageError(f"{option} {shown} is a folder; give a file path.")
    if info is not None and not stat.S_ISREG(info.st_mode) and str(target) != os.devnull:
        raise UsageError(f"{option} {shown} is {kind_of(info.st_mode)}, not a file: nnprobe writes reports and "
                         "images to regular files only (- is stdout, /dev/null discards).")
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


def refuse_out_among_inputs(option: str, folder: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """`refuse_output_folder` for a folder of outputs beside input files (fool --out): not the folder of an
    input, nor inside a labelled data set that holds one (the parent of a class folder: an ImageNet wnid or an
    index, as data/layouts.py reads them), where `nnprobe eval` would later count the outputs. Torch-free, so
    the CLI refuses before any work and the API (which may be called without the CLI) with the same rule."""
    inputs = [os.fspath(p) for p in inputs]
    data_sets = []
    for path in inputs:
        for parent in {os.path.dirname(os.path.abspath(path)), os.path.dirname(os.path.realpath(path))}:
            name = os.path.basename(parent)
            if re.fullmatch(r"n\d{8}", name) or (name.isascii() and name.isdigit()):
                data_sets.append(("data set", os.path.dirname(parent)))
    refuse_output_folder(option, folder, inputs=inputs, data_sets=data_sets)


# ---- reading back what nnprobe wrote: results, slices to merge, per-sample files --------------------
# (through the one input guard above: open_input is open_regular with a sentence)

MAX_RESULT_BYTES = 256 << 20  # a result JSON of a 1000-class eval is ~300 KB
MAX_JSON_DEPTH = 64  # nnprobe writes results ~6 levels deep


def open_input(path: str | os.PathLike, what: str, cap: int | None = None) -> BinaryIO:
    """`path` opened for binary reading through the one input guard (`open_regular`: a regular file, links
    followed, at most `cap` bytes), else one sentence naming `what` (InputError, exit 2): missing, a folder,
    a FIFO, a device, a socket, a symlink loop."""
    shown = os.fspath(path)
    try:
        return open_regular(shown, cap)
    except NotRegularFile as exc:
        raise InputError(f"{what} {shown} is {exc.kind}{'' if 'bytes' in exc.kind else ', not a regular file'}.") \
            from None
    except FileNotFoundError:
        raise InputError(f"{what} {shown} does not exist.") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise InputError(f"{what} {shown} cannot be read ({reason}).") from None


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


def check_appendable(what: str, path: str | os.PathLike) -> None:
    """A file appended to ($GITHUB_STEP_SUMMARY): a regular file or a new one in a writable folder; never a
    FIFO (the append would block), a device, a folder or a symlink loop (a UsageError says which)."""
    shown = os.fspath(path)
    if not shown.strip():
        raise UsageError(f"{what} is set but empty.")
    problem = input_problem(shown, "log")
    if problem == "does not exist":
        check_writable_file(what, shown)
        return
    if problem is not None and "permission denied" not in problem:
        raise UsageError(f"{what} {shown} {problem}.")
    if not os.access(shown, os.W_OK):
        raise UsageError(f"{what} {shown} is not writable.")
