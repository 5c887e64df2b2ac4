"""Progress on stderr, for people and for CI logs.

- On a terminal (and not under CI=...): a rich bar with its total known from the start (done/total, ETA).
- Anywhere else (a CI log, a pipe, a file): a plain line at most every `interval` seconds (30 by default),
  `eval: 1,200/50,000 (2.4%), 85.3/s, ETA 9m32s`, and one final line, `eval: 50,000/50,000 in 9m48s,
  85.0/s`, so a long job shows it is alive without flooding the log.
- Work that raises gets no final line (it would look complete); its error says what happened.
- `quiet` (the CLI's --quiet) or a rank other than 0 under torchrun: nothing.
The callback takes (done, total); the core calls it and never formats.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

ProgressCallback = Callable[[int, int], None]  # (done, total)
INTERVAL = 30.0  # seconds between two plain lines


def _terminal(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("CI")


def duration(seconds: float) -> str:
    """3s, 4m05s, 2h03m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class PlainLines:
    """The non-terminal progress: a line at most every `interval` seconds and a final one."""

    def __init__(self, label: str, stream: TextIO, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.stream, self.interval, self.clock = label, stream, interval, clock
        self.start = self.last = clock()
        self.done = self.total = 0
        self.updated = False

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total, self.updated = done, total, True
        now = self.clock()
        if now - self.last >= self.interval and done < total:
            self.last = now
            self._say(self._line(now))

    def _rate(self, now: float) -> float:
        return self.done / (now - self.start) if now > self.start else 0.0

    def _line(self, now: float) -> str:
        rate = self._rate(now)
        share = f" ({100 * self.done / self.total:.1f}%)" if self.total else ""
        eta = f", ETA {duration((self.total - self.done) / rate)}" if rate and self.total > self.done else ""
        return f"{self.label}: {self.done:,}/{self.total:,}{share}, {rate:,.1f}/s{eta}"

    def close(self) -> None:
        if self.updated:
            now = self.clock()
            self._say(f"{self.label}: {self.done:,}/{self.total:,} in {duration(now - self.start)}, "
                      f"{self._rate(now):,.1f}/s")

    def _say(self, line: str) -> None:
        try:
            print(line, file=self.stream, flush=True)
        except (OSError, ValueError):  # stderr closed (2>&-): progress is the first thing to give up
            pass


@contextlib.contextmanager
def progress_bar(description: str, enabled: bool = True, quiet: bool = False, stream: TextIO | None = None,
                 interval: float = INTERVAL) -> Iterator[ProgressCallback | None]:
    stream = sys.stderr if stream is None else stream
    if not enabled or quiet or stream is None:
        yield None
        return
    if not _terminal(stream):
        lines = PlainLines(description, stream, interval)
        yield lines
        lines.close()  # not reached when the work raised: a stopped run gets no line that looks complete
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(file=stream), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
