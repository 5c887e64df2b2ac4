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


@click.command("diagnose", short_help="Judge a training run from its logs: NaN loss, chance accuracy, overfitting ...")
@click.argument("path", type=click.Path(path_type=str))
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
@report_options
def command(path: str, num_classes: int | None, metrics: tuple[str, ...], fail_on: str, no_crc: bool,
            model: str | None, weights: str | None, arch: str | None, trust_pickle: bool, data: str | None,
            limit: int | None, device: str, fmt: str, output: str | None) -> None:
    """Read a training run's logs (TensorBoard, Lightning/Keras CSV, HF trainer_state.json, JSON lines)
    and report what went wrong: non-finite loss, chance accuracy, constant prediction, overfitting, and more.

    PATH is a run folder, a folder of runs (each version_N is one run) or one log file.

    With --model and --data it also runs the model on the images and measures how its answers spread
    over classes (a constant predictor is an error). Torch is imported only then.

    Exit codes: 0 no finding reached --fail-on, 1 one did, 2 unreadable input or bad option.
    """
    from nnprobe import api
    from nnprobe.diagnosis import log_files

    if (model is None) != (data is None):
        raise UsageError("--model and --data go together: the probe runs the model on the labelled images.")
    guard_outputs({"-o": output}, files=[*log_files(path), *model_input_files(model, weights)],
                  folders=[("data set", data)])
    _refuse_report_named_like_a_log(path, output)
    result = api.diagnose(path, model=model, data=data, num_classes=num_classes, metric=list(metrics),
                          fail_on=fail_on, no_crc=no_crc, limit=limit, device=device, weights=weights, arch=arch,
                          trust_pickle=trust_pickle)
    if output or fmt != "table":
        counts = result.counts()
        click.echo(f"diagnose: {counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info "
                   f"in {len(result.runs)} run(s)", err=True)
    click.get_current_context().exit(finish(result, fmt, output, passed=not result.failed))


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
