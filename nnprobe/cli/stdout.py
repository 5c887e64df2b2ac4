"""stdout belongs to the report: while a command runs, anything else written to stdout (a model factory's
`print`, a C library writing to fd 1) goes to stderr, and the report goes to the real stdout.

By construction, not by asking third-party code to behave: Python's `sys.stdout` points at stderr, and
file descriptor 1 is a duplicate of 2, for the duration of the command; the report is written to a
private duplicate of the original fd 1.
"""
from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO

_report: list[IO[str]] = []  # the stream of the command running now (a stack: commands may nest in tests)


def report_stream() -> IO[str]:
    """Where the report goes: the real stdout of the running command, or sys.stdout outside one."""
    return _report[-1] if _report else sys.stdout


def _flush_c_stdio() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):
        pass


def _real_fd(stream) -> int | None:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None  # a capture object (pytest capsys, click's CliRunner): there is no fd to guard
    return fd if fd == 1 else None


@contextlib.contextmanager
def stdout_reserved_for_report() -> Iterator[IO[str]]:
    real = sys.stdout
    fd = _real_fd(real)
    saved = None
    report: IO[str] = real
    if fd is not None:
        real.flush()
        saved = os.dup(1)
        try:
            os.dup2(2, 1)  # fails only when stderr is closed: then stray writes stay where they were
        except OSError:
            os.close(saved)
            saved = None
        else:
            report = os.fdopen(os.dup(saved), "w", encoding=getattr(real, "encoding", None) or "utf-8",
                               errors="replace", closefd=True)
    _report.append(report)
    sys.stdout = sys.stderr
    try:
        yield report
    finally:
        _report.pop()
        sys.stdout = real
        try:
            report.flush()
        finally:
            if saved is not None:
                try:
                    sys.stderr.flush()
                    _flush_c_stdio()  # C code's buffered stdout goes where it was written: stderr
                    os.dup2(saved, 1)
                finally:
                    os.close(saved)
                    report.close()


@contextlib.contextmanager
def lent_to_children() -> Iterator[None]:
    """While child processes are started (--nproc workers), fd 1 is the report stream again, so that rank 0's
    report reaches the real stdout; this process writes nothing meanwhile."""
    try:
        fd = report_stream().fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        fd = None
    if fd is None or fd == 1:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(1)
    try:
        os.dup2(fd, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def reserving_stdout(callback: Callable) -> Callable:
    """Wrap a command's callback so that it runs with stdout reserved for its report (help and usage
    errors, printed before the callback, still go to the real stdout)."""

    @functools.wraps(callback)
    def run(*args, **kwargs):
        with stdout_reserved_for_report():
            return callback(*args, **kwargs)

    run.__nnprobe_reserved__ = True
    return run
