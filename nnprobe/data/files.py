"""Reading input files safely: only regular files are opened for reading, so a FIFO (which blocks forever)
or a device such as /dev/zero (which never ends) named like an image or a labels file is refused, never
read; text files are size-capped and must be UTF-8 text, not binary.
"""
from __future__ import annotations

import os

from nnprobe.errors import DataError
from nnprobe.io import NotRegularFile, open_regular  # the one input guard


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
