"""Reading input files safely: only regular files are opened for reading, so a FIFO (which blocks forever)
or a device such as /dev/zero (which never ends) named like an image or a labels file is refused, never
read; text files are size-capped and must be UTF-8 text, not binary.
"""
from __future__ import annotations

import os
import stat
from typing import BinaryIO

from nnprobe.errors import DataError
from nnprobe.io import kind_of

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0) \
    | getattr(os, "O_BINARY", 0)


class NotRegularFile(OSError):
    """The path exists but is a folder, FIFO, device or socket (`kind` says which)."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a regular file")
        self.path, self.kind = path, kind


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """A binary file object for `path` if it is a regular file (links followed). Checked before opening
    (opening some devices has effects) and again on the open descriptor (the path may change in between);
    O_NONBLOCK keeps even that open from waiting on a FIFO. Raises OSError (FileNotFoundError, ...) or
    NotRegularFile."""
    shown = os.fspath(path)
    info = os.stat(shown)
    if not stat.S_ISREG(info.st_mode):
        raise NotRegularFile(shown, kind_of(info.st_mode))
    fd = os.open(shown, _FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(shown, kind_of(info.st_mode))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text(path: str | os.PathLike, what: str, max_bytes: int) -> str:
    """The UTF-8 text of a small input file (a labels file, a class map), or a one-sentence DataError
    naming `what` (e.g. "--class-map x.json"): missing, not a regular file, over `max_bytes`, binary."""
    try:
        with open_regular(path) as handle:
            if os.fstat(handle.fileno()).st_size > max_bytes:
                raise DataError(f"{what} is larger than {max_bytes // 2**20} MiB; is it the right file?")
            data = handle.read(max_bytes + 1)
    except NotRegularFile as exc:
        raise DataError(f"{what} is {exc.kind}, not a regular file.") from None
    except OSError as exc:
        raise DataError(f"Cannot read {what} ({exc.strerror or exc}).") from None
    if len(data) > max_bytes:
        raise DataError(f"{what} is larger than {max_bytes // 2**20} MiB; is it the right file?")
    if b"\0" in data:
        raise DataError(f"{what} is a binary file, not text.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{what} is not UTF-8 text.") from None
