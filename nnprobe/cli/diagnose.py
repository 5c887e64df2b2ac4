"""`nnprobe diagnose PATH`: judge a training run from its logs; exit 1 when a finding reaches --fail-on.

Thin: parse options, call `nnprobe.api.diagnose`, render, return the exit code. Imports no torch.
"""
from __future__ import annotations

import os

import click

from nnprobe.cli.options import COUNT, checked_device, report_options
from nnprobe.cli.preflight import finish, guard_outputs, model_input_files
from nnprobe.errors import UsageError
from nnprobe.io import STDOUT
from nnprobe.report.escaping import one_line


@click.command("diagnose", short_help="Judge a training run from its logs: NaN loss, chance accuracy, overfitting ...")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--num-classes", type=click.IntRange(min=2), default=None,
              help="Number of classes K (chance level 1/K, first loss ~ ln K). Default: hparams.yaml or "
                   "config.json, else inferred from a first loss logged at init.")
@click.option("--metric", "metrics", multiple=True, metavar="ROLE=NAME",
              help="Use series NAME for ROLE (train_loss, val_loss, train_acc, val_acc, lr, grad_norm). "
                   "Repeatable.")
@click.option("--fail-on", type=click.Choice(["error", "warning", "never"]), default="error", show_default=True,
              help="Exit 1 when a finding reaches this severity.")
@click.option("--no-crc", is_flag=True, help="Skip CRC verification of event-file records (faster).")
@click.option("--model", default=None, metavar="SPEC",
              help="Also probe this model's predictions on --data (any nnprobe eval --model spec).")
@click.option("--weights", default=None, metavar="ENUM|PATH", help="Weights for --model (as in nnprobe eval).")
@click.option("--arch", default=None, metavar="NAME", help="Architecture for a state-dict --model.")
@click.option("--trust-pickle", is_flag=True, help="Allow full unpickling of --model (runs code).")
@click.option("--data", type=click.Path(), default=None, help="Labelled image folder for the --model probe.")
@click.option("--limit", type=COUNT, default=None, help="Probe at most N images (evenly spaced).")
@click.option("--device", default="auto", show_default=True, callback=checked_device,
              help="Device for the --model probe.")
@click.option("--baseline", default=None, metavar="RUN|JSON",
              help="Compare with this run folder (or diagnose JSON): findings new or gone, metric deltas, where "
                   "the validation loss rises above the baseline's. A new error finding fails (exit 1).")
@click.option("--plot", default=None, metavar="DIR",
              help="Write DIR/<run>.png per run: loss and accuracy curves, NaN points, findings and the best "
                   "epoch marked (matplotlib).")
@click.option("--timeout", type=click.FloatRange(min=0.1, max=3600), default=20.0, show_default=True,
              metavar="SECONDS", help="Connect and read timeout of each request to a remote store (s3:// ...); a "
                                      "refused or silent endpoint is not retried.")
@click.option("--follow", is_flag=True,
              help="Watch a live run: read appended records every --poll seconds; exit 1 at the first NaN, "
                   "negative or diverging loss (naming its step), 0 when the run ends (docs/diagnose.md).")
@click.option("--poll", type=click.FloatRange(min=0.05), default=2.0, show_default=True, metavar="SECONDS",
              help="With --follow: seconds between reads.")
@click.option("--idle", type=click.FloatRange(min=0), default=300.0, show_default=True, metavar="SECONDS",
              help="With --follow: the run has ended after this long without new data.")
@click.option("--wait", type=click.FloatRange(min=0), default=300.0, show_default=True, metavar="SECONDS",
              help="With --follow: wait this long for PATH and its first log to appear (a follower started before "
                   "the run); then exit 2.")
@click.option("--kill-on-error", "kill_pid", type=int, default=None, metavar="PID",
              help="With --follow: send SIGTERM to exactly this process (not its group or children) when an "
                   "error is found. PID <= 1, nnprobe itself and every process that started it are refused.")
@report_options
def command(paths: tuple[str, ...], num_classes: int | None, metrics: tuple[str, ...], fail_on: str, no_crc: bool,
            model: str | None, weights: str | None, arch: str | None, trust_pickle: bool, data: str | None,
            limit: int | None, device: str, baseline: str | None, plot: str | None, follow: bool, poll: float,
            idle: float, wait: float, kill_pid: int | None, timeout: float, fmt: str, output: str | None) -> None:
    """Read a training run's logs (TensorBoard, Lightning/Keras CSV, HF trainer_state.json, JSON lines)
    and report what went wrong: non-finite loss, chance accuracy, constant prediction, overfitting, and more.

    PATH is a run folder, a folder of runs (each version_N is one run) or one log file; several PATHs
    (`runs/*`) are diagnosed together, with a summary table across the runs first.

    With --model and --data it also runs the model on the images and measures how its answers spread
    over classes (a constant predictor is an error). Torch is imported only then.

    Exit codes: 0 no finding reached --fail-on, 1 one did, 2 unreadable input or bad option.
    """
    from nnprobe import api
    from nnprobe.cli.compare import baseline_files
    from nnprobe.diagnosis import log_files

    if (model is None) != (data is None):
        raise UsageError("--model and --data go together: the probe runs the model on the labelled images.")
    if follow or kill_pid is not None:
        _follow(paths, follow, (poll, idle, wait), kill_pid, num_classes, metrics, fail_on, no_crc,
                (model, baseline, plot, output), fmt)
        return
    logs = [f for path in paths for f in log_files(path, timeout=timeout)]
    guard_outputs({"-o": output}, files=[*logs, *model_input_files(model, weights), *baseline_files(baseline)],
                  folders=[("data set", data)])
    for path in paths:
        _refuse_report_named_like_a_log(path, output)
    _refuse_plot_folder(plot, paths, logs)
    result = api.diagnose(list(paths) if len(paths) > 1 else paths[0], baseline=baseline, model=model, data=data,
                          num_classes=num_classes, metric=list(metrics), fail_on=fail_on, no_crc=no_crc, limit=limit,
                          device=device, weights=weights, arch=arch, trust_pickle=trust_pickle, timeout=timeout)
    if output or fmt != "table":
        counts = result.counts()
        click.echo(f"diagnose: {counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info "
                   f"in {len(result.runs)} run(s)", err=True)
    if plot:
        from nnprobe.report.diagnose_plots import write_diagnose_plots

        written = write_diagnose_plots(result, plot)
        click.echo(one_line(f"diagnose: wrote {len(written)} plot(s) to {plot}"), err=True)
    for gate in result.comparison.gates if result.comparison is not None else ():
        if not gate.passed:  # said here: the findings' own lines do not cover a gate set by --baseline
            click.echo(one_line(f"failed: --baseline {gate.name}: {gate.message}"), err=True)
    click.get_current_context().exit(finish(result, fmt, output, passed=not result.failed))


def _follow(paths: tuple[str, ...], follow: bool, timing: tuple[float, float, float], kill_pid: int | None,
            num_classes: int | None, metrics: tuple[str, ...], fail_on: str, no_crc: bool, others: tuple,
            fmt: str) -> None:
    """--follow: one run watched until an error (exit 1) or its end (exit 0); progress on stderr."""
    import json

    from nnprobe.diagnosis.follow import follow as follow_run

    if not follow:
        raise UsageError("--kill-on-error works with --follow only: it stops a run that is being watched.")
    if len(paths) != 1:
        raise UsageError(f"--follow watches one run; got {len(paths)} paths.")
    if any(value is not None for value in others):
        raise UsageError("--follow does not combine with --model, --baseline, --plot or -o; run diagnose "
                         "again on the finished run for those.")
    poll, idle, wait = timing
    result = follow_run(paths[0], poll=poll, idle=idle, wait=wait, num_classes=num_classes,
                        metric_overrides=list(metrics),
                        fail_on=fail_on, verify_crc=not no_crc, kill_pid=kill_pid,
                        progress=lambda line: click.echo(one_line(line), err=True))
    click.echo(one_line(f"diagnose --follow: {result.reason}"), err=True)
    if fmt == "json":
        from nnprobe.cli.stdout import report_stream

        click.echo(json.dumps(result.to_dict(), indent=2), file=report_stream())
    click.get_current_context().exit(1 if result.status == "error" else 0)


def _refuse_plot_folder(plot: str | None, paths: tuple[str, ...], logs: list[str]) -> None:
    """--plot DIR must be a folder that can be written (or made), not inside a run folder (its PNGs would
    sit among the logs) and not the folder a given run or log sits in (the next `diagnose runs/*` would
    take the PNGs for runs)."""
    from nnprobe.io import refuse_output_folder

    if plot is None:
        return
    if not plot.strip():
        raise UsageError("--plot needs a folder path, not an empty string.")
    if os.path.exists(plot) and not os.path.isdir(plot):
        raise UsageError(f"--plot {plot} is a file; give a folder.")
    parent = os.path.dirname(os.path.abspath(plot))
    if not os.path.isdir(plot) and not os.path.isdir(parent):
        raise UsageError(f"--plot {plot}: the folder {parent} does not exist.")
    if not os.access(plot if os.path.isdir(plot) else parent, os.W_OK | os.X_OK):
        raise UsageError(f"--plot {plot}: the folder is not writable.")
    refuse_output_folder("--plot", plot, inputs=[*paths, *logs],
                         data_sets=[("run folder", p) for p in paths if os.path.isdir(p)])


def _refuse_report_named_like_a_log(run: str, output: str | None) -> None:
    """A report written into the run folder under a log's name would be read back as a log by the next
    `diagnose` (a JSON report is sniffed as JSON lines and then fails as unreadable)."""
    from nnprobe.diagnosis.readers import could_be_log

    if not output or output == STDOUT or not os.path.isdir(run):
        return
    target, folder = os.path.realpath(output), os.path.realpath(run)
    name = os.path.basename(target)
    if target.startswith(folder + os.sep) and could_be_log(name):
        raise UsageError(f"-o {output} would be read as a log of the run {run} next time; write the report "
                         "outside the run folder.")
