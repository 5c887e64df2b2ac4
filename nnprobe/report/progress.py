"""Progress bars on stderr, only when stderr is a terminal (quiet in CI and in pipes)."""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

ProgressCallback = Callable[[int, int], None]  # (done, total)


def _wanted() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


@contextlib.contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[ProgressCallback | None]:
    if not (enabled and _wanted()):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
