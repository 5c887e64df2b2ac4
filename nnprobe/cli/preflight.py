"""What every command checks before any work, without importing torch (a mistake costs well under a
second): every input path through the one input guard and every output through the one output guard, both
enumerated from the verb's option fields (nnprobe.options.verbs); how the work is set up (rank, workers,
threads, progress); and how every command ends (report, why a gate failed, exit code).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import click

from nnprobe.errors import ExitCode, UsageError
from nnprobe.io import (STDOUT, check_input, check_input_folder, check_writable_file, refuse_out_among_inputs,
                        refuse_overwriting_inputs)
from nnprobe.options.base import Options, PathKind
from nnprobe.options.verbs import VERBS, fields
from nnprobe.report.escaping import one_line


def model_input_files(*specs: Any) -> list[str]:
    """The files a --model / --weights spec reads: the path itself, or the file of `path/file.py:function`."""
    files = []
    for spec in specs:
        if not isinstance(spec, str) or not spec:
            continue
        if os.path.lexists(spec):
            files.append(spec)
        elif ":" in spec and os.path.lexists(spec.rsplit(":", 1)[0]):
            files.append(spec.rsplit(":", 1)[0])
    return files


def resolve_data(data: Any) -> Any:
    """The data folder from DATA / --data, else the bundled samples when they are here."""
    from nnprobe.api import bundled_samples  # torch-free module

    if data is not None and hasattr(data, "folders"):  # several named data sets: each must be a folder
        for folder in data.folders:
            resolve_data(folder)
        return data
    if data is not None and not isinstance(data, str):
        return data
    if data:
        if not os.path.isdir(data):
            raise UsageError(f"Data folder {data} does not exist or is not a folder.")
        return data
    if not os.path.isdir(bundled_samples()):
        raise UsageError("No data folder given and the bundled samples are not here (they ship in the source "
                         "tree): pass --data DIR.")
    return bundled_samples()


def _values(value: Any) -> list:
    if value is None:
        return []
    if hasattr(value, "folders"):  # options.data.DataSets
        return list(value.folders)
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _result_files(path: str) -> list[str]:
    from nnprobe.api import result_files  # torch-free

    return result_files(path)


def _is_run(path: str) -> bool:
    from nnprobe.api import is_run  # torch-free

    return is_run(path)


def guard_run(value: str, what: str) -> None:
    """The one guard of a training run, wherever one is given (diagnose's PATH and --baseline, compare's two
    sides): a bucket URL or a folder passes here (the readers open each log through the remote layer or the
    input guard, each with its format's cap); one log file goes through the input guard as a log (its cap is
    its reader's); one not there yet is the reader's to report (diagnose) or to wait for (follow --wait)."""
    if "://" not in value and not os.path.isdir(value) and os.path.lexists(value):
        check_input(value, what, "log")


def checked_inputs(verb: str, options: Mapping[str, Options]) -> tuple[list[str], list[tuple[str, str]]]:
    """Every input path of the verb through the one input guard (exit 2 before any work for a FIFO, a
    device, a folder, a symlink loop, a file over its kind's cap): the files read and the folders read."""
    files: list[str] = []
    folders: list[tuple[str, str]] = []
    for key, name, spec in fields(VERBS[verb]):
        for value in _values(getattr(options[key], name)):
            if not isinstance(value, (str, os.PathLike)):
                continue
            value = os.fspath(value)
            what = spec.what or spec.flag
            if spec.path == PathKind.INPUT_FOLDER:
                if spec.input_kind == "log":
                    guard_run(value, what if what != spec.flag else "Run")
                else:
                    check_input_folder(value, what)
                    folders.append((what, value))
            elif spec.path == PathKind.INPUT and spec.maybe_name:
                for path in model_input_files(value):
                    check_input(path, what if path == value else f"{what} {value}: the file", spec.input_kind)
                    files.append(path)
            elif spec.path == PathKind.INPUT:
                if spec.remote_ok and "://" in value:
                    continue  # a bucket object: fetched through diagnose's remote layer, with its caps
                if spec.run_ok and ("://" in value or _is_run(value)):  # a run, guarded as diagnose's are
                    guard_run(value, what)
                    files += [] if "://" in value else _result_files(value) if os.path.isdir(value) else [value]
                    continue
                check_input(value, what, spec.input_kind or "labels")
                files += _result_files(value) if spec.input_kind == "result" else [value]
    return files, folders


def output_paths(verb: str, options: Mapping[str, Options], plots: Mapping[str, str] | None = None) -> dict:
    """Every file the verb writes, by the name a guard reports it under; `plots` replaces --plot's entry
    when the verb writes several files under it."""
    outputs: dict[str, str] = {}
    for key, name, spec in fields(VERBS[verb]):
        value = getattr(options[key], name)
        if spec.path == PathKind.OUTPUT and value is not None:
            outputs[spec.flag] = value
    if plots is not None:
        outputs.pop("--plot", None)
        outputs.update(plots)
    return outputs


def guard_outputs(outputs: Mapping[str, str | None], *, files: Iterable[str | None] = (),
                  folders: Iterable[tuple[str, str | None]] = ()) -> None:
    """Each output can be written, and none resolves to an input (exit 2 before any work otherwise)."""
    for option, path in outputs.items():
        check_writable_file(option, path)
    refuse_overwriting_inputs(dict(outputs), files=list(files), folders=list(folders))


def guard_verb(verb: str, options: dict[str, Options], *, plots: Mapping[str, str] | None = None) -> dict:
    """Before any work: the data folder resolved, every input through the input guard, every output through
    the output guard (writable, never an input, never inside the data set) and $GITHUB_STEP_SUMMARY with
    them. Returns the options with the data folder filled in."""
    options = dict(options)
    if "shard" in options:  # {shard} in -o and --save-predictions: one name per slice
        from nnprobe.options.parts import part_name

        shard = options["shard"].shard
        report, per_sample = options["report"], options.get("per_sample")
        if report.output:
            options["report"] = dataclasses.replace(report, output=part_name(report.output, shard))
        if per_sample is not None and per_sample.save_predictions:
            options["per_sample"] = dataclasses.replace(
                per_sample, save_predictions=part_name(per_sample.save_predictions, shard))
    if "data" in options and verb in ("eval", "robust", "corruptions"):
        options["data"] = dataclasses.replace(options["data"], data=resolve_data(options["data"].data))
    files, folders = checked_inputs(verb, options)
    outputs = output_paths(verb, options, plots)
    guard_outputs(outputs, files=files, folders=folders)
    for key, name, spec in fields(VERBS[verb]):  # fool --out: not among the inputs, nor in their data set
        if spec.path == PathKind.OUTPUT_FOLDER and getattr(options[key], name) is not None:
            refuse_out_among_inputs(spec.flag, getattr(options[key], name), files)
    options["report"] = with_step_summary(options["report"], outputs, files, folders)
    return options


def with_step_summary(report, outputs: Mapping[str, str], files: list[str], folders) -> Any:
    """$GITHUB_STEP_SUMMARY when no --format was given (the table went out), unless -o is that very file
    (then the user chose what it holds): checked by the output guard now, with the command's own inputs and
    outputs; an unusable one is one warning and the report still goes to -o."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    output = report.output
    if not path or not report.summary_wanted:
        return report
    if output and output != STDOUT and os.path.realpath(output) == os.path.realpath(path):
        return report
    from nnprobe.io import check_appendable

    try:
        check_appendable("$GITHUB_STEP_SUMMARY", path)
        others = {k: v for k, v in outputs.items() if k != "-o" or v != path}
        refuse_overwriting_inputs({"$GITHUB_STEP_SUMMARY": path}, files=[*files, *others.values()],
                                  folders=folders)
    except UsageError as exc:
        click.echo(one_line(f"warning: not appending the summary: {exc}"), err=True)
        return report
    return dataclasses.replace(report, step_summary=path)


@dataclass(frozen=True)
class Work:
    progress: Any
    is_main: bool  # rank 0 under torchrun (or the only process): the one that reports
    workers: int


@contextlib.contextmanager
def working(label: str, options: dict[str, Options] | None = None, *, workers: int | None = None):
    """This rank, its data-loader workers (default: available CPUs - 1), torch's threads sized not to
    oversubscribe them (restored afterwards), and a progress bar on rank 0's terminal. Yields the work and
    the options with the workers filled in."""
    from nnprobe.api import process_setup
    from nnprobe.report.progress import progress_bar

    options = dict(options or {})
    loader = options.get("loader")
    if loader is not None:
        workers = loader.workers
    threads = options["device"].threads if "device" in options else None
    quiet = any(getattr(options.get(key), "quiet", False) for key in ("scale", "quiet"))
    with process_setup(threads, workers) as (is_main, workers):
        if loader is not None:
            options["loader"] = dataclasses.replace(loader, workers=workers)
        with progress_bar(label, enabled=is_main, quiet=quiet) as progress:
            yield Work(progress, is_main, workers), options


def launched(options: Mapping[str, Options], verb: str | None = None) -> int | None:
    """--nproc N: start N local workers running this same command (each sees the launcher's variables and
    runs as one rank) and return their exit code; None without --nproc N > 1 or inside a worker, where the
    command runs as a rank. The data folder and the `verb`'s inputs are checked here first: every rank would
    refuse them alike, and a rank other than 0 (which says nothing) could end first and have the launcher
    stop rank 0 before its sentence."""
    from nnprobe.api import in_local_worker, local_workers

    nproc = options["scale"].nproc if "scale" in options else None
    if nproc is None or nproc <= 1:
        return None
    if verb is not None and not in_local_worker():
        checked_inputs(verb, dict(options, data=dataclasses.replace(options["data"],
                                                                    data=resolve_data(options["data"].data))))
    from nnprobe.cli import ARGV
    from nnprobe.cli.stdout import lent_to_children

    with lent_to_children():
        outcome = local_workers(nproc, ARGV)
    if outcome is None:
        return None
    code, sentence = outcome
    if sentence:
        click.echo(one_line(f"Error: {sentence}"), err=True)
    return code


def why_failed(result: Any, limit: int = 20) -> list[str]:
    """One line per failed gate or finding, from the report's JUnit cases (the same words in every format)."""
    from nnprobe.report.junit import junit_cases

    failed = [case for case in junit_cases(result) if case.status == "failed"]
    lines = [one_line(f"failed: {case.name}: {case.message}".rstrip(": ")) for case in failed[:limit]]
    if len(failed) > limit:
        lines.append(f"failed: ... and {len(failed) - limit} more (see the report)")
    return lines


def finish(result: Any, report, *, passed: bool) -> ExitCode:
    """Write the report (and the step summary the guard accepted), say on stderr why it failed (whatever
    the format), return the exit code."""
    from nnprobe.cli.stdout import report_stream
    from nnprobe.report import emit

    emit(result, report.fmt, report.output, stdout=report_stream())
    if report.step_summary:
        from nnprobe.report.github import append_step_summary

        problem = append_step_summary(result, report.step_summary)
        if problem:
            click.echo(one_line(f"note: could not append the summary to $GITHUB_STEP_SUMMARY "
                                f"({report.step_summary}): {problem}"), err=True)
    if passed:
        return ExitCode.OK
    for line in why_failed(result):
        click.echo(line, err=True)
    return ExitCode.GATE_FAILED


def notes(lines: Iterable[str]) -> None:
    for note in filter(None, lines):
        click.echo(one_line(f"note: {note}"), err=True)
