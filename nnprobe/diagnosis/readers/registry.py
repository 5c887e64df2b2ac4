"""The log-reader registry: each reader module registers its read function by decorator under a stable
format id (a duplicate id raises), with the file names it reads and, where a name is not enough, a content
sniffer. Where names overlap the lowest `priority` wins (`metrics.csv` is Lightning's before `*.csv` is
Keras'). `readers/__init__` imports every reader module, so the registry is complete on import.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from types import MappingProxyType


@dataclass(frozen=True)
class Sniffer:
    """A look at the content of files named `patterns`: `test(path)` is True when the file is this format."""

    patterns: tuple[str, ...]
    test: Callable[[str], bool]
    in_folders: bool = False  # also while walking a folder, not only for a file the user names


@dataclass(frozen=True)
class Reader:
    id: str
    read: Callable  # read(path, **options) -> LogFile; `options` names the read_log options it takes
    patterns: tuple[str, ...]  # file names, fnmatch-style and case-sensitive
    sniffer: Sniffer | None = None
    priority: int = 50
    options: tuple[str, ...] = ()  # verify_crc, prefix
    shown: str = ""  # how messages name the files it reads (default: its patterns)
    offset_unit: str = "line"  # what a ReadIssue offset counts
    parts: Callable | None = None  # parts(path) -> [(key, label)]: one file holding several runs (mlflow.db)
    tail: Callable | None = None  # tail(state) -> bool: what was appended since the last call (None: read whole
    # again when the file changed, for formats rewritten whole)

    def matches(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.patterns)

    def sniffs(self, name: str, in_folder: bool) -> bool:
        sniffer = self.sniffer
        return bool(sniffer and (sniffer.in_folders or not in_folder) and
                    any(fnmatchcase(name, pattern) for pattern in sniffer.patterns))


_READERS: dict[str, Reader] = {}
READERS = MappingProxyType(_READERS)  # format id -> Reader, in registration order; read-only


def register_reader(id: str, *, patterns: tuple[str, ...], sniffer: Sniffer | None = None, priority: int = 50,
                    options: tuple[str, ...] = (), shown: str = "", offset_unit: str = "line",
                    parts: Callable | None = None, tail: Callable | None = None):
    """Decorator: make a function the reader of format `id`; a duplicate id raises. `parts` is for a file
    holding several runs: each (key, label) it lists becomes a run, read with `part=key`. `tail(state)` reads
    what was appended to the file since the last call into `state` (readers.incremental.TailState), a
    half-written record waited for; True when it brought points or issues."""

    def decorator(read: Callable) -> Callable:
        if id in _READERS:
            raise ValueError(f"log reader id {id!r} is registered twice")
        _READERS[id] = Reader(id, read, tuple(patterns), sniffer, priority, tuple(options),
                              shown or ", ".join(patterns), offset_unit, parts, tail)
        return read

    return decorator


def readers() -> tuple[Reader, ...]:
    """Every reader in the order names are matched (priority, then registration order)."""
    order = {id: index for index, id in enumerate(_READERS)}
    return tuple(sorted(_READERS.values(), key=lambda r: (r.priority, order[r.id])))


def format_of(name: str) -> str | None:
    """The log format a file name implies, or None when no reader claims the name."""
    return next((reader.id for reader in readers() if reader.matches(name)), None)


def sniff(path: str, name: str, *, in_folder: bool) -> str | None:
    """The format a file's content shows, for names no pattern claims (`training.log`, `run.json`)."""
    return next((reader.id for reader in readers() if reader.sniffs(name, in_folder) and reader.sniffer.test(path)),
                None)


def could_be_log(name: str) -> bool:
    """Whether a file of this name may be read as a log: a pattern claims it, or a sniffer would look."""
    return any(reader.matches(name) or reader.sniffs(name, in_folder=False) for reader in readers())


def looked_for() -> str:
    """What discovery looks for, for messages that found nothing."""
    return ", ".join(reader.shown for reader in readers())
