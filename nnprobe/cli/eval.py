"""`nnprobe eval`: build options -> guard inputs and outputs -> api.evaluate -> report -> exit code."""
from __future__ import annotations

import click

from nnprobe.cli.options import command_options
from nnprobe.cli.preflight import finish, guard_verb, launched, notes, working
from nnprobe.errors import UsageError
from nnprobe.options.outputs import figure_path
from nnprobe.options.verbs import EVAL


def plot_paths(plot: str | None) -> dict[str, str]:
    """The files `--plot FILE` writes for eval (FILE-stem.reliability.suffix, FILE-stem.per_class.suffix), by
    the name the output guard reports them under."""
    if plot is None:
        return {}
    return {f"--plot ({name})": figure_path(plot, name) for name in ("reliability", "per_class")}


@click.command("eval")
@command_options(EVAL, verb="Evaluate")
def command(**options) -> int:
    """Top-1/top-5 accuracy of a classifier on a labelled image set, exactly (integer counts).

    Runs under torchrun too: `torchrun --nproc_per_node N -m nnprobe eval ...`; each rank takes a
    disjoint shard and rank 0 writes the report.
    """
    from nnprobe.api.many import model_specs

    several = len(model_specs(options["model"])) > 1
    if several and (options["plot"].plot or (options["scale"].nproc or 1) > 1):
        raise UsageError("--plot and --nproc go with one model: run them for one model at a time.")
    code = launched(options, "eval")
    if code is not None:
        return code
    options = guard_verb("eval", options, plots=plot_paths(options["plot"].plot))
    if hasattr(options["data"].data, "folders") and options["plot"].plot:
        raise UsageError("--plot draws one data set's figures: not with several --data NAME=DIR.")

    from nnprobe import api

    notes([api.detectable_drop(options["baseline"].baseline, options["baseline"].alpha)] if
          options["baseline"].baseline is not None else [])
    with working("evaluating", options) as (work, options):
        result = api.evaluate_with(options, progress=work.progress)
    if not work.is_main:  # the verdict is rank 0's: a rank ending 1 first would get rank 0 stopped mid-report
        return 0
    if hasattr(result, "rows"):  # several --data NAME=DIR: the variants table (its notes are in it)
        return finish(result, options["report"], passed=result.passed)
    if options["plot"].plot:
        from nnprobe.report.eval_plots import write_eval_plots

        write_eval_plots(result, *plot_paths(options["plot"].plot).values())
    code = finish(result, options["report"], passed=result.passed)
    runs = getattr(result, "runs", (result,))  # several models: the same images, so one set of notes
    notes(runs[0].data["notes"])
    if runs[0].skipped:
        click.echo(f"note: {len(runs[0].skipped)} file(s) skipped; the report lists each with its reason.", err=True)
    return code
