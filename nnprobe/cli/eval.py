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


def per_model_outputs(options: dict, specs: list) -> dict[str, str]:
    """With several models, the files written per model (FILE.MODEL.SUFFIX): each --plot figure and each
    --save-predictions file, by the name the output guard reports them under."""
    from nnprobe.api.many import model_words, per_model_files

    plot, outputs = options["plot"].plot, {}
    for word, path in zip(model_words(specs), per_model_files(plot, specs)):
        outputs.update({f"{key[:-1]}, {word})": value for key, value in plot_paths(path).items()})
    saves = per_model_files(options["per_sample"].save_predictions, specs)
    outputs.update({f"--save-predictions ({word})": path for word, path in zip(model_words(specs), saves) if path})
    return outputs


@click.command("eval")
@command_options(EVAL, verb="Evaluate")
def command(**options) -> int:
    """Top-1/top-5 accuracy of a classifier on a labelled image set, exactly (integer counts).

    Runs under torchrun too: `torchrun --nproc_per_node N -m nnprobe eval ...`; each rank takes a
    disjoint shard and rank 0 writes the report.
    """
    from nnprobe.api.many import model_specs

    specs = model_specs(options["model"])
    several = len(specs) > 1
    if several and (options["scale"].nproc or 1) > 1:
        raise UsageError("--nproc goes with one model: run it for one model at a time.")
    code = launched(options, "eval")
    if code is not None:
        return code
    plots = per_model_outputs(options, specs) if several else plot_paths(options["plot"].plot)
    options = guard_verb("eval", options, plots=plots)
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
        from nnprobe.api.many import per_model_files
        from nnprobe.report.eval_plots import write_eval_plots

        plots = per_model_files(options["plot"].plot, specs) if several else [options["plot"].plot]
        for run, plot in zip(getattr(result, "runs", (result,)), plots):
            write_eval_plots(run, *plot_paths(plot).values())
    code = finish(result, options["report"], passed=result.passed)
    runs = getattr(result, "runs", (result,))  # several models: the same images, so one set of notes
    notes(runs[0].data["notes"])
    if runs[0].skipped:
        click.echo(f"note: {len(runs[0].skipped)} file(s) skipped; the report lists each with its reason.", err=True)
    return code
