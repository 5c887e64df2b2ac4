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


def part_reports(options: dict, specs: list) -> list | None:
    """With several models and `--shard K/N -o FILE`, where each model's part goes (FILE.MODEL.SUFFIX, {shard}
    filled in): the files `nnprobe merge` reads, each what that model's own --shard run writes; else None."""
    from nnprobe.api.many import per_model_files
    from nnprobe.options.outputs import STDOUT
    from nnprobe.options.parts import part_name

    shard, output = options["shard"].shard, options["report"].output
    if shard is None or output in (None, STDOUT):
        return None
    return per_model_files(part_name(output, shard), specs)


def per_model_outputs(options: dict, specs: list) -> dict[str, str]:
    """With several models, the files written per model (FILE.MODEL.SUFFIX): each --plot figure, each
    --save-predictions file and, under --shard, each model's part (-o), by the name the output guard reports
    them under ({shard} filled in, as guard_verb fills it in for one model)."""
    from nnprobe.api.many import model_words, per_model_files
    from nnprobe.options.parts import part_name

    plot, outputs, words = options["plot"].plot, {}, model_words(specs)
    for word, path in zip(words, per_model_files(plot, specs)):
        outputs.update({f"{key[:-1]}, {word})": value for key, value in plot_paths(path).items()})
    saves = options["per_sample"].save_predictions
    saves = per_model_files(saves and part_name(saves, options["shard"].shard), specs)
    outputs.update({f"--save-predictions ({word})": path for word, path in zip(words, saves) if path})
    outputs.update({f"-o ({word})": path for word, path in zip(words, part_reports(options, specs) or ())})
    return outputs


def write_parts(result, report, paths: list) -> int:
    """Each model's --shard part to its own file (a slice has no gates: they are merge's); as JSON, the part
    is what that model's own --shard run writes, with the model's name as the user gave it beside its fields
    (merge names each model's row by it)."""
    import json

    from nnprobe.io import atomic_write_text
    from nnprobe.report import emit

    for (name, run), path in zip(result.named, paths):
        if report.fmt == "json":
            atomic_write_text(path, json.dumps(dict(run.to_dict(), name=name), indent=2, allow_nan=False) + "\n")
        else:
            emit(run, report.fmt, path)
    return 0 if result.passed else 1


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
    code = launched(options, "eval")
    if code is not None:
        return code
    plots = per_model_outputs(options, specs) if several else plot_paths(options["plot"].plot)
    parts = part_reports(options, specs) if several else None
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
    if parts is not None:
        code = write_parts(result, options["report"], parts)
    else:
        code = finish(result, options["report"], passed=result.passed)
    runs = getattr(result, "runs", (result,))  # several models: the same images, so one set of notes
    notes(runs[0].data["notes"])
    if runs[0].skipped:
        click.echo(f"note: {len(runs[0].skipped)} file(s) skipped; the report lists each with its reason.", err=True)
    return code
