"""`nnprobe diagnose PATH`: judge a training run from its logs; exit 1 when a finding reaches --fail-on.

Thin: parse options, call `nnprobe.api.diagnose`, render, return the exit code. Imports no torch.
"""
from __future__ import annotations

import os

import click

from nnprobe.cli.options import command_options
from nnprobe.cli.preflight import checked_inputs, finish, guard_outputs, output_paths, with_step_summary
from nnprobe.errors import UsageError
from nnprobe.io import STDOUT
from nnprobe.options.verbs import DIAGNOSE
from nnprobe.report.escaping import one_line


@click.command("diagnose", short_help="Judge a training run from its logs: NaN loss, chance accuracy, overfitting ...")
@command_options(DIAGNOSE)
def command(**options) -> None:
    """Read a training run's logs (TensorBoard, Lightning/Keras CSV, HF trainer_state.json, JSON lines)
    and report what went wrong: non-finite loss, chance accuracy, constant prediction, overfitting, and more.

    PATH is a run folder, a folder of runs (each version_N is one run) or one log file; several PATHs
    (`runs/*`) are diagnosed together, with a summary table across the runs first.

    With --model and --data it also runs the model on the images and measures how its answers spread
    over classes (a constant predictor is an error). Torch is imported only then.

    Exit codes: 0 no finding reached --fail-on, 1 one did, 2 unreadable input or bad option.
    """
    from nnprobe import api

    if options["follow"].follow:
        _follow(options)
        return
    if options["follow"].kill_pid is not None:
        raise UsageError("--kill-on-error works with --follow only: it stops a run that is being watched.")
    run, report, plot = options["diagnose"].run, options["report"], options["plot"].plot
    files, folders = checked_inputs("diagnose", options)
    logs = [f for path in run for f in api.run_logs(path, options["diagnose"].timeout)]
    guard_outputs(output_paths("diagnose", options), files=[*logs, *files], folders=folders)
    for path in run:
        _refuse_report_named_like_a_log(path, report.output)
    _refuse_plot_folder(plot, run, logs)
    options["report"] = with_step_summary(report, output_paths("diagnose", options), [*logs, *files], folders)
    result = api.diagnose_with(options)
    counted(result, report)
    if plot:
        from nnprobe.report.diagnose_plots import write_diagnose_plots

        written = write_diagnose_plots(result, plot)
        where = f"to {plot}" + (" and beside it" if len(written) > 1 else "") if plot in written else f"beside {plot}"
        click.echo(one_line(f"diagnose: wrote {len(written)} plot(s) {where}"), err=True)
    click.get_current_context().exit(gated(result, options["report"]))


def counted(result, report) -> None:
    """The finding counts on stderr when the report goes elsewhere than a table on stdout."""
    if report.output or report.fmt != "table":
        counts = result.counts()
        click.echo(f"diagnose: {counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info "
                   f"in {len(result.runs)} run(s)", err=True)


def gated(result, report) -> int:
    """The report written, a failed --baseline gate said, the exit code (diagnose, and compare of two runs)."""
    for gate in result.comparison.gates if result.comparison is not None else ():
        if not gate.passed:  # said here: the findings' own lines do not cover a gate set by --baseline
            click.echo(one_line(f"failed: --baseline {gate.name}: {gate.message}"), err=True)
    return finish(result, report, passed=not result.failed)


def _follow(options: dict) -> None:
    """--follow: one run watched until an error (exit 1) or its end (exit 0); progress on stderr."""
    probe, report = options["probe"], options["report"]
    if any(value is not None for value in (probe.model, options["diagnose"].baseline, options["plot"].plot,
                                           report.output)):
        raise UsageError("--follow does not combine with --model, --baseline, --plot or -o; run diagnose "
                         "again on the finished run for those.")
    watched(options, "diagnose")


def watched(options: dict, verb: str) -> None:
    """Follow one run (its paths through the input guard first), say why it stopped, report (json) and exit:
    1 at an error, else 0."""
    import json

    from nnprobe import api

    files, folders = checked_inputs(verb, options)
    report = options["report"]
    logs = [f for path in options["diagnose"].run if "://" not in path for f in api.run_logs(path)]
    guard_outputs(output_paths(verb, options), files=[*logs, *files], folders=folders)
    if report.fmt == "html":
        raise UsageError(f"{verb} writes no HTML page (it watches a run and reports in JSON); run `nnprobe diagnose "
                         "RUN --format html` on the finished run for the page.")
    if report.output is not None and report.fmt != "json":
        raise UsageError("-o takes follow's report as --format json (the table goes to stderr as it runs).")
    result = api.follow_with(options, progress=lambda line: click.echo(line, err=True))
    click.echo(f"diagnose --follow: {result.reason}", err=True)
    if report.fmt == "json" and report.output not in (None, STDOUT):
        from nnprobe.io import atomic_write_text

        atomic_write_text(report.output, json.dumps(result.to_dict(), indent=2) + "\n")
    elif report.fmt == "json":
        from nnprobe.cli.stdout import report_stream

        click.echo(json.dumps(result.to_dict(), indent=2), file=report_stream())
    click.get_current_context().exit(1 if result.status == "error" else 0)


def _refuse_plot_folder(plot: str | None, paths: tuple[str, ...], logs: list[str]) -> None:
    """With several runs the figures go beside --plot FILE (FILE-stem.<run>.suffix): that folder may not be
    inside a run folder (the PNGs would sit among the logs) nor the folder a given run or log sits in (the
    next `diagnose runs/*` would take them for runs). FILE itself passed the output guard."""
    from nnprobe.io import refuse_output_folder

    if plot is None:
        return
    folder = os.path.dirname(os.path.abspath(plot))
    refuse_output_folder("--plot", folder, inputs=[*paths, *logs],
                         data_sets=[("run folder", p) for p in paths if os.path.isdir(p)])


def _refuse_report_named_like_a_log(run: str, output: str | None) -> None:
    """A report written into the run folder under a log's name would be read back as a log by the next
    `diagnose` (a JSON report is sniffed as JSON lines and then fails as unreadable)."""
    from nnprobe.api import looks_like_log

    if not output or output == STDOUT or not os.path.isdir(run):
        return
    target, folder = os.path.realpath(output), os.path.realpath(run)
    name = os.path.basename(target)
    if target.startswith(folder + os.sep) and looks_like_log(name):
        raise UsageError(f"-o {output} would be read as a log of the run {run} next time; write the report "
                         "outside the run folder.")
