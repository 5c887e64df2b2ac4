"""What every command checks before any work, without importing torch (a mistake costs well under a
second), how the work is set up (rank, workers, threads, progress), and how every command ends (report,
why a gate failed, exit code).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import click

from nnprobe.errors import ExitCode, UsageError
from nnprobe.io import check_writable_file, refuse_overwriting_inputs


def model_input_files(*specs: str | None) -> list[str]:
    """The files a --model / --weights spec reads: the path itself, or the file of `path/file.py:function`."""
    files = []
    for spec in specs:
        if not spec:
            continue
        if os.path.lexists(spec):
            files.append(spec)
        elif ":" in spec and os.path.lexists(spec.rsplit(":", 1)[0]):
            files.append(spec.rsplit(":", 1)[0])
    return files


def guard_outputs(outputs: dict[str, str | None], *, files: Iterable[str | None] = (),
                  folders: Iterable[tuple[str, str | None]] = ()) -> None:
    """Each output can be written, and none resolves to an input (exit 2 before any work otherwise)."""
    for option, path in outputs.items():
        check_writable_file(option, path)
    refuse_overwriting_inputs(outputs, files=list(files), folders=list(folders))


def guard_data_outputs(outputs: dict[str, str | None], *, data: str, model: str | None, weights: str | None,
                       labels_file: str | None = None, devkit: str | None = None,
                       class_map: str | None = None, inputs: Iterable[str | None] = ()) -> None:
    """eval and robust: no output onto the model, the label files (and other `inputs`), or anywhere inside
    the data set (where it would replace an image or be read back as one next time)."""
    guard_outputs(outputs, files=[*model_input_files(model, weights), labels_file, class_map, *inputs],
                  folders=[("data set", data), ("devkit", devkit)])


def existing_files(paths: Iterable[str], what: str = "Image") -> list[str]:
    paths = list(paths)
    for path in paths:
        if not os.path.lexists(path):
            raise UsageError(f"{what} {path} does not exist.")
    return paths


@dataclass(frozen=True)
class Work:
    progress: Any
    is_main: bool  # rank 0 under torchrun (or the only process): the one that reports
    workers: int


@contextlib.contextmanager
def working(label: str, threads: int | None, workers: int | None):
    """This rank, its data-loader workers (default: available CPUs - 1), torch's threads sized not to
    oversubscribe them (restored afterwards), and a progress bar on rank 0's terminal."""
    from nnprobe import distributed
    from nnprobe.device import cpu_threads, default_workers
    from nnprobe.report.progress import progress_bar

    is_main = distributed.from_env().is_main
    workers = default_workers() if workers is None else workers
    ctx = click.get_current_context(silent=True)
    quiet = bool(ctx and ctx.meta.get("nnprobe.quiet"))
    with cpu_threads(threads, workers), progress_bar(label, enabled=is_main, quiet=quiet) as progress:
        yield Work(progress, is_main, workers)


def launched(nproc: int) -> int | None:
    """--nproc N: start N local workers running this same command (each sees the launcher's variables and
    runs as one rank) and return their exit code; None inside a worker, where the command runs as a rank."""
    import os

    from nnprobe import distributed
    from nnprobe.cli import ARGV
    from nnprobe.cli.stdout import lent_to_children
    from nnprobe.launch import WORKER_VARIABLE, run_workers

    if os.environ.get(WORKER_VARIABLE):
        return None
    if distributed.from_env().enabled:
        raise UsageError("--nproc under torchrun: give one or the other (torchrun's --nproc_per_node already "
                         "starts the workers).")
    with lent_to_children():
        return run_workers(nproc, ARGV)


def why_failed(result: Any, limit: int = 20) -> list[str]:
    """One line per failed gate or finding, from the report's JUnit cases (the same words in every format)."""
    from nnprobe.report.junit import junit_cases

    failed = [case for case in junit_cases(result) if case.status == "failed"]
    from nnprobe.report.escaping import one_line

    lines = [one_line(f"failed: {case.name}: {case.message}".rstrip(": ")) for case in failed[:limit]]
    if len(failed) > limit:
        lines.append(f"failed: ... and {len(failed) - limit} more (see the report)")
    return lines


def step_summary_path(output: str | None) -> str | None:
    """$GITHUB_STEP_SUMMARY when --format was not given (the table went out), unless -o is that very file
    (then the user chose what it holds): the markdown summary is appended there too."""
    from click.core import ParameterSource

    from nnprobe.io import STDOUT

    path = os.environ.get("GITHUB_STEP_SUMMARY")
    context = click.get_current_context(silent=True)
    if not path or context is None or context.get_parameter_source("fmt") is not ParameterSource.DEFAULT:
        return None
    if output and output != STDOUT and os.path.realpath(output) == os.path.realpath(path):
        return None
    return path


def finish(result: Any, fmt: str, output: str | None, *, passed: bool) -> ExitCode:
    """Write the report (and the step summary, see `step_summary_path`), say on stderr why it failed
    (whatever the format), return the exit code."""
    from nnprobe.cli.stdout import report_stream
    from nnprobe.report import emit

    emit(result, fmt, output, stdout=report_stream())
    summary = step_summary_path(output)
    if summary:
        from nnprobe.report.github import append_step_summary

        problem = append_step_summary(result, summary)
        if problem:
            from nnprobe.report.escaping import one_line

            click.echo(one_line(f"note: could not append the summary to $GITHUB_STEP_SUMMARY ({summary}): {problem}"),
                       err=True)
    if passed:
        return ExitCode.OK
    for line in why_failed(result):
        click.echo(line, err=True)
    return ExitCode.GATE_FAILED
